"""The morning digest as an email: subject, plain text and HTML, in English or Italian.

Pure: everything shown comes from :class:`DigestContent`, including the time the digest
was made (``generated_at``) and the help text; nothing reads the clock, the database or
the network. The only files read are the HTML template and the time-zone data.

The owner answers by replying, so the text part is written to survive that:

* draft bodies are kept verbatim and indented by four spaces, never prefixed with ">":
  reply parsers drop ">" lines, and what the owner writes around them must still read
  as commands;
* every other line is at most :data:`TEXT_WIDTH` characters, and every value that
  comes from mail (subjects, addresses, reasons) is flattened to one line first, so a
  subject holding ``"\\r\\nsend all"`` cannot forge a line of its own.

The HTML part is one column of inline-styled tables (what Gmail, Outlook, Apple Mail and
Thunderbird agree on), rendered with Jinja2 in a sandbox with every value autoescaped.
Its template is ``templates/digest/digest.html.jinja``: it is not called ``.j2``
because :func:`ghostwatch.templates.check_templates` reports every ``.j2`` file outside
``<locale>/`` as a misplaced step template.
"""

from __future__ import annotations

import functools
import re
import textwrap
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from ghostwatch.errors import GhostwatchError
from ghostwatch.templates import BABEL_LOCALES

__all__ = [
    "TEMPLATE",
    "TEXT_WIDTH",
    "DigestContent",
    "DigestLocale",
    "DigestViewError",
    "DraftItem",
    "Flag",
    "RenderedDigest",
    "TaskItem",
    "Upcoming",
    "is_empty",
    "render_digest",
]

DigestLocale = Literal["en", "it"]

#: Longest line of the text part, draft bodies excepted.
TEXT_WIDTH: Final = 78
#: The HTML template, relative to the package's ``templates/`` directory.
TEMPLATE: Final = "digest/digest.html.jinja"

_BODY_INDENT: Final = "    "


class DigestViewError(GhostwatchError):
    """The digest content cannot be shown: a naive datetime, an unknown time zone..."""


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise DigestViewError(f"{name} must be timezone-aware, got {value.isoformat()}")


@dataclass(frozen=True, slots=True)
class DraftItem:
    """A queued follow-up waiting for the owner's word, under its digest number."""

    number: int
    row_id: int
    to: str
    subject: str
    step: str
    why: str
    body: str
    attachments: tuple[str, ...]
    due_at: datetime
    auto: bool = False

    def __post_init__(self) -> None:
        if self.number < 1:
            raise DigestViewError(f"draft number {self.number}: numbers start at 1")
        _require_aware("due_at", self.due_at)


@dataclass(frozen=True, slots=True)
class TaskItem:
    """Something only the owner can do (call, check an address...), for one thread."""

    thread_id: str
    counterpart: str
    subject: str
    kind: str
    text: str
    phone: str | None
    checklist: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Flag:
    """A one-line warning with its figures (slow client, uncertain send, bounce...)."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Upcoming:
    """A follow-up that will go out on its own soon, and how to stop it."""

    to: str
    subject: str
    step: str
    at: datetime
    stop_hint: str

    def __post_init__(self) -> None:
        _require_aware("at", self.at)


@dataclass(frozen=True, slots=True)
class DigestContent:
    """Everything one digest shows. Drafts are listed in the order given."""

    owner_name: str
    account: str
    generated_at: datetime
    time_zone: str
    locale: DigestLocale
    drafts: tuple[DraftItem, ...]
    tasks: tuple[TaskItem, ...]
    flags: tuple[Flag, ...]
    upcoming: tuple[Upcoming, ...]
    token_tag: str
    help_text: str

    def __post_init__(self) -> None:
        _require_aware("generated_at", self.generated_at)
        if self.locale not in get_args(DigestLocale):
            raise DigestViewError(f"locale {self.locale!r}: expected en or it")
        numbers = [d.number for d in self.drafts]
        if len(set(numbers)) != len(numbers):
            raise DigestViewError(f"draft numbers repeat: {numbers}")


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    """The digest's Subject and its two MIME alternatives."""

    subject: str
    text: str
    html: str


# --- labels ------------------------------------------------------------------------------

_LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "greeting": "Hi {name},",
        "times_in": "Times in {zone}",
        "account": "Account",
        "drafts": "Drafts to approve",
        "tasks": "Tasks",
        "flags": "Flags",
        "upcoming": "Going out on their own in the next 48 hours",
        "how": "How to answer",
        "to": "To",
        "subject": "Subject",
        "step": "Step",
        "why": "Why now",
        "due": "Due",
        "auto": "Goes out on its own",
        "auto_unless": "unless you skip it",
        "attachments": "Attachments",
        "none": "none",
        "reply": "reply",
        "reply_with": "Reply with:",
        "phone": "Phone",
        "no_phone": "no phone on file",
        "thread": "Thread",
        "stop": "To stop it",
        "nothing": "Nothing new today: no drafts, tasks or flags.",
        "footer": "Sent by ghostwatch for {account}.",
        "send": "send",
        "skip": "skip",
        "snooze": "snooze",
        "snooze_for": "3d",
        "edit": "edit",
    },
    "it": {
        "greeting": "Ciao {name},",
        "times_in": "Orari in {zone}",
        "account": "Account",
        "drafts": "Bozze da approvare",
        "tasks": "Attività",
        "flags": "Avvisi",
        "upcoming": "Partono da sole nelle prossime 48 ore",
        "how": "Come rispondere",
        "to": "A",
        "subject": "Oggetto",
        "step": "Passo",
        "why": "Perché ora",
        "due": "Prevista per",
        "auto": "Parte da sola",
        "auto_unless": "se non la salti",
        "attachments": "Allegati",
        "none": "nessuno",
        "reply": "rispondi",
        "reply_with": "Rispondi con:",
        "phone": "Telefono",
        "no_phone": "nessun telefono salvato",
        "thread": "Conversazione",
        "stop": "Per fermarla",
        "nothing": "Niente di nuovo oggi: nessuna bozza, attività o avviso.",
        "footer": "Inviato da ghostwatch per {account}.",
        "send": "invia",
        "skip": "salta",
        "snooze": "rimanda",
        "snooze_for": "3g",
        "edit": "modifica",
    },
}

_TASK_KINDS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "call": "Call",
        "check_address": "Check the address",
        "investigate": "Look into it",
        "address_mismatch": "Address mismatch",
        "small_claims": "Small claims",
    },
    "it": {
        "call": "Telefona",
        "check_address": "Verifica l'indirizzo",
        "investigate": "Da verificare",
        "address_mismatch": "Indirizzo diverso",
        "small_claims": "Piccole controversie",
    },
}

_FLAG_KINDS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "slow_client": "Slow client",
        "late_payer": "Late payer",
        "uncertain_send": "Uncertain send",
        "bounce": "Bounce",
    },
    "it": {
        "slow_client": "Cliente lento",
        "late_payer": "Paga in ritardo",
        "uncertain_send": "Invio incerto",
        "bounce": "Email respinta",
    },
}

# (singular, plural) for the summary; "{n}" is the count.
_COUNTS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "en": (
        ("{n} draft to approve", "{n} drafts to approve"),
        ("{n} task", "{n} tasks"),
        ("{n} flag", "{n} flags"),
        ("{n} going out on its own", "{n} going out on their own"),
    ),
    "it": (
        ("{n} bozza da approvare", "{n} bozze da approvare"),
        ("{n} attività", "{n} attività"),
        ("{n} avviso", "{n} avvisi"),
        ("{n} invio automatico", "{n} invii automatici"),
    ),
}
_NOTHING_NEW: Final = {"en": "nothing new", "it": "niente di nuovo"}

# Flag kinds whose card gets a red edge in HTML (amber for the others named above).
_SEVERE_FLAGS: Final = frozenset({"uncertain_send", "bounce"})


# --- helpers -----------------------------------------------------------------------------

_INVISIBLE: Final = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _one_line(value: str) -> str:
    """``value`` on one line: control and separator characters become spaces, bidi
    overrides go, runs of whitespace shrink to one space."""
    chars = []
    for ch in value:
        if ch in _INVISIBLE:
            continue
        chars.append(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch)
    return " ".join("".join(chars).split())


def _humanize(kind: str) -> str:
    return _one_line(kind.replace("_", " ")).capitalize()


def _kind_label(table: dict[str, dict[str, str]], locale: str, kind: str) -> str:
    return table[locale].get(kind) or _humanize(kind)


def _body_lines(body: str) -> list[str]:
    return body.splitlines() or [""]


def _wrap(text: str, first: str = "", rest: str | None = None) -> list[str]:
    """``text`` wrapped to :data:`TEXT_WIDTH`, the first line after ``first``."""
    return textwrap.wrap(
        text,
        width=TEXT_WIDTH,
        initial_indent=first,
        subsequent_indent=" " * len(first) if rest is None else rest,
        break_long_words=True,
        break_on_hyphens=False,
    ) or [first.rstrip()]


_HELP_COLUMNS: Final = re.compile(r"^(?P<cmd>\s*\S.*?\s{2,})(?P<desc>\S.*)$")


def _wrap_help(help_text: str) -> list[str]:
    """The caller's help text, lines kept as written unless too long. A long
    "command   description" line wraps under its description column, taking along
    the lines below it that continue that column."""
    lines = [line.rstrip() for line in help_text.splitlines()]
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if len(line) <= TEXT_WIDTH:
            out.append(line)
            continue
        lead = line[: len(line) - len(line.lstrip())]
        hang = lead + "  "
        match = _HELP_COLUMNS.match(line)
        if match and len(match["cmd"]) <= TEXT_WIDTH // 2:
            hang = " " * len(match["cmd"])
            while i < len(lines) and lines[i].startswith(hang) and lines[i].strip():
                if lines[i][len(hang)] == " ":
                    break
                line += " " + lines[i].strip()
                i += 1
        out += textwrap.wrap(
            line,
            width=TEXT_WIDTH,
            subsequent_indent=hang,
            break_long_words=True,
            break_on_hyphens=False,
        )
    while out and not out[-1]:
        out.pop()
    return out


_HELP_CONTINUATION: Final = re.compile(r"^\s{6,}(?P<text>\S.*)$")
_HELP_COMMAND: Final = re.compile(r"^\s{2,}(?P<cmd>\S(?:.*?\S)?)\s{2,}(?P<desc>\S.*)$")


def _help_blocks(help_text: str) -> list[dict[str, str]]:
    """The help text as HTML blocks: indented "command   description" lines become
    ``{"cmd", "desc"}`` rows, deeper-indented lines continue the row above, and any
    other run of lines is a ``{"para"}`` paragraph."""
    blocks: list[dict[str, str]] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append({"kind": "para", "text": "\n".join(para)})
            para.clear()

    for raw in help_text.splitlines():
        line = raw.rstrip()
        command = _HELP_COMMAND.match(line)
        continuation = _HELP_CONTINUATION.match(line)
        if continuation and not para and blocks and blocks[-1]["kind"] == "cmd":
            blocks[-1]["desc"] += " " + continuation["text"]
        elif command:
            flush()
            blocks.append({"kind": "cmd", "cmd": command["cmd"], "desc": command["desc"]})
        elif not line.strip():
            flush()
        elif para and not line[:1].isspace():
            para[-1] += " " + line.strip()  # prose: let the phone reflow it
        else:
            para.append(line.strip())
    flush()
    return blocks


def _code_spans(text: str) -> list[dict[str, str | bool]]:
    """``text`` split at backticks into ``{"text", "code"}`` parts: "reply `stop 4`"
    shows "stop 4" as a command. Unpaired backticks are left as they are."""
    pieces = text.split("`")
    if len(pieces) % 2 == 0:
        return [{"text": text, "code": False}]
    return [{"text": p, "code": i % 2 == 1} for i, p in enumerate(pieces) if p]


def _tel(phone: str) -> str:
    """A ``tel:`` target for ``phone`` (digits and a leading "+"), or "" when too short."""
    digits = "".join(ch for ch in phone if ch.isascii() and ch.isdigit())
    if len(digits) < 3:
        return ""
    return f"tel:{'+' if phone.strip().startswith('+') else ''}{digits}"


# --- the shared view -----------------------------------------------------------------------


def is_empty(content: DigestContent) -> bool:
    """Nothing to approve, no task, no flag and nothing going out on its own."""
    return not (content.drafts or content.tasks or content.flags or content.upcoming)


def _summary(content: DigestContent) -> str:
    counts = (len(content.drafts), len(content.tasks), len(content.flags), len(content.upcoming))
    parts = [
        (one if n == 1 else many).format(n=n)
        for n, (one, many) in zip(counts, _COUNTS[content.locale], strict=True)
        if n
    ]
    return ", ".join(parts) if parts else _NOTHING_NEW[content.locale]


class _Clock:
    """Formats aware datetimes in the digest's zone and language."""

    def __init__(self, content: DigestContent) -> None:
        try:
            self.zone = ZoneInfo(content.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise DigestViewError(
                f"time zone {content.time_zone!r} is not an IANA zone such as Europe/Rome"
            ) from exc
        self.locale = BABEL_LOCALES[content.locale]
        self.year = content.generated_at.astimezone(self.zone).year

    def __call__(self, when: datetime) -> str:
        """``Mon 30 Nov, 09:15``; the year is added when it is not the digest's."""
        pattern = "EEE d MMM, HH:mm"
        if when.astimezone(self.zone).year != self.year:
            pattern = "EEE d MMM y, HH:mm"
        return str(format_datetime(when, pattern, tzinfo=self.zone, locale=self.locale))


def _view(content: DigestContent) -> dict[str, Any]:
    """Plain data for both parts: one-line strings, formatted times, localised labels."""
    labels = dict(_LABELS[content.locale])
    when = _Clock(content)
    drafts = []
    for d in content.drafts:
        n = d.number
        drafts.append(
            {
                "number": str(n),
                "to": _one_line(d.to),
                "subject": _one_line(d.subject),
                "step": _one_line(d.step.replace("_", " ")),
                "why": _one_line(d.why),
                "when": when(d.due_at),
                "auto": d.auto,
                "attachments": ", ".join(_one_line(a) for a in d.attachments) or labels["none"],
                "body_lines": _body_lines(d.body),
                "commands": [
                    f"{labels['send']} {n}",
                    f"{labels['skip']} {n}",
                    f"{labels['snooze']} {n} {labels['snooze_for']}",
                    f"{labels['edit']} {n}",
                ],
            }
        )
    tasks = []
    for t in content.tasks:
        phone = _one_line(t.phone) if t.phone else ""
        tasks.append(
            {
                "kind": _kind_label(_TASK_KINDS, content.locale, t.kind),
                "counterpart": _one_line(t.counterpart),
                "subject": _one_line(t.subject),
                "text": _one_line(t.text),
                "phone": phone or (labels["no_phone"] if t.kind == "call" else ""),
                "tel": _tel(phone) if phone else "",
                "thread": _one_line(t.thread_id),
                "checklist": [_one_line(c) for c in t.checklist],
            }
        )
    flags = [
        {
            "label": _kind_label(_FLAG_KINDS, content.locale, f.kind),
            "text": _one_line(f.text),
            "severe": f.kind in _SEVERE_FLAGS,
        }
        for f in content.flags
    ]
    upcoming = [
        {
            "when": when(u.at),
            "to": _one_line(u.to),
            "subject": _one_line(u.subject),
            "step": _one_line(u.step.replace("_", " ")),
            "stop": _one_line(u.stop_hint),
            "stop_parts": _code_spans(_one_line(u.stop_hint)),
        }
        for u in content.upcoming
    ]
    summary = _summary(content)
    return {
        "lang": content.locale,
        "labels": labels,
        "subject": f"ghostwatch: {summary} {_one_line(content.token_tag)}",
        "summary": summary[:1].upper() + summary[1:] + ".",
        "empty": is_empty(content),
        "greeting": labels["greeting"].format(name=_one_line(content.owner_name)),
        "generated": when(content.generated_at),
        "times_in": labels["times_in"].format(zone=_one_line(content.time_zone)),
        "account": _one_line(content.account),
        "footer": labels["footer"].format(account=_one_line(content.account)),
        "drafts": drafts,
        "tasks": tasks,
        "flags": flags,
        "upcoming": upcoming,
        "help_text": content.help_text,
        "help_blocks": _help_blocks(content.help_text),
    }


# --- text --------------------------------------------------------------------------------


def _heading(title: str, count: int | None = None) -> list[str]:
    line = title.upper() if count is None else f"{title.upper()} ({count})"
    line = line[:TEXT_WIDTH]
    return ["", "", line, "=" * len(line), ""]


def _render_text(view: dict[str, Any]) -> str:
    lab: dict[str, str] = view["labels"]
    out: list[str] = [*_wrap(view["greeting"]), ""]
    out += _wrap(lab["nothing"] if view["empty"] else view["summary"])
    out += _wrap(f"{lab['account']}: {view['account']} · {view['generated']}")
    out += _wrap(f"({view['times_in']})")
    if view["drafts"]:
        out += _heading(lab["drafts"], len(view["drafts"]))
        for d in view["drafts"]:
            lead = f"{d['number']}. "
            pad = " " * len(lead)
            out += _wrap(f"{lab['to']}: {d['to']}", lead, pad)
            out += _wrap(f"{lab['subject']}: {d['subject']}", pad)
            out += _wrap(f"{lab['step']}: {d['step']}", pad)
            out += _wrap(f"{lab['why']}: {d['why']}", pad)
            if d["auto"]:
                out += _wrap(f"{lab['auto']}: {d['when']}, {lab['auto_unless']}", pad)
            else:
                out += _wrap(f"{lab['due']}: {d['when']}", pad)
            out += _wrap(f"{lab['attachments']}: {d['attachments']}", pad)
            out.append("")
            out += [f"{_BODY_INDENT}{line}" if line else "" for line in d["body_lines"]]
            out.append("")
            out += _wrap(f"{lab['reply']}: {' · '.join(d['commands'])}", pad)
            out.append("")
        out.pop()
    if view["tasks"]:
        out += _heading(lab["tasks"], len(view["tasks"]))
        for t in view["tasks"]:
            out += _wrap(f"{t['kind']} · {t['counterpart']} · {t['subject']}", "- ", "  ")
            out += _wrap(t["text"], "  ")
            if t["phone"]:
                out += _wrap(f"{lab['phone']}: {t['phone']}", "  ")
            out += [line for item in t["checklist"] for line in _wrap(item, "  [ ] ", "      ")]
            out += _wrap(f"{lab['thread']}: {t['thread']}", "  ")
            out.append("")
        out.pop()
    if view["flags"]:
        out += _heading(lab["flags"], len(view["flags"]))
        for f in view["flags"]:
            out += _wrap(f"{f['label']}: {f['text']}", "- ", "  ")
    if view["upcoming"]:
        out += _heading(lab["upcoming"], len(view["upcoming"]))
        for u in view["upcoming"]:
            out += _wrap(f"{u['when']} · {u['step']}", "- ", "  ")
            out += _wrap(f"{lab['to']}: {u['to']}", "  ")
            out += _wrap(f"{lab['subject']}: {u['subject']}", "  ")
            out += _wrap(f"{lab['stop']}: {u['stop']}", "  ")
            out.append("")
        out.pop()
    out += _heading(lab["how"])
    out += _wrap_help(view["help_text"])
    out += ["", "-- ", *_wrap(view["footer"])]
    return "\n".join(out) + "\n"


# --- HTML --------------------------------------------------------------------------------


@functools.cache
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render_html(view: dict[str, Any]) -> str:
    return _environment().get_template(TEMPLATE).render(view)


# --- entry point -------------------------------------------------------------------------


def render_digest(content: DigestContent) -> RenderedDigest:
    """The digest's Subject (ending with the token tag), text part and HTML part."""
    view = _view(content)
    return RenderedDigest(subject=view["subject"], text=_render_text(view), html=_render_html(view))
