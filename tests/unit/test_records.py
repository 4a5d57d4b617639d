"""ghostwatch.records.builder: values built the fast way cannot be told from the class's."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ghostwatch.facts import PlannedStep
from ghostwatch.records import builder

ARGS = ("t1", "work", "nudge", 0, "send", "nudge", "approve",
        datetime(2026, 11, 30, 9, tzinfo=UTC), "no reply for 5 days", "prospect",
        "bob@client.example", False, Decimal("40.00"), None, None)  # fmt: skip


def test_a_built_step_equals_one_the_class_builds() -> None:
    build = builder(PlannedStep)
    fast, slow = build(*ARGS), PlannedStep(*ARGS)
    assert type(fast) is PlannedStep
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    assert fast.checklist == ()  # the default
    assert dataclasses.astuple(fast) == dataclasses.astuple(slow)


def test_keywords_and_defaults_are_the_class_own() -> None:
    build = builder(PlannedStep)
    names = [f.name for f in dataclasses.fields(PlannedStep)]
    kwargs: dict[str, Any] = dict(zip(names, ARGS, strict=False))
    assert build(**kwargs, checklist=("call",)) == PlannedStep(*ARGS, checklist=("call",))
    with pytest.raises(TypeError):
        build(*ARGS[:-1])  # type: ignore[call-arg]  # a field missing, refused as by the class


def test_a_built_value_stays_frozen_and_copies() -> None:
    value = builder(PlannedStep)(*ARGS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.step = "other"  # type: ignore[misc]
    assert copy.copy(value) == value
    assert copy.deepcopy(value) == value
    assert dataclasses.replace(value, step="other").step == "other"


def test_default_factories_give_each_value_its_own() -> None:
    @dataclass(frozen=True, slots=True)
    class Bag:
        items: list[str] = field(default_factory=list)

    build = builder(Bag)
    one, two = build(), build()
    assert one == Bag() and one.items is not two.items


def test_classes_a_twin_cannot_stand_for_are_refused() -> None:
    @dataclass(slots=True)
    class Mutable:
        x: int

    @dataclass(frozen=True)
    class NoSlots:
        x: int

    @dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("negative")

    @dataclass(frozen=True, slots=True)
    class Derived:
        x: int
        y: int = field(init=False, default=0)

    for cls in (Mutable, NoSlots, Checked, Derived, int):
        with pytest.raises(TypeError):
            builder(cls)
