"""The commands of a reply to the digest: verbs, items, snooze dates, edit texts, reports.

``today`` is fixed (Monday 30 November 2026); nothing reads the clock.
"""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest

from ghostwatch.errors import GhostwatchError
from ghostwatch.replycommands import (
    HELP_TEXT_EN,
    HELP_TEXT_IT,
    Command,
    Parsed,
    ReplyCommandError,
    parse,
)

TODAY = date(2026, 11, 30)  # a Monday


def p(text: str) -> Parsed:
    return parse(text, today=TODAY)


def one(text: str) -> Command:
    """The single command of ``text``, which must parse cleanly."""
    parsed = p(text)
    assert parsed.not_understood == ()
    assert len(parsed.commands) == 1
    return parsed.commands[0]


# -- verbs and synonyms ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "verb", "items"),
    [
        ("send 1", "send", (1,)),
        ("invia 1", "send", (1,)),
        ("skip 2", "skip", (2,)),
        ("salta 2", "skip", (2,)),
        ("stop 4", "stop", (4,)),
        ("ferma 4", "stop", (4,)),
        ("paid 5", "paid", (5,)),
        ("pagato 5", "paid", (5,)),
        ("pagata 5", "paid", (5,)),
        ("help", "help", ()),
        ("aiuto", "help", ()),
    ],
)
def test_each_verb_and_its_italian_synonym(line: str, verb: str, items: tuple[int, ...]) -> None:
    command = one(line)
    assert (command.verb, command.items, command.until, command.text) == (verb, items, None, None)
    assert command.line == line


def test_verbs_are_case_insensitive_and_keep_the_line_as_written() -> None:
    command = one("SEND 1")
    assert command.verb == "send"
    assert command.line == "SEND 1"


def test_commands_come_back_in_reading_order() -> None:
    parsed = p("skip 2\nsend 1\npaid 3")
    assert [c.verb for c in parsed.commands] == ["skip", "send", "paid"]


# -- items -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "items"),
    [
        ("send 1 3", (1, 3)),
        ("send 1-3", (1, 2, 3)),
        ("send 1 - 3", (1, 2, 3)),
        ("send 1\u20133", (1, 2, 3)),  # en dash, as phones autocorrect it
        ("send 1,2", (1, 2)),
        ("send #1 #3", (1, 3)),
        ("send #1-#3", (1, 2, 3)),
        ("send 3 1 3", (1, 3)),
        ("send 1, 2 and 4", (1, 2, 4)),
        ("invia 1, 2 e 4", (1, 2, 4)),
        ("send 1-2 5", (1, 2, 5)),
        ("send 1-100", tuple(range(1, 101))),
    ],
)
def test_item_lists_and_ranges_become_sorted_distinct_numbers(
    line: str, items: tuple[int, ...]
) -> None:
    assert one(line).items == items


@pytest.mark.parametrize("line", ["send all", "SEND ALL", "invia tutti", "invia tutte"])
def test_all_selects_every_item(line: str) -> None:
    assert one(line).items == "all"


@pytest.mark.parametrize(
    ("line", "report"),
    [
        ("send 0", "send 0: items are numbered from 1"),
        ("send 3-1", "send 3-1: empty range"),
        ("send 0-2", "send 0-2: items are numbered from 1"),
        ("send 1-101", "send 1-101: a range covers at most 100 items"),
        ("send", "send: no item numbers"),
        ("send x", "send x: 'x' is not an item number"),
        ("send all 3", "send all 3: use either 'all' or item numbers"),
        ("stop all", "stop all: stop needs item numbers, not 'all'"),
        ("pagato tutti", "pagato tutti: paid needs item numbers, not 'all'"),
        ("send 12345678", "send 12345678: item number too large"),
    ],
)
def test_bad_items_are_reported_with_a_reason(line: str, report: str) -> None:
    parsed = p(line)
    assert parsed.commands == ()
    assert parsed.not_understood == (report,)


def test_many_ranges_together_are_capped_too() -> None:
    parsed = p("send 1-100 201-300")
    assert parsed.not_understood == ("send 1-100 201-300: at most 100 items per command",)


# -- snooze ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "until"),
    [
        ("snooze 2 3d", date(2026, 12, 3)),
        ("snooze 2 2w", date(2026, 12, 14)),
        ("snooze 2 5 days", date(2026, 12, 5)),
        ("snooze 2 for 1 week", date(2026, 12, 7)),
        ("snooze 2 36h", date(2026, 12, 2)),  # hours round up to whole days
        ("snooze 2 3h", date(2026, 12, 1)),  # ... and never to today
        ("snooze 2 until 10 dec", date(2026, 12, 10)),
        ("snooze 2 until Dec 10th", date(2026, 12, 10)),
        ("snooze 2 until 2026-12-10", date(2026, 12, 10)),
        ("snooze 2 until 10/12", date(2026, 12, 10)),  # day first
        ("snooze 2 until 10.12.", date(2026, 12, 10)),
        ("snooze 2 until 5 jan", date(2027, 1, 5)),  # next such date
        ("snooze 2 until 30 nov", date(2026, 11, 30)),  # on or after today
        ("snooze 2 until monday", date(2026, 12, 7)),  # a weekday is the next one
        ("snooze 2 until tomorrow", date(2026, 12, 1)),
        ("rimanda 2 3g", date(2026, 12, 3)),
        ("rimanda 2 5 giorni", date(2026, 12, 5)),
        ("rimanda 2 2 sett", date(2026, 12, 14)),
        ("rimanda 2 1 settimana", date(2026, 12, 7)),
        ("rimanda 2 48 ore", date(2026, 12, 2)),
        ("rimanda 2 fino al 10 dicembre", date(2026, 12, 10)),
        ("rimanda 2 al 10 dic", date(2026, 12, 10)),
        ("rimanda 2 fino all'11 dicembre", date(2026, 12, 11)),
        ("rimanda 2 a venerdì", date(2026, 12, 4)),
    ],
)
def test_snooze_resolves_to_a_date(line: str, until: date) -> None:
    command = one(line)
    assert (command.verb, command.items, command.until) == ("snooze", (2,), until)


def test_snooze_takes_several_items_and_all() -> None:
    assert one("snooze 1-3 2d").items == (1, 2, 3)
    assert one("snooze 1 3 until 10 dec").items == (1, 3)
    assert one("rimanda tutti 3g").items == "all"


def test_snooze_dates_follow_today() -> None:
    """The same words on another day give another date: no wall clock is read."""
    later = parse("snooze 2 until 10 dec\nsnooze 2 3d", today=date(2026, 12, 11))
    assert [c.until for c in later.commands] == [date(2027, 12, 10), date(2026, 12, 14)]


@pytest.mark.parametrize(
    ("line", "report"),
    [
        ("snooze 2", "snooze 2: no duration or date"),
        ("snooze 2 3", "snooze 2 3: no duration or date"),
        ("rimanda 2", "rimanda 2: no duration or date"),
        ("snooze 2 0d", "snooze 2 0d: the duration must be at least 1"),
        (
            "snooze 2 3 months",
            "snooze 2 3 months: unknown unit 'months' (use h, d or w; ore, g, sett)",
        ),
        ("snooze 2 until banana", "snooze 2 until banana: cannot read the date 'banana'"),
        ("snooze 2 until 31 nov", "snooze 2 until 31 nov: cannot read the date '31 nov'"),
        ("snooze 2 until 2025-12-10", "snooze 2 until 2025-12-10: that date is in the past"),
        ("snooze 2 60w", "snooze 2 60w: a snooze reaches at most a year ahead"),
        (
            "snooze 2 until 2028-01-01",
            "snooze 2 until 2028-01-01: a snooze reaches at most a year ahead",
        ),
        ("snooze 0 3d", "snooze 0 3d: items are numbered from 1"),
        ("snooze 3d", "snooze 3d: no item numbers"),
    ],
)
def test_bad_snoozes_are_reported_with_a_reason(line: str, report: str) -> None:
    parsed = p(line)
    assert parsed.commands == ()
    assert parsed.not_understood == (report,)


# -- edit --------------------------------------------------------------------------------


def test_edit_takes_the_lines_below_up_to_end() -> None:
    parsed = p(
        "edit 1\n"
        "Hi Bob,\n"
        "\n"
        "just checking whether the logo files reached you.\n"
        "\n"
        "Kind regards,\n"
        "Mario\n"
        "end\n"
        "send 1 2\n"
    )
    assert parsed.not_understood == ()
    edit, send = parsed.commands
    assert (edit.verb, edit.items, edit.line) == ("edit", (1,), "edit 1")
    assert edit.text == (
        "Hi Bob,\n\njust checking whether the logo files reached you.\n\nKind regards,\nMario"
    )
    assert (send.verb, send.items) == ("send", (1, 2))


def test_modifica_ends_at_fine() -> None:
    parsed = p("modifica 2:\nCiao Carol,\nla fattura è scaduta.\nFINE\nsalta 3")
    assert parsed.not_understood == ()
    assert parsed.commands[0] == Command(
        "edit", (2,), text="Ciao Carol,\nla fattura è scaduta.", line="modifica 2:"
    )
    assert parsed.commands[1].verb == "skip"


def test_edit_without_end_runs_to_the_end_of_the_text() -> None:
    """Lines that look like commands are part of the text until "end"."""
    command = one("edit 3\nsend 1 when you can\nthanks")
    assert command.text == "send 1 when you can\nthanks"


@pytest.mark.parametrize(
    ("text", "report"),
    [
        ("edit 1\nend", "edit 1: no new text on the lines below it"),
        ("edit 1\n\n  \nEND.", "edit 1: no new text on the lines below it"),
        ("edit 1 2\nHi\nend", "edit 1 2: edit one item at a time"),
        ("edit all\nHi\nend", "edit all: edit one item at a time"),
        ("modifica tutti\nCiao\nfine", "modifica tutti: edit one item at a time"),
        ("edit\nHi\nend", "edit: no item numbers"),
    ],
)
def test_bad_edits_are_reported_once_and_their_text_is_consumed(text: str, report: str) -> None:
    parsed = p(text + "\nsend 4")
    assert parsed.not_understood == (report,)
    assert [(c.verb, c.items) for c in parsed.commands] == [("send", (4,))]


# -- what is ignored and what is reported ---------------------------------------------------


def test_greetings_blank_lines_and_sign_off_are_ignored() -> None:
    parsed = p("Hi Anna,\n\nok\nsend 1\n\nThanks!\nGrazie mille\nMario Rossi\nRossi Design srl")
    assert [c.verb for c in parsed.commands] == ["send"]
    assert parsed.not_understood == ()


@pytest.mark.parametrize("greeting", ["ok", "OK.", "thanks", "Thank you!", "grazie", "Ciao,"])
def test_a_greeting_alone_is_neither_command_nor_report(greeting: str) -> None:
    assert p(greeting) == Parsed((), ())


def test_commands_after_a_sign_off_are_still_read() -> None:
    parsed = p("send 1\nthanks\nskip 2\nsnooze 3")
    assert [c.verb for c in parsed.commands] == ["send", "skip"]
    assert parsed.not_understood == ("snooze 3: no duration or date",)


def test_prose_before_any_command_is_reported() -> None:
    parsed = p("Could you make the second one shorter?\nsend 1")
    assert parsed.not_understood == ("Could you make the second one shorter?: not a command",)
    assert [c.verb for c in parsed.commands] == ["send"]


def test_long_lines_are_shortened_in_reports() -> None:
    (report,) = p("x" * 300).not_understood
    assert report == "x" * 59 + "\u2026: not a command"


def test_reports_are_capped_and_the_rest_counted() -> None:
    parsed = p("\n".join(f"nonsense {n}" for n in range(25)))
    assert len(parsed.not_understood) == 21
    assert parsed.not_understood[-1] == "5 more lines not understood"


def test_bullets_and_trailing_punctuation_are_tolerated() -> None:
    assert one("- send 1.").items == (1,)
    assert one("* Send: 1 and 3!").items == (1, 3)


# -- help texts ----------------------------------------------------------------------------

_EXAMPLE = re.compile(r"^  (\S.*?)\s{2,}\S")


def _normal_verb(example: str) -> str:
    word = example.split(maxsplit=1)[0]
    return {"modifica": "edit"}.get(word, word)


@pytest.mark.parametrize("help_text", [HELP_TEXT_EN, HELP_TEXT_IT])
def test_every_example_in_the_help_texts_parses(help_text: str) -> None:
    examples = [m.group(1) for line in help_text.splitlines() if (m := _EXAMPLE.match(line))]
    assert len(examples) == 8
    for example in examples:
        # An edit needs its text below it.
        parsed = p(example + "\nnew text" if _normal_verb(example) == "edit" else example)
        assert parsed.not_understood == (), example
        assert len(parsed.commands) == 1, example


# -- misuse --------------------------------------------------------------------------------


def test_a_datetime_for_today_is_a_programming_error() -> None:
    with pytest.raises(ReplyCommandError, match=r"datetime\.date"):
        parse("send 1", today=datetime(2026, 11, 30, 9, 0))


def test_an_unknown_time_zone_is_a_programming_error() -> None:
    with pytest.raises(GhostwatchError, match="time zone"):
        parse("send 1", today=TODAY, tz="Mars/Olympus_Mons")


def test_a_real_time_zone_is_accepted() -> None:
    parsed = parse("snooze 2 until tomorrow", today=TODAY, tz="Europe/Rome")
    assert parsed.commands[0].until == date(2026, 12, 1)
