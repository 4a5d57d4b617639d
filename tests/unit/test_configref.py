"""The generated configuration reference: committed, complete, and covering the example."""

from __future__ import annotations

import re
import tomllib
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from ghostwatch.config import Settings
from ghostwatch.configref import FLATTENED_FIELD, render_reference

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"
EXAMPLE = ROOT / "config.example.toml"

_HEADING = re.compile(r"^#+ `(\[[^`]+\])`")
_ROW = re.compile(r"^\| `([^`]+)` \|")


def reference_rows(text: str) -> set[tuple[str, str]]:
    """(TOML table header, key) of every table row; the top-level table's header is ""."""
    rows: set[tuple[str, str]] = set()
    header = ""
    for line in text.splitlines():
        if heading := _HEADING.match(line):
            header = heading.group(1)
        elif row := _ROW.match(line):
            rows.add((header, row.group(1)))
    return rows


def _models_in(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """The models a field holds, with how: "table", "array" (list) or "map" (dict)."""
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "table", annotation
    elif origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            yield from _models_in(arg)
    elif origin is list:
        yield from (("array", m) for _, m in _models_in(get_args(annotation)[0]))
    elif origin is dict:
        yield from (("map", m) for _, m in _models_in(get_args(annotation)[1]))


def model_fields(model: type[BaseModel], prefix: str, header: str) -> Iterator[tuple[str, str]]:
    """(TOML table header, key) of every field of ``model`` and of the models below it."""
    for key, field in model.model_fields.items():
        nested = list(_models_in(field.annotation))
        if model is Settings and key == FLATTENED_FIELD:
            # Settings.policy is not a key: its fields sit at the top level of the file.
            (_, inner), *_ = nested
            yield from model_fields(inner, prefix, header)
            continue
        yield header, key
        dotted = f"{prefix}.{key}" if prefix else key
        for how, child in nested:
            if how == "table":
                yield from model_fields(child, dotted, f"[{dotted}]")
            elif how == "array":
                yield from model_fields(child, dotted, f"[[{dotted}]]")
            else:
                yield from model_fields(child, f"{dotted}.NAME", f"[{dotted}.NAME]")


def example_keys(table: dict[str, Any], prefix: str, header: str) -> Iterator[tuple[str, str]]:
    """(TOML table header, key) of every key the example file sets, walking into tables."""
    for key, value in table.items():
        yield header, key
        dotted = f"{prefix}.{key}" if prefix else key
        if dotted == "policies":
            # [policies.NAME]: the level below is a name of your choosing, not a key.
            for policy in value.values():
                yield from example_keys(policy, "policies.NAME", "[policies.NAME]")
        elif isinstance(value, dict):
            yield from example_keys(value, dotted, f"[{dotted}]")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    yield from example_keys(item, dotted, f"[[{dotted}]]")


def test_committed_reference_is_current() -> None:
    """docs/configuration.md is exactly what the generator writes from today's models."""
    committed = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    assert committed == render_reference(), (
        "run python -m ghostwatch.configref > docs/configuration.md"
    )


def test_every_model_field_is_documented() -> None:
    """Each field of every config model has a row in the section of its own table."""
    rows = reference_rows(render_reference())
    expected = set(model_fields(Settings, "", ""))
    assert ("[accounts.imap]", "password_command") in expected  # the walk reaches deep
    assert ("[[policies.NAME.steps]]", "anchor") in expected
    missing = sorted(expected - rows)
    assert not missing, f"fields missing from the reference: {missing}"


def test_every_example_key_is_documented() -> None:
    """Each key config.example.toml sets (policies and arrays walked into) is in the reference."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    rows = reference_rows(render_reference())
    used = set(example_keys(data, "", ""))
    assert ("[[policies.NAME.steps]]", "after_term") in used  # the walk reaches deep
    missing = sorted(used - rows)
    assert not missing, f"keys of config.example.toml missing from the reference: {missing}"


def test_reference_does_not_depend_on_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults computed from the environment (the database path) are described, not run."""
    before = render_reference()
    monkeypatch.setenv("STATE_DIRECTORY", "/elsewhere/state")
    monkeypatch.setenv("HOME", "/elsewhere/home")
    monkeypatch.setenv("XDG_STATE_HOME", "/elsewhere/xdg")
    after = render_reference()
    assert after == before
    assert "/elsewhere" not in after
