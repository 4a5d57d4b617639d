"""The configuration reference, generated from the pydantic models so that it cannot drift.

Every table of the file is a model (:mod:`ghostwatch.config`, :mod:`ghostwatch.policy`);
this module walks them from :class:`~ghostwatch.config.Settings` down and writes one
Markdown section per table, with a row per key: its type (and constraints), its
default and the field's description. A field added to a model shows up on its own.

Regenerate ``docs/configuration.md`` with::

    python -m ghostwatch.configref > docs/configuration.md
"""

from __future__ import annotations

import inspect
import io
import json
import re
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ghostwatch.config import DEFAULT_SEARCH_PATHS, POLICY_KEYS, ServerSettings, Settings

__all__ = ["render_reference"]

COMMAND = "python -m ghostwatch.configref > docs/configuration.md"

#: The field of :class:`Settings` whose keys sit at the top level of the file
#: (``Settings._gather_policy`` moves :data:`POLICY_KEYS` into it).
FLATTENED_FIELD = "policy"

#: Defaults filled in by a validator rather than by the field, by (table, key).
#: Each entry must name an existing key: a stale one makes rendering fail.
DEFAULT_NOTES: Mapping[tuple[str, str], str] = {
    ("[policies.NAME]", "name"): "NAME (the table's name)",
    ("[policies.NAME]", "stage"): "NAME, when NAME is a stage; else required",
    ("[[policies.NAME.steps]]", "anchor"): "`last_outgoing` for the first step, else `previous`",
}

SOURCE_NOTE = "(one of the password sources)"

_SCALARS: Mapping[object, tuple[str, str]] = {
    str: ("string", "strings"),
    int: ("integer", "integers"),
    float: ("number", "numbers"),
    bool: ("boolean", "booleans"),
    Path: ("path", "paths"),
    Decimal: ("decimal", "decimals"),
    date: ("date", "dates"),
    time: ("time of day", "times of day"),
    datetime: ("date-time", "date-times"),
}
_SEQUENCES = (list, tuple, set, frozenset, Sequence)
_MAPPINGS = (dict, Mapping)
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# Escapes for ruff (RUF001): an en dash for ranges, greater- and less-than-or-equal signs.
_DASH, _GE, _LE = "\u2013", "\u2265", "\u2264"


@dataclass(frozen=True)
class Row:
    """One key of a table, every cell already Markdown."""

    key: str
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class Section:
    """One table of the file: its TOML header (``""`` for the top level) and its keys."""

    header: str
    level: int
    intro: str
    rows: tuple[Row, ...]


# --- Markdown helpers --------------------------------------------------------------------


def _code(text: str) -> str:
    """``text`` as a Markdown code span, whatever backticks it holds."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _prose(text: str) -> str:
    """A docstring or description, from reStructuredText-ish to Markdown."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _cell(text: str) -> str:
    """Text fit for a table cell: one line, pipes escaped (also inside code spans)."""
    return " ".join(text.split()).replace("|", r"\|")


def _docstring(model: type[BaseModel]) -> str:
    """The model's own docstring, else the nearest one of a ghostwatch base class.

    Pydantic's own classes are skipped: their docstrings are about pydantic.
    """
    for cls in model.__mro__:
        doc = cls.__dict__.get("__doc__")
        if doc and cls.__module__.startswith("ghostwatch."):
            return _prose(inspect.cleandoc(doc))
    return ""


# --- types -------------------------------------------------------------------------------


def _strip_none(annotation: Any) -> Any:
    """``X | None`` -> ``X``: an unset optional key is shown by its default instead."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _choices(values: Sequence[object]) -> str:
    shown = [_code(v if isinstance(v, str) else _toml(v)) for v in values]
    if len(shown) == 1:
        return f"only {shown[0]}"
    return "one of " + ", ".join(shown)


def _type_text(annotation: Any) -> str:
    """A readable name for a key's type: "string", "list of strings", "one of `a`, `b`"."""
    tp = _strip_none(annotation)
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Literal:
        return _choices(args)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return _choices([member.value for member in tp])
    if origin in (Union, types.UnionType):
        return " or ".join(_type_text(a) for a in args if a is not type(None))
    if origin in _SEQUENCES and args:
        return "list of " + _plural(args[0])
    if origin in _MAPPINGS and len(args) == 2:
        return "table of " + _plural(args[1])
    if tp in _SCALARS:
        return _SCALARS[tp][0]
    if tp is Any:
        return "any value"
    return str(getattr(tp, "__name__", tp))


def _plural(annotation: Any) -> str:
    tp = _strip_none(annotation)
    if tp in _SCALARS:
        return _SCALARS[tp][1]
    return f"values, each {_type_text(tp)}"


def _nested(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """How a key holds a model: ``table``, ``array`` (of tables) or ``map`` (NAME -> table)."""
    tp = _strip_none(annotation)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "table", tp
    origin = get_origin(tp)
    args = get_args(tp)
    if origin in _SEQUENCES and args:
        item = _strip_none(args[0])
        if isinstance(item, type) and issubclass(item, BaseModel):
            return "array", item
    if origin in _MAPPINGS and len(args) == 2:
        value = _strip_none(args[1])
        if isinstance(value, type) and issubclass(value, BaseModel):
            return "map", value
    return None


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _constraints(field: FieldInfo) -> list[str]:
    """ge/gt/le/lt, lengths and patterns in a compact form: "1-1000", ">0, <=1440"."""
    found: dict[str, Any] = {}
    for meta in field.metadata:
        for name in ("gt", "ge", "lt", "le", "min_length", "max_length", "pattern", "multiple_of"):
            value = getattr(meta, name, None)
            if value is not None:
                found[name] = value
    out: list[str] = []
    if "ge" in found and "le" in found:
        out.append(f"{_number(found['ge'])}{_DASH}{_number(found['le'])}")
    else:
        for name, sign in (("ge", _GE), ("gt", ">"), ("lt", "<"), ("le", _LE)):
            if name in found:
                out.append(f"{sign}{_number(found[name])}")
    if "ge" in found and "le" in found:
        for name, sign in (("gt", ">"), ("lt", "<")):
            if name in found:
                out.append(f"{sign}{_number(found[name])}")
    low, high = found.get("min_length"), found.get("max_length")
    if low == 1 and high is None:
        out.append("non-empty")
    elif low is not None and high is not None:
        out.append(f"length {low}{_DASH}{high}")
    elif low is not None:
        out.append(f"length {_GE}{low}")
    elif high is not None:
        out.append(f"length {_LE}{high}")
    if "multiple_of" in found:
        out.append(f"multiple of {_number(found['multiple_of'])}")
    if "pattern" in found:
        pattern = found["pattern"]
        out.append("matching " + _code(pattern if isinstance(pattern, str) else pattern.pattern))
    return out


# --- defaults ----------------------------------------------------------------------------


def _toml(value: object) -> str:
    """A default value written as TOML (an inline value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return _toml(value.value)
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Path):
        return _toml(str(value))
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return _toml(value.model_dump(exclude_defaults=True))
    if isinstance(value, Mapping):
        items = [
            f"{k if _BARE_KEY.match(str(k)) else _toml(str(k))} = {_toml(v)}"
            for k, v in value.items()
            if v is not None
        ]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def _factory_doc(field: FieldInfo) -> str | None:
    """The docstring of a named default factory, which is shown instead of its result.

    A named function (``default_database_url``) computes its value from the machine it
    runs on; calling it would write this machine's paths into the reference. Classes
    (``list``, a model) and lambdas are called.
    """
    factory = field.default_factory
    if inspect.isfunction(factory) and factory.__name__ != "<lambda>":
        doc = inspect.getdoc(factory)
        if doc:
            return "computed: " + _prose(doc.split("\n\n")[0]).rstrip(".")
    return None


def _is_password_source(owner: type[BaseModel], key: str) -> bool:
    return issubclass(owner, ServerSettings) and (key == "password" or key.startswith("password_"))


def _default_text(header: str, owner: type[BaseModel], key: str, field: FieldInfo) -> str:
    note = DEFAULT_NOTES.get((header, key))
    if note is not None:
        return note
    if _is_password_source(owner, key):
        return SOURCE_NOTE
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        if field.default_factory_takes_validated_data:
            return "computed from the other keys"
        described = _factory_doc(field)
        if described is not None:
            return described
        value = field.get_default(call_default_factory=True)
    else:
        value = field.default
    return _value_text(value)


def _value_text(value: object) -> str:
    if value is None:
        return "not set"
    if isinstance(value, BaseModel):
        try:
            if value == type(value)():
                return "all defaults"
        except ValidationError:
            pass
    if (
        isinstance(value, Mapping)
        and value
        and all(isinstance(v, BaseModel) for v in value.values())
    ):
        return "tables " + ", ".join(_code(str(k)) for k in value)
    return _code(_toml(value))


# --- the walk ----------------------------------------------------------------------------


def _fields(model: type[BaseModel]) -> Iterator[tuple[type[BaseModel], str, FieldInfo]]:
    """(declaring model, key, field) of a table; the policy keys are spliced into the top."""
    for key, field in model.model_fields.items():
        nested = _nested(field.annotation)
        if model is Settings and key == FLATTENED_FIELD and nested is not None:
            inner = nested[1]
            for inner_key, inner_field in inner.model_fields.items():
                yield inner, inner_key, inner_field
        else:
            yield model, key, field


def _intro(model: type[BaseModel]) -> str:
    parts = [_docstring(model)]
    if model is Settings:
        nested = _nested(Settings.model_fields[FLATTENED_FIELD].annotation)
        if nested is not None:
            keys = " and ".join(
                [", ".join(_code(k) for k in POLICY_KEYS[:-1]), _code(POLICY_KEYS[-1])]
            )
            parts.append(f"**Policy keys** ({keys}). {_docstring(nested[1])}")
    return "\n\n".join(p for p in parts if p)


def _walk(
    model: type[BaseModel],
    *,
    prefix: str,
    header: str,
    level: int,
    stack: tuple[type[BaseModel], ...],
    out: list[Section],
) -> None:
    rows: list[Row] = []
    children: list[tuple[type[BaseModel], str, str]] = []
    sources: list[str] = []
    for owner, key, field in _fields(model):
        dotted = f"{prefix}.{key}" if prefix else key
        nested = _nested(field.annotation)
        if nested is None:
            kind = _type_text(field.annotation)
            constraints = _constraints(field)
            if constraints:
                kind += ", " + ", ".join(constraints)
            if _is_password_source(owner, key):
                sources.append(_code(key))
        else:
            how, child = nested
            if how == "table":
                child_prefix, child_header, kind = dotted, f"[{dotted}]", "table"
            elif how == "array":
                child_prefix, child_header, kind = dotted, f"[[{dotted}]]", "array of tables"
            else:
                child_prefix = f"{dotted}.NAME"
                child_header, kind = f"[{child_prefix}]", "tables by name"
            kind += ", see " + _code(child_header)
            if child not in stack:
                children.append((child, child_prefix, child_header))
        rows.append(
            Row(
                key=_code(key),
                type=_cell(kind),
                default=_cell(_default_text(header, owner, key, field)),
                description=_cell(_prose(field.description or "")),
            )
        )
    intro = _intro(model)
    if sources:
        intro += "\n\nSet exactly one of the password sources: " + ", ".join(sources) + "."
    out.append(Section(header=header, level=level, intro=intro.strip(), rows=tuple(rows)))
    for child, child_prefix, child_header in children:
        _walk(
            child,
            prefix=child_prefix,
            header=child_header,
            level=level + 1,
            stack=(*stack, child),
            out=out,
        )


def sections() -> list[Section]:
    """Every table of the configuration file, top level first, depth first."""
    out: list[Section] = []
    _walk(Settings, prefix="", header="", level=1, stack=(Settings,), out=out)
    keys = {(s.header, row.key) for s in out for row in s.rows}
    stale = [note for note in DEFAULT_NOTES if (note[0], _code(note[1])) not in keys]
    if stale:
        raise RuntimeError(f"DEFAULT_NOTES names keys that no longer exist: {stale}")
    return out


# --- the document ------------------------------------------------------------------------


def _preface(found: Sequence[Section]) -> list[str]:
    config = Settings.model_config
    env_prefix = str(config.get("env_prefix") or "")
    nesting = str(config.get("env_nested_delimiter") or "")
    first = next((s for s in found if s.header and s.rows), None)
    example = "DATABASE__URL"
    if first is not None:
        table = first.header.strip("[]").replace(".", nesting).upper()
        example = f"{table}{nesting}{first.rows[0].key.strip('`').upper()}"
    paths = "\n".join(f"   - `{p}`" for p in DEFAULT_SEARCH_PATHS)
    policy_tables = ", ".join(
        _code(s.header)
        for s in found
        if s.level == 2 and s.header.strip("[]").split(".")[0] in POLICY_KEYS
    )
    return [
        "# Configuration reference",
        "",
        "<!-- Generated by `" + COMMAND + "`: do not edit by hand. -->",
        "",
        "ghostwatch is configured by one TOML file. This reference is generated from the "
        "models that validate that file, so it lists every key there is; regenerate it "
        "after changing them:",
        "",
        f"    {COMMAND}",
        "",
        "`config.example.toml` is a commented example to start from; "
        "`ghostwatch check-config` validates a file.",
        "",
        "## Where the file is",
        "",
        "1. `--config PATH`, when given;",
        "2. else `$GHOSTWATCH_CONFIG`, when set;",
        "3. else the first of these that exists:",
        "",
        paths,
        "",
        "## Environment overrides",
        "",
        f"An environment variable `{env_prefix}` + the key's path in capitals, with "
        f"`{nesting}` between the levels, overrides the file: `{env_prefix}{example}=...`. "
        f"A list or an array of tables takes a JSON value, which replaces the whole list "
        f"(`{env_prefix}ACCOUNTS='[...]'`). The policy tables ({policy_tables}) are not "
        "read from the environment.",
        "",
        "In the tables below, a key whose default is *not set* may be left out; *required* "
        "ones may not.",
        "",
    ]


def _render_section(section: Section) -> list[str]:
    if section.header:
        title = "#" * min(section.level, 4) + " " + _code(section.header)
    else:
        title = "## Top level"
    lines = [title, ""]
    if section.intro:
        lines += [section.intro, ""]
    lines += ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    lines += [f"| {r.key} | {r.type} | {r.default} | {r.description} |" for r in section.rows]
    lines.append("")
    return lines


def render_reference() -> str:
    """The Markdown configuration reference (``docs/configuration.md``)."""
    found = sections()
    lines = _preface(found)
    for section in found:
        lines += _render_section(section)
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(encoding="utf-8")  # dashes and signs
    print(render_reference(), end="")
