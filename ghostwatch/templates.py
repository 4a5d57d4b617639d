"""Message templates: Jinja2 in a sandbox, one file per step, language and MIME part.

A template is ``<locale>/<name>.txt.j2`` (the plain-text body, required) and optionally
``<locale>/<name>.html.j2`` (an HTML alternative), where ``<name>`` is a step's
``template`` and ``<locale>`` is ``en`` or ``it``. The shipped ones live in this
package's ``templates/`` directory; a user templates directory with the same layout
overrides them file by file. The text and HTML parts of one message always come from
the same place: once you override ``it/final_notice.txt.j2``, the shipped
``it/final_notice.html.j2`` is no longer used (it would say something else), and a
user HTML template needs a user text template next to it.

Templates see the fields of :class:`TemplateVars` and two helpers, as functions or
filters, formatted for the message's locale with Babel:

* ``money(amount)`` / ``amount|money``: ``1.200,00 €`` (it), ``€1,200.00`` (en);
  ``money(amount, "USD")`` names another currency than ``currency``;
* ``day(date)`` / ``date|day``: ``7 dicembre 2026`` (it), ``7 December 2026`` (en);
  ``day(date, "full")`` adds the weekday (``lunedì 7 dicembre 2026``), which also
  spares Italian the article before a date (``entro lunedì 7 dicembre``).

plus ``nl2br``, a filter for HTML templates that turns the lines of a multi-line
value (payment details, signature) into ``<br>``-separated, escaped lines.

Subjects are not templated: a follow-up is a reply and keeps "Re: <original subject>".
For future use, a text template may start with a line ``Subject: ...``; it is then
removed from the body and returned as :attr:`Rendered.subject` (one line, control
characters replaced). None of the shipped templates does this.

Safety: the environment is an immutable sandbox (no ``__class__`` walks, no mutating
lists or dicts), undefined variables are errors (``StrictUndefined``) and so is
printing ``None``: an optional value (``late_fee``, ``total``, ``deadline_date``) must
be guarded with ``{% if late_fee is not none %}``. HTML is autoescaped, text is not
(a text body is only ever a MIME body, never headers). :func:`check_templates`
renders every template with sample values, and again with each optional value unset,
so that such mistakes surface when the config is loaded, not when a message is sent.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import traceback
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, get_args

import jinja2
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from ghostwatch.businesstime import Calendar, parse_offset
from ghostwatch.errors import GhostwatchError

__all__ = [
    "BABEL_LOCALES",
    "HELPERS",
    "LOCALES",
    "OPTIONAL_VARS",
    "Locale",
    "Rendered",
    "TemplateError",
    "TemplateInfo",
    "TemplateVars",
    "check_templates",
    "deadline_date",
    "list_templates",
    "render",
    "sample_vars",
]

Locale = Literal["en", "it"]
LOCALES: Final[tuple[Locale, ...]] = get_args(Locale)

#: The Babel locale each message language is formatted in.
BABEL_LOCALES: Final[dict[str, str]] = {"en": "en_GB", "it": "it_IT"}

#: The names templates may call besides the :class:`TemplateVars` fields.
HELPERS: Final[tuple[str, ...]] = ("money", "day")

_TEMPLATE_FILE = re.compile(
    r"^(?P<locale>[a-z]{2})/(?P<name>[A-Za-z0-9_.-]+)\.(?P<part>txt|html)\.j2$"
)
_SUBJECT = re.compile(r"^subject:[ \t]*(?P<value>.*)$", re.IGNORECASE)


class TemplateError(GhostwatchError):
    """A template is missing, does not compile, or fails to render.

    ``file`` is the template's path (or the path it was looked for at), ``line`` the
    line of the template where it failed, when known.
    """

    def __init__(self, message: str, *, file: str, line: int | None = None) -> None:
        self.file = file
        self.line = line
        self.reason = message
        where = f"{file} line {line}" if line is not None else file
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateVars:
    """Every value a template may use. Dates are local dates in the client's zone.

    ``amount`` is the invoice total, ``balance`` what is still unpaid; ``late_fee``
    and ``total`` (``balance`` plus the late fee) are set by steps that add a late
    fee, ``deadline_date`` by steps with a ``deadline`` (the final notice). Those three
    are :data:`OPTIONAL_VARS`: templates must guard them. ``payment_details`` and
    ``signature`` may span several lines.
    """

    client_name: str
    project_name: str
    original_subject: str
    original_date: date
    days_silent: int
    invoice_number: str
    amount: Decimal
    balance: Decimal
    currency: str
    due_date: date
    days_overdue: int
    late_fee: Decimal | None = None
    total: Decimal | None = None
    deadline_date: date | None = None
    payment_details: str
    user_name: str
    user_email: str
    user_phone: str
    signature: str
    locale: Locale = "en"

    def __post_init__(self) -> None:
        if self.locale not in LOCALES:
            raise ValueError(f"locale {self.locale!r}: expected one of {', '.join(LOCALES)}")

    def context(self) -> dict[str, Any]:
        """The fields as a template context."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


#: The fields that may be None, which every template must guard.
OPTIONAL_VARS: Final[tuple[str, ...]] = ("late_fee", "total", "deadline_date")

_FIELDS: Final[frozenset[str]] = frozenset(f.name for f in dataclasses.fields(TemplateVars))


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered message body: the text part, the HTML alternative if the template has
    one, and the subject if the text template starts with a ``Subject:`` line."""

    subject: str | None
    text: str
    html: str | None


class TemplateInfo(NamedTuple):
    """One template as :func:`list_templates` sees it."""

    name: str
    locale: str
    source: Literal["shipped", "user"]
    has_html: bool


def sample_vars(locale: Locale = "en") -> TemplateVars:
    """Values for every field (optional ones included), for checks and previews."""
    return TemplateVars(
        client_name="Studio Verdi",
        project_name="Brand identity 2026",
        original_subject="Brand identity: final files",
        original_date=date(2026, 9, 14),
        days_silent=12,
        invoice_number="2026-042",
        amount=Decimal("1200.00"),
        balance=Decimal("1200.00"),
        currency="EUR",
        due_date=date(2026, 9, 1),
        days_overdue=97,
        late_fee=Decimal("40.00"),
        total=Decimal("1240.00"),
        deadline_date=date(2026, 12, 21),
        payment_details="Bank transfer to IBAN IT60 X054 2811 1010 0000 0123 456\n"
        "Account holder: Anna Rossi",
        user_name="Anna Rossi",
        user_email="anna@rossi.example",
        user_phone="+39 333 123 4567",
        signature="Anna Rossi\nIllustration & design",
        locale=locale,
    )


# --- helpers exposed to templates ------------------------------------------------------------


def _babel_locale(ctx: jinja2.runtime.Context) -> str:
    return BABEL_LOCALES.get(str(ctx.get("locale", "en")), "en_GB")


@jinja2.pass_context
def _money(ctx: jinja2.runtime.Context, amount: Any, currency: str | None = None) -> str:
    if not isinstance(amount, Decimal | int):
        raise TypeError(f"money() needs an amount, got {amount!r}")
    code = currency if currency is not None else ctx.get("currency")
    if not isinstance(code, str):
        raise TypeError(f"money() needs a currency code, got {code!r}")
    return str(format_currency(amount, code, locale=_babel_locale(ctx)))


@jinja2.pass_context
def _day(ctx: jinja2.runtime.Context, value: Any, style: str = "long") -> str:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise TypeError(f"day() needs a date, got {value!r}")
    if style not in ("long", "full", "medium"):
        raise ValueError(f"day() style {style!r}: use 'long', 'full' or 'medium'")
    return str(format_date(value, format=style, locale=_babel_locale(ctx)))


@jinja2.pass_eval_context
def _nl2br(eval_ctx: jinja2.nodes.EvalContext, value: str) -> str:
    lines = str(value).splitlines()
    if eval_ctx.autoescape:
        return Markup("<br>\n").join(escape(line) for line in lines)
    return "\n".join(lines)


class _PrintedNoneError(Exception):
    """``{{ x }}`` with x None: the word "None" must never reach a client."""


def _finalize(value: Any) -> Any:
    if value is None:
        raise _PrintedNoneError
    return value


# --- the environment ---------------------------------------------------------------------------


def _shipped_dir() -> Path:
    return Path(__file__).with_name("templates")


@functools.cache
def _shipped_loader() -> jinja2.FileSystemLoader:
    return jinja2.FileSystemLoader(_shipped_dir())


@functools.lru_cache(maxsize=8)
def _environment(user_dir: Path | None) -> tuple[jinja2.Environment, jinja2.BaseLoader | None]:
    shipped = _shipped_loader()
    user = None if user_dir is None else jinja2.FileSystemLoader(user_dir)
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.ChoiceLoader([user, shipped] if user is not None else [shipped]),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), disabled_extensions=(), default=False
        ),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.globals.update(money=_money, day=_day)
    env.filters.update(money=_money, day=_day, nl2br=_nl2br)
    return env, user


def _resolve_dir(templates_dir: str | Path | None) -> Path | None:
    if templates_dir is None:
        return None
    path = Path(templates_dir).expanduser().resolve()
    if not path.is_dir():
        raise TemplateError("templates directory does not exist", file=str(path))
    return path


def _has(loader: jinja2.BaseLoader | None, env: jinja2.Environment, name: str) -> bool:
    if loader is None:
        return False
    try:
        loader.get_source(env, name)
    except jinja2.TemplateNotFound:
        return False
    return True


def _template_line(exc: BaseException) -> int | None:
    # Jinja rewrites tracebacks so that template frames carry the template's file and
    # line; the innermost one is where it failed (helpers called from it come later).
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.endswith(".j2"):
            line = frame.lineno
    return line


def _where(env: jinja2.Environment, name: str) -> str:
    loader = env.loader
    assert loader is not None  # noqa: S101 - _environment always sets one
    try:
        _, filename, _ = loader.get_source(env, name)
    except jinja2.TemplateNotFound:
        return name
    return filename or name


def _load(env: jinja2.Environment, name: str) -> jinja2.Template:
    try:
        return env.get_template(name)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            exc.message or str(exc), file=exc.filename or name, line=exc.lineno
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {exc.name} not found", file=_where(env, name)) from None


def _render_one(template: jinja2.Template, context: dict[str, Any]) -> str:
    file = template.filename or template.name or "<template>"
    try:
        return template.render(context)
    except jinja2.TemplateSyntaxError as exc:  # an included template that does not compile
        raise TemplateError(
            exc.message or str(exc), file=exc.filename or file, line=exc.lineno
        ) from None
    except _PrintedNoneError as exc:
        raise TemplateError(
            "a printed value is None: guard optional values with {% if ... is not none %}",
            file=file,
            line=_template_line(exc),
        ) from None
    except SecurityError as exc:
        raise TemplateError(
            f"refused by the sandbox: {exc}", file=file, line=_template_line(exc)
        ) from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"{exc} (known: {_known_list()})", file=file, line=_template_line(exc)
        ) from None
    except Exception as exc:  # anything a template does wrong is the template's error
        raise TemplateError(
            f"{type(exc).__name__}: {exc}", file=file, line=_template_line(exc)
        ) from exc


def _known_list() -> str:
    return ", ".join(sorted(_FIELDS | set(HELPERS)))


def _compile(env: jinja2.Environment, source: str, name: str, filename: str) -> jinja2.Template:
    try:
        code = env.compile(source, name, filename)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(exc.message or str(exc), file=filename, line=exc.lineno) from None
    return env.template_class.from_code(env, code, env.make_globals(None))


def _render_text(
    env: jinja2.Environment, name: str, context: dict[str, Any]
) -> tuple[str | None, str]:
    """Render a text template: (the ``Subject:`` line if it has one, the body)."""
    template = _load(env, name)
    loader = env.loader
    assert loader is not None  # noqa: S101 - _environment always sets one
    source, filename, _ = loader.get_source(env, name)
    first, newline, rest = source.partition("\n")
    match = _SUBJECT.match(first.rstrip("\r"))
    if match is None:
        return None, _normalise_newlines(_render_one(template, context))
    file = filename or name
    # The subject is rendered on its own, so a value with a line break in it cannot
    # carry anything into the body, nor (below) into another header.
    raw = _render_one(_compile(env, match["value"], name, file), context)
    subject = " ".join(
        "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in raw).split()
    )
    if not subject:
        raise TemplateError("the Subject: line renders empty", file=file, line=1)
    # A comment keeps the body's line numbers; trim_blocks eats its line break, and the
    # blank line that separates the subject from the body goes too.
    body = _normalise_newlines(
        _render_one(_compile(env, "{# Subject #}" + newline + rest, name, file), context)
    )
    return subject, body.removeprefix("\n")


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True, slots=True)
class _Pair:
    """The templates of one (name, locale): where they come from and their file names."""

    text: str
    html: str | None
    source: Literal["shipped", "user"]


def _pair(
    env: jinja2.Environment,
    user: jinja2.BaseLoader | None,
    user_dir: Path | None,
    name: str,
    locale: str,
) -> _Pair:
    text, html = f"{locale}/{name}.txt.j2", f"{locale}/{name}.html.j2"
    if _has(user, env, text):
        return _Pair(text, html if _has(user, env, html) else None, "user")
    if _has(user, env, html):
        raise TemplateError(
            f"there is no {text} next to it: every message needs a plain-text body "
            "(copy the shipped one and adapt it)",
            file=str((user_dir or Path()) / html),
        )
    shipped = _shipped_loader()
    if _has(shipped, env, text):
        return _Pair(text, html if _has(shipped, env, html) else None, "shipped")
    places = [str(user_dir)] if user_dir is not None else []
    places.append(f"the shipped templates ({_shipped_dir()})")
    raise TemplateError(
        f"no template {text!r} for step template {name!r} in {' or '.join(places)}",
        file=str((user_dir or _shipped_dir()) / text),
    )


def render(
    template_name: str,
    vars: TemplateVars,
    locale: Locale,
    *,
    templates_dir: str | Path | None = None,
    fallback: Locale | None = None,
) -> Rendered:
    """Render the step template ``template_name`` in ``locale``.

    ``locale`` decides the template and the formatting (``vars.locale`` is replaced by
    it). A template missing in ``locale`` is an error naming the file, unless the
    caller asks for ``fallback`` (a locale to use instead, e.g. "en" when the user has
    said English is fine for clients without a template in their language).

    Raises :class:`TemplateError` (with the file and line) for a missing template, a
    syntax error, an unknown variable, a printed ``None`` or a sandbox refusal.
    """
    user_dir = _resolve_dir(templates_dir)
    env, user = _environment(user_dir)
    try:
        pair = _pair(env, user, user_dir, template_name, locale)
    except TemplateError:
        if fallback is None or fallback == locale:
            raise
        locale = fallback
        pair = _pair(env, user, user_dir, template_name, locale)
    context = dataclasses.replace(vars, locale=locale).context()
    subject, text = _render_text(env, pair.text, context)
    html = None
    if pair.html is not None:
        html = _render_one(_load(env, pair.html), context)
    return Rendered(subject=subject, text=text, html=html)


# --- listing and checking ----------------------------------------------------------------------


def _files(loader: jinja2.BaseLoader | None) -> list[str]:
    return [] if loader is None else sorted(loader.list_templates())


def list_templates(templates_dir: str | Path | None = None) -> list[TemplateInfo]:
    """Every (name, locale) that has a text template, with where it comes from (a user
    file overrides a shipped one) and whether it has an HTML alternative."""
    user_dir = _resolve_dir(templates_dir)
    env, user = _environment(user_dir)
    keys: set[tuple[str, str]] = set()
    for file in _files(user) + _files(_shipped_loader()):
        match = _TEMPLATE_FILE.match(file)
        if match and match["locale"] in LOCALES and match["part"] == "txt":
            keys.add((match["name"], match["locale"]))
    out = []
    for name, locale in sorted(keys):
        try:
            pair = _pair(env, user, user_dir, name, locale)
        except TemplateError:
            continue  # a user HTML template without text: check_templates reports it
        out.append(TemplateInfo(name, locale, pair.source, pair.html is not None))
    return out


def _used_names(env: jinja2.Environment, source: str) -> set[str]:
    return set(meta.find_undeclared_variables(env.parse(source)))


def _check_file(env: jinja2.Environment, name: str, locale: Locale, problems: list[str]) -> None:
    """Compile, statically check and render one template file; append what is wrong."""
    loader = env.loader
    assert loader is not None  # noqa: S101 - _environment always sets one
    try:
        source, filename, _ = loader.get_source(env, name)
        template = _load(env, name)
    except TemplateError as exc:
        problems.append(str(exc))
        return
    file = filename or name
    known = _FIELDS | set(env.globals)
    used = _used_names(env, source)
    problems.extend(
        f"{file}: unknown variable {unknown!r} (known: {_known_list()})"
        for unknown in sorted(used - known)
    )
    if used - known:
        return  # rendering would only repeat it
    sample = sample_vars(locale).context()
    variants: list[tuple[str, dict[str, Any]]] = [("", sample)]
    optional = [v for v in OPTIONAL_VARS if v in used]
    variants += [(f" (when {v} is not set)", {**sample, v: None}) for v in optional]
    if len(optional) > 1:
        unset = dict.fromkeys(optional)
        variants.append((f" (when {', '.join(optional)} are not set)", {**sample, **unset}))
    for when, context in variants:
        try:
            if name.endswith(".html.j2"):
                out = _render_one(template, context)
                if _SUBJECT.match(out.partition("\n")[0]):
                    problems.append(f"{file} line 1: a Subject: line only works in text templates")
            else:
                _render_text(env, name, context)
        except TemplateError as exc:
            where = f"{exc.file} line {exc.line}" if exc.line is not None else exc.file
            problems.append(f"{where}: {exc.reason}{when}")


def check_templates(
    templates_dir: str | Path | None = None, *, required: Iterable[str] = ()
) -> list[str]:
    """Everything wrong with the templates, one line each (empty: all good).

    Compiles and renders every template, user and shipped, with :func:`sample_vars` in
    its locale, and again with each optional variable it uses unset; reports variables
    that are neither :class:`TemplateVars` fields nor helpers (also in branches the
    sample does not take), sandbox refusals, user files the layout would ignore, user
    HTML without text, names present in one locale but not the other, and the
    ``required`` step template names (from the policies) that have no template.
    """
    try:
        user_dir = _resolve_dir(templates_dir)
    except TemplateError as exc:
        return [str(exc)]
    env, user = _environment(user_dir)
    problems: list[str] = []
    user_files, shipped_files = _files(user), _files(_shipped_loader())
    names: set[str] = set(required)
    for origin, files in (("user", user_files), ("shipped", shipped_files)):
        for file in files:
            match = _TEMPLATE_FILE.match(file)
            if match is None or match["locale"] not in LOCALES:
                if file.endswith(".j2") or file.split("/", 1)[0] in LOCALES:
                    base = user_dir if origin == "user" else _shipped_dir()
                    problems.append(
                        f"{(base or Path()) / file}: ignored: templates are "
                        f"<{'|'.join(LOCALES)}>/<name>.txt.j2 or .html.j2"
                    )
                continue
            names.add(match["name"])
    for name in sorted(names):
        for locale in LOCALES:
            try:
                pair = _pair(env, user, user_dir, name, locale)
            except TemplateError as exc:
                problems.append(str(exc))
                continue
            for part in (pair.text, pair.html):
                if part is not None:
                    _check_file(env, part, locale, problems)
    # Shipped files shadowed by user ones are never used, but must stay correct.
    if user is not None:
        shadowed = [f for f in shipped_files if f in user_files and _TEMPLATE_FILE.match(f)]
        shipped_env, _ = _environment(None)
        for file in shadowed:
            match = _TEMPLATE_FILE.match(file)
            assert match is not None  # noqa: S101 - filtered above
            _check_file(shipped_env, file, match["locale"], problems)  # type: ignore[arg-type]
    return problems


# --- deadlines -----------------------------------------------------------------------------------


def deadline_date(start: date, spec: str, cal: Calendar) -> date:
    """The date ``spec`` ("10 business days", "30d") after ``start`` in ``cal``.

    Business days skip ``cal``'s weekends and holidays; calendar days count every day.
    ``start`` is the local date the message goes out.
    """
    if isinstance(start, datetime):
        raise TypeError("pass a date, not a datetime: use cal.local(t).date()")
    anchor = datetime.combine(start, cal.window_start, tzinfo=cal.zone())
    return parse_offset(spec).apply(anchor, cal).date()


def template_source(
    name: str, locale: str, *, templates_dir: str | Path | None = None
) -> tuple[Path, str]:
    """(file, text) of the text template ``name`` in ``locale``: yours, else shipped."""
    relative = Path(locale) / f"{name}.txt.j2"
    user_dir = _resolve_dir(templates_dir)
    for base in (user_dir, _shipped_dir()):
        if base is not None and (base / relative).is_file():
            path = base / relative
            return path, path.read_text(encoding="utf-8")
    known = sorted({info.name for info in list_templates(templates_dir)})
    raise TemplateError(f"no template {name!r} (known: {', '.join(known)})", file=str(relative))
