"""Unit tests for ghostwatch.businesstime: holidays, business days, send windows, offsets.

All dates are fixed. Holiday facts the tables rely on are pinned by
``test_holiday_fixture_facts`` so a change in the ``holidays`` package shows up there
first rather than as a puzzling scheduling failure.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostwatch import businesstime
from ghostwatch.businesstime import (
    MAX_OFFSET_DAYS,
    Calendar,
    Offset,
    OffsetKind,
    parse_offset,
)

ROME = ZoneInfo("Europe/Rome")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")

IT = Calendar(tz="Europe/Rome", country="IT")
ROME_NO_HOLIDAYS = Calendar(tz="Europe/Rome")
US_NY = Calendar(tz="America/New_York", country="US")
UTC_CAL = Calendar()

TUESDAY_RULE = parse_offset("tuesday of the following week")


def rome(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ROME)


def ny(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=NEW_YORK)


def utc(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


def instant(t: datetime) -> datetime:
    """``t`` in UTC: ordering, equality and subtraction between two datetimes of the *same*
    zone use wall time and ignore fold, so absolute comparisons go through UTC."""
    return t.astimezone(UTC)


def same_instant_and_zone(actual: datetime, expected: datetime) -> bool:
    """Equal instants, and the actual value is expressed in the expected wall time."""
    return (
        instant(actual) == instant(expected)
        and actual.utcoffset() == expected.utcoffset()
        and actual.replace(tzinfo=None) == expected.replace(tzinfo=None)
    )


# --- Holiday facts the tables below rely on --------------------------------------------------


@pytest.mark.parametrize(
    ("cal", "day", "is_holiday"),
    [
        pytest.param(IT, date(2026, 12, 8), True, id="IT-2026-12-08-immacolata-is-a-tuesday"),
        pytest.param(IT, date(2025, 12, 25), True, id="IT-christmas-2025"),
        pytest.param(IT, date(2025, 12, 26), True, id="IT-santo-stefano-2025"),
        pytest.param(IT, date(2026, 12, 25), True, id="IT-christmas-2026-friday"),
        pytest.param(IT, date(2027, 1, 1), True, id="IT-new-year-2027"),
        pytest.param(IT, date(2027, 1, 6), True, id="IT-epiphany-2027"),
        pytest.param(IT, date(2027, 3, 29), True, id="IT-easter-monday-2027"),
        pytest.param(IT, date(2025, 12, 24), False, id="IT-christmas-eve-is-a-workday"),
        pytest.param(IT, date(2025, 11, 4), False, id="IT-4-november-2025-is-not-a-holiday"),
        pytest.param(IT, date(2026, 11, 26), False, id="IT-no-thanksgiving"),
        pytest.param(US_NY, date(2026, 11, 26), True, id="US-thanksgiving-2026"),
        pytest.param(US_NY, date(2026, 11, 27), False, id="US-black-friday-is-a-workday"),
        pytest.param(ROME_NO_HOLIDAYS, date(2026, 12, 25), False, id="no-country-no-holidays"),
    ],
)
def test_holiday_fixture_facts(cal: Calendar, day: date, is_holiday: bool) -> None:
    assert cal.is_holiday(day) is is_holiday
    assert (cal.holiday_name(day) is not None) is is_holiday
    # Every fixture day above is a weekday, so business day == not a holiday.
    assert day.weekday() < 5
    assert cal.is_business_day(day) is not is_holiday


def test_holiday_name_comes_from_the_holidays_package() -> None:
    assert IT.holiday_name(date(2027, 3, 29)) == "Easter Monday"
    assert US_NY.holiday_name(date(2026, 11, 26)) == "Thanksgiving Day"
    assert IT.holiday_name(date(2026, 11, 24)) is None


def test_extra_holidays_are_days_off_with_a_name() -> None:
    cal = Calendar(tz="Europe/Rome", country="IT", extra_holidays=frozenset({date(2026, 11, 24)}))
    assert cal.is_holiday(date(2026, 11, 24))
    assert not cal.is_business_day(date(2026, 11, 24))
    assert cal.holiday_name(date(2026, 11, 24)) == "Day off"
    assert cal.next_business_day(date(2026, 11, 23)) == date(2026, 11, 25)


def test_holiday_table_is_built_once_per_country_subdivision_year() -> None:
    cal = Calendar(tz="Europe/Berlin", country="DE", subdivision="BY")
    cal.is_holiday(date(2031, 5, 1))
    misses = businesstime._public_holidays.cache_info().misses
    for day in (date(2031, 1, 6), date(2031, 8, 15), date(2031, 12, 26)):
        cal.is_holiday(day)
    assert businesstime._public_holidays.cache_info().misses == misses
    assert cal.holiday_name(date(2031, 1, 6)) is not None  # Epiphany is Bavarian only
    assert not Calendar(tz="Europe/Berlin", country="DE", subdivision="BE").is_holiday(
        date(2031, 1, 6)
    )


# --- Calendar validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"tz": "Mars/Olympus_Mons"}, "unknown time zone", id="unknown-zone"),
        pytest.param({"tz": "Europe"}, "unknown time zone", id="zone-directory"),
        pytest.param({"tz": "../etc/passwd"}, "unknown time zone", id="zone-path-escape"),
        pytest.param({"tz": ""}, "unknown time zone", id="empty-zone"),
        pytest.param({"country": "XX"}, "no public holidays known", id="unknown-country"),
        pytest.param(
            {"country": "DE", "subdivision": "ZZ"}, "unknown subdivision", id="bad-subdiv"
        ),
        pytest.param({"subdivision": "BY"}, "without a country", id="subdiv-without-country"),
        pytest.param(
            {"window_start": time(17), "window_end": time(9)},
            "spans midnight",
            id="window-reversed",
        ),
        pytest.param(
            {"window_start": time(9), "window_end": time(9)}, "is empty", id="window-empty"
        ),
        pytest.param(
            {"window_start": time(9, tzinfo=UTC)}, "naive local time", id="window-time-aware"
        ),
        pytest.param({"workdays": frozenset()}, "workdays", id="no-workdays"),
        pytest.param({"workdays": frozenset({7})}, "workdays", id="workday-out-of-range"),
    ],
)
def test_calendar_refuses_bad_settings_with_a_clear_message(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Calendar(**kwargs)  # type: ignore[arg-type]


def test_calendar_normalises_country_and_subdivision_case() -> None:
    cal = Calendar(country="de", subdivision="by")
    assert (cal.country, cal.subdivision) == ("DE", "BY")


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 11, 20, 10, 0)
    with pytest.raises(ValueError, match="naive"):
        IT.in_window(naive)
    with pytest.raises(ValueError, match="naive"):
        TUESDAY_RULE.apply(naive, IT)


def test_a_datetime_where_a_date_belongs_is_refused() -> None:
    """A datetime's .date() is in its own zone; the calendar must not guess."""
    with pytest.raises(TypeError, match=r"cal\.local"):
        IT.is_business_day(utc(2026, 11, 22, 23, 30))


# --- The Tuesday rule (stage 2: first follow-up on the Tuesday of the week after) ----------


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        pytest.param(rome(2026, 11, 16, 15), rome(2026, 11, 24, 9), id="from-monday"),
        pytest.param(rome(2026, 11, 17, 15), rome(2026, 11, 24, 9), id="from-tuesday"),
        pytest.param(rome(2026, 11, 18, 15), rome(2026, 11, 24, 9), id="from-wednesday"),
        pytest.param(rome(2026, 11, 19, 15), rome(2026, 11, 24, 9), id="from-thursday"),
        pytest.param(rome(2026, 11, 20, 15), rome(2026, 11, 24, 9), id="from-friday"),
        pytest.param(rome(2026, 11, 21, 15), rome(2026, 11, 24, 9), id="from-saturday"),
        pytest.param(rome(2026, 11, 22, 15), rome(2026, 11, 24, 9), id="from-sunday"),
        pytest.param(rome(2026, 11, 22, 23, 59), rome(2026, 11, 24, 9), id="from-sunday-late"),
        pytest.param(rome(2026, 11, 16, 0, 0), rome(2026, 11, 24, 9), id="from-monday-midnight"),
        # Stated in UTC, but 23:30 UTC on Sunday is already Monday in Rome: a new week.
        pytest.param(utc(2026, 11, 22, 23, 30), rome(2026, 12, 1, 9), id="anchor-week-is-local"),
        # Week of 30 Nov: the Tuesday after is 8 Dec 2026, Immacolata -> Wednesday.
        pytest.param(rome(2026, 11, 30, 15), rome(2026, 12, 9, 9), id="holiday-from-monday"),
        pytest.param(rome(2026, 12, 1, 15), rome(2026, 12, 9, 9), id="holiday-from-tuesday"),
        pytest.param(rome(2026, 12, 2, 15), rome(2026, 12, 9, 9), id="holiday-from-wednesday"),
        pytest.param(rome(2026, 12, 3, 15), rome(2026, 12, 9, 9), id="holiday-from-thursday"),
        pytest.param(rome(2026, 12, 4, 15), rome(2026, 12, 9, 9), id="holiday-from-friday"),
        pytest.param(rome(2026, 12, 5, 15), rome(2026, 12, 9, 9), id="holiday-from-saturday"),
        pytest.param(rome(2026, 12, 6, 15), rome(2026, 12, 9, 9), id="holiday-from-sunday"),
        # Fall-back on Sunday 25 Oct 2026 does not disturb the 09:00 local start.
        pytest.param(rome(2026, 10, 23, 15), rome(2026, 10, 27, 9), id="across-fall-back"),
    ],
)
def test_tuesday_of_the_following_week(anchor: datetime, expected: datetime) -> None:
    assert same_instant_and_zone(TUESDAY_RULE.apply(anchor, IT), expected)


def test_tuesday_rule_without_holidays_keeps_the_tuesday() -> None:
    due = TUESDAY_RULE.apply(rome(2026, 12, 2, 15), ROME_NO_HOLIDAYS)
    assert same_instant_and_zone(due, rome(2026, 12, 8, 9))


def test_weekday_outside_workdays_moves_to_the_next_business_day() -> None:
    due = parse_offset("saturday of next week").apply(rome(2026, 11, 18, 15), IT)
    assert same_instant_and_zone(due, rome(2026, 11, 30, 9))


# --- Business days -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cal", "start", "n", "expected"),
    [
        pytest.param(
            ROME_NO_HOLIDAYS, rome(2026, 11, 16, 10), 0, rome(2026, 11, 16, 10), id="zero"
        ),
        pytest.param(
            ROME_NO_HOLIDAYS, rome(2026, 11, 18, 10), 1, rome(2026, 11, 19, 10), id="wed+1"
        ),
        pytest.param(
            ROME_NO_HOLIDAYS, rome(2026, 11, 20, 10), 1, rome(2026, 11, 23, 10), id="fri+1"
        ),
        pytest.param(
            ROME_NO_HOLIDAYS, rome(2026, 11, 20, 10), 5, rome(2026, 11, 27, 10), id="fri+5"
        ),
        pytest.param(
            ROME_NO_HOLIDAYS, rome(2026, 11, 18, 10), 3, rome(2026, 11, 23, 10), id="wed+3"
        ),
        pytest.param(
            ROME_NO_HOLIDAYS, rome(2026, 11, 21, 10), 1, rome(2026, 11, 23, 10), id="sat+1"
        ),
        pytest.param(
            ROME_NO_HOLIDAYS, rome(2026, 11, 22, 10), 1, rome(2026, 11, 23, 10), id="sun+1"
        ),
        pytest.param(
            ROME_NO_HOLIDAYS, rome(2026, 11, 20, 10), 10, rome(2026, 12, 4, 10), id="fri+10"
        ),
        pytest.param(IT, rome(2025, 12, 24, 10), 1, rome(2025, 12, 29, 10), id="IT-over-xmas-2025"),
        pytest.param(
            IT, rome(2026, 12, 23, 10), 1, rome(2026, 12, 24, 10), id="IT-xmas-eve-counts"
        ),
        pytest.param(IT, rome(2026, 12, 23, 10), 2, rome(2026, 12, 28, 10), id="IT-over-xmas-2026"),
        pytest.param(IT, rome(2026, 12, 31, 10), 1, rome(2027, 1, 4, 10), id="IT-over-new-year"),
        pytest.param(IT, rome(2027, 1, 5, 10), 1, rome(2027, 1, 7, 10), id="IT-over-epiphany"),
        pytest.param(
            IT, rome(2027, 3, 26, 10), 1, rome(2027, 3, 30, 10), id="IT-over-easter-monday"
        ),
        pytest.param(
            IT, rome(2026, 11, 25, 10), 1, rome(2026, 11, 26, 10), id="IT-thanksgiving-works"
        ),
        pytest.param(
            US_NY, ny(2026, 11, 25, 10), 1, ny(2026, 11, 27, 10), id="US-over-thanksgiving"
        ),
        pytest.param(
            US_NY, ny(2026, 11, 24, 10), 2, ny(2026, 11, 27, 10), id="US-2-over-thanksgiving"
        ),
        # 15:00 UTC on Friday is 10:00 in New York: the result keeps New York wall time.
        pytest.param(US_NY, utc(2026, 11, 20, 15), 1, ny(2026, 11, 23, 10), id="US-start-in-utc"),
    ],
)
def test_add_business_days(cal: Calendar, start: datetime, n: int, expected: datetime) -> None:
    assert same_instant_and_zone(cal.add_business_days(start, n), expected)


def test_add_business_days_refuses_negative_n() -> None:
    with pytest.raises(ValueError, match="n >= 0"):
        IT.add_business_days(rome(2026, 11, 20, 10), -1)


@pytest.mark.parametrize(
    ("day", "include_today", "expected"),
    [
        pytest.param(date(2026, 11, 20), False, date(2026, 11, 23), id="friday-next-is-monday"),
        pytest.param(date(2026, 11, 20), True, date(2026, 11, 20), id="friday-include-today"),
        pytest.param(date(2026, 11, 21), True, date(2026, 11, 23), id="saturday-include-today"),
        pytest.param(date(2026, 12, 8), True, date(2026, 12, 9), id="holiday-include-today"),
        pytest.param(date(2025, 12, 24), False, date(2025, 12, 29), id="over-xmas-and-weekend"),
    ],
)
def test_next_business_day(day: date, include_today: bool, expected: date) -> None:
    assert IT.next_business_day(day, include_today=include_today) == expected


def test_custom_workdays_sunday_to_thursday() -> None:
    cal = Calendar(tz="Asia/Jerusalem", workdays=frozenset({6, 0, 1, 2, 3}))
    start = datetime(2026, 11, 19, 10, tzinfo=ZoneInfo("Asia/Jerusalem"))  # Thursday
    assert cal.add_business_days(start, 1).date() == date(2026, 11, 22)  # Sunday


# --- Send window ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        pytest.param(rome(2026, 11, 21, 11), rome(2026, 11, 23, 9), id="saturday-to-monday-0900"),
        pytest.param(rome(2026, 11, 22, 20), rome(2026, 11, 23, 9), id="sunday-to-monday-0900"),
        pytest.param(rome(2026, 11, 20, 17, 30), rome(2026, 11, 23, 9), id="friday-1730-to-monday"),
        pytest.param(rome(2026, 11, 20, 17, 0), rome(2026, 11, 23, 9), id="window-end-exclusive"),
        pytest.param(rome(2026, 11, 19, 8), rome(2026, 11, 19, 9), id="thursday-0800-to-0900"),
        pytest.param(rome(2026, 11, 19, 0, 5), rome(2026, 11, 19, 9), id="just-after-midnight"),
        pytest.param(rome(2026, 11, 19, 22), rome(2026, 11, 20, 9), id="thursday-night-to-friday"),
        pytest.param(rome(2026, 11, 19, 9), rome(2026, 11, 19, 9), id="window-start-inclusive"),
        pytest.param(
            rome(2026, 11, 19, 11, 17), rome(2026, 11, 19, 11, 17), id="in-window-unchanged"
        ),
        pytest.param(rome(2026, 11, 19, 16, 59), rome(2026, 11, 19, 16, 59), id="last-minute-ok"),
        pytest.param(rome(2025, 12, 24, 10), rome(2025, 12, 24, 10), id="IT-christmas-eve-is-open"),
        pytest.param(rome(2025, 12, 24, 18), rome(2025, 12, 29, 9), id="IT-xmas-eve-evening"),
        pytest.param(rome(2025, 12, 25, 10), rome(2025, 12, 29, 9), id="IT-christmas-day"),
        pytest.param(rome(2026, 12, 25, 10), rome(2026, 12, 28, 9), id="IT-christmas-2026-friday"),
        pytest.param(rome(2026, 12, 8, 7), rome(2026, 12, 9, 9), id="IT-holiday-morning"),
        # An instant stated in UTC comes back in the calendar's zone.
        pytest.param(utc(2026, 11, 21, 10), rome(2026, 11, 23, 9), id="utc-input-rome-output"),
    ],
)
def test_next_window_open(t: datetime, expected: datetime) -> None:
    assert same_instant_and_zone(IT.next_window_open(t), expected)
    assert IT.in_window(expected)


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        pytest.param(rome(2026, 11, 19, 10), True, id="thursday-morning"),
        pytest.param(rome(2026, 11, 19, 8, 59), False, id="before-start"),
        pytest.param(rome(2026, 11, 19, 17), False, id="at-end"),
        pytest.param(rome(2026, 11, 21, 10), False, id="saturday"),
        pytest.param(rome(2026, 12, 8, 10), False, id="holiday"),
        pytest.param(utc(2026, 11, 19, 8, 30), True, id="utc-0830-is-0930-in-rome"),
    ],
)
def test_in_window(t: datetime, expected: bool) -> None:
    assert IT.in_window(t) is expected


@pytest.mark.parametrize(
    ("cal", "t", "expected"),
    [
        # 12:00 UTC Wednesday is 07:00 in New York: wait for 09:00 there.
        pytest.param(US_NY, utc(2026, 11, 18, 12), ny(2026, 11, 18, 9), id="ny-client-early"),
        pytest.param(UTC_CAL, utc(2026, 11, 18, 12), utc(2026, 11, 18, 12), id="utc-user-open"),
        # 21:30 UTC Friday is 16:30 in New York: still open there, closed in UTC.
        pytest.param(US_NY, utc(2026, 11, 20, 21, 30), ny(2026, 11, 20, 16, 30), id="ny-open"),
        pytest.param(UTC_CAL, utc(2026, 11, 20, 21, 30), utc(2026, 11, 23, 9), id="utc-closed"),
        # Thanksgiving is a holiday for the client, not for a UTC user without holidays.
        pytest.param(US_NY, utc(2026, 11, 26, 15), ny(2026, 11, 27, 9), id="ny-thanksgiving"),
        pytest.param(UTC_CAL, utc(2026, 11, 26, 15), utc(2026, 11, 26, 15), id="utc-thanksgiving"),
    ],
)
def test_window_is_computed_in_the_clients_zone(
    cal: Calendar, t: datetime, expected: datetime
) -> None:
    assert same_instant_and_zone(cal.next_window_open(t), expected)


# --- DST -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "anchor", "expected"),
    [
        # Fall-back Sunday 25 Oct 2026: day arithmetic keeps the wall time (5x24h + 1h).
        pytest.param("5d", rome(2026, 10, 23, 10), rome(2026, 10, 28, 10), id="5d-over-fall-back"),
        pytest.param("1w", rome(2026, 10, 23, 10), rome(2026, 10, 30, 10), id="1w-over-fall-back"),
        # Spring-forward Sunday 28 Mar 2027: 5x24h - 1h.
        pytest.param("5d", rome(2027, 3, 26, 10), rome(2027, 3, 31, 10), id="5d-over-spring"),
        # Hours are absolute: 36 h later the wall clock reads 35 h (fall) or 37 h (spring).
        pytest.param(
            "36h", rome(2026, 10, 24, 12), rome(2026, 10, 25, 23), id="36h-over-fall-back"
        ),
        pytest.param("36h", rome(2027, 3, 27, 12), rome(2027, 3, 29, 1), id="36h-over-spring"),
        pytest.param("90m", rome(2027, 3, 28, 1, 30), rome(2027, 3, 28, 4), id="90m-over-the-gap"),
        # 02:30 does not exist on 28 Mar 2027: moves forward by the 1 h gap.
        pytest.param("1d", rome(2027, 3, 27, 2, 30), rome(2027, 3, 28, 3, 30), id="1d-nonexistent"),
        pytest.param(
            "1 business day", rome(2027, 3, 26, 10), rome(2027, 3, 29, 10), id="bd-spring"
        ),
    ],
)
def test_offsets_across_dst(spec: str, anchor: datetime, expected: datetime) -> None:
    assert same_instant_and_zone(parse_offset(spec).apply(anchor, ROME_NO_HOLIDAYS), expected)


def test_5d_over_fall_back_is_five_days_and_one_hour_of_absolute_time() -> None:
    due = parse_offset("5d").apply(rome(2026, 10, 23, 10), IT)
    assert (due.hour, due.utcoffset()) == (10, timedelta(hours=1))
    assert instant(due) - instant(rome(2026, 10, 23, 10)) == timedelta(days=5, hours=1)


def test_36h_is_absolute_time() -> None:
    anchor = rome(2026, 10, 24, 12)
    assert instant(parse_offset("36h").apply(anchor, IT)) - instant(anchor) == timedelta(hours=36)


def test_ambiguous_wall_time_takes_the_first_occurrence() -> None:
    """02:30 happens twice on 25 Oct 2026 in Rome; fold=0 is the earlier, CEST one."""
    due = parse_offset("1d").apply(rome(2026, 10, 24, 2, 30), IT)
    assert instant(due) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert due.utcoffset() == timedelta(hours=2)


def test_lord_howe_half_hour_gap_moves_forward_by_thirty_minutes() -> None:
    """Lord Howe jumps 02:00 -> 02:30 on 4 Oct 2026; 02:15 becomes 02:45."""
    due = parse_offset("1d").apply(
        datetime(2026, 10, 3, 2, 15, tzinfo=LORD_HOWE), Calendar(tz="Australia/Lord_Howe")
    )
    assert due.replace(tzinfo=None) == datetime(2026, 10, 4, 2, 45)
    assert due.utcoffset() == timedelta(hours=11)


@pytest.mark.parametrize(
    ("cal", "t", "expected_utc"),
    [
        pytest.param(IT, rome(2026, 10, 24, 12), utc(2026, 10, 26, 8), id="after-fall-back-cet"),
        pytest.param(
            ROME_NO_HOLIDAYS, rome(2027, 3, 27, 12), utc(2027, 3, 29, 7), id="after-spring-cest"
        ),
        # With Italian holidays the Monday after spring-forward 2027 is Easter Monday.
        pytest.param(IT, rome(2027, 3, 27, 12), utc(2027, 3, 30, 7), id="after-spring-easter"),
    ],
)
def test_window_opens_at_0900_local_after_a_dst_change(
    cal: Calendar, t: datetime, expected_utc: datetime
) -> None:
    opened = cal.next_window_open(t)
    assert instant(opened) == expected_utc
    assert (opened.hour, opened.minute) == (9, 0)


def test_window_start_in_a_repeated_hour_never_returns_an_earlier_instant() -> None:
    """During the second 02:10 of 25 Oct 2026, the first 02:30 is already past."""
    cal = Calendar(tz="Europe/Rome", window_start=time(2, 30), workdays=frozenset(range(7)))
    second_pass = datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=ROME)
    opened = cal.next_window_open(second_pass)
    assert instant(opened) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # second 02:30, CET
    assert instant(opened) >= instant(second_pass)


# --- The timing language -------------------------------------------------------------------

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

Shape = tuple[OffsetKind, int, timedelta, int | None, bool]


def calendar_days(n: int) -> Shape:
    return (OffsetKind.DURATION, n, n * DAY, None, True)


def absolute(delta: timedelta) -> Shape:
    return (OffsetKind.DURATION, 0, delta, None, False)


def business_days(n: int) -> Shape:
    return (OffsetKind.BUSINESS_DAYS, n, timedelta(0), None, False)


def weekday_after(weekday: int) -> Shape:
    return (OffsetKind.WEEKDAY_OF_FOLLOWING_WEEK, 0, timedelta(0), weekday, False)


def shape(offset: Offset) -> Shape:
    return (offset.kind, offset.amount, offset.delta, offset.weekday, offset.calendar_days)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("5d", calendar_days(5), id="5d"),
        pytest.param("5 d", calendar_days(5), id="5-d"),
        pytest.param("5 days", calendar_days(5), id="5-days"),
        pytest.param("1 day", calendar_days(1), id="1-day"),
        pytest.param("  5   DAYS ", calendar_days(5), id="whitespace-and-case"),
        pytest.param("2w", calendar_days(14), id="2w"),
        pytest.param("2 weeks", calendar_days(14), id="2-weeks"),
        pytest.param("1 week", calendar_days(7), id="1-week"),
        pytest.param("3650d", calendar_days(3650), id="the-limit-is-allowed"),
        pytest.param("5 giorni", calendar_days(5), id="it-giorni"),
        pytest.param("36h", absolute(36 * HOUR), id="36h"),
        pytest.param("36 hours", absolute(36 * HOUR), id="36-hours"),
        pytest.param("48h", absolute(48 * HOUR), id="48h-stays-absolute-hours"),
        pytest.param("90m", absolute(90 * MINUTE), id="90m"),
        pytest.param("90 minutes", absolute(90 * MINUTE), id="90-minutes"),
        pytest.param("5 business days", business_days(5), id="business-days"),
        pytest.param("5 working days", business_days(5), id="working-days"),
        pytest.param("1 business day", business_days(1), id="one-business-day"),
        pytest.param("5bd", business_days(5), id="5bd"),
        pytest.param("5 BD", business_days(5), id="5-BD"),
        pytest.param("5 giorni lavorativi", business_days(5), id="it-giorni-lavorativi"),
        pytest.param("tuesday of the following week", weekday_after(1), id="tue-of-the-following"),
        pytest.param("Tuesday of next week", weekday_after(1), id="tue-of-next-week"),
        pytest.param("next week tuesday", weekday_after(1), id="next-week-tuesday"),
        pytest.param("next week's Tue", weekday_after(1), id="next-weeks-tue"),
        pytest.param("monday of the following week", weekday_after(0), id="monday"),
        pytest.param("Friday  of  the  following  week", weekday_after(4), id="friday-spaces"),
        pytest.param("sunday of next week", weekday_after(6), id="sunday"),
        pytest.param("martedì della settimana successiva", weekday_after(1), id="it-successiva"),
        pytest.param("martedi della settimana dopo", weekday_after(1), id="it-dopo-no-accent"),
        pytest.param("Giovedì della prossima settimana", weekday_after(3), id="it-prossima"),
    ],
)
def test_parse_offset(spec: str, expected: Shape) -> None:
    """Each accepted form maps to (kind, amount, delta, weekday, calendar_days)."""
    offset = parse_offset(spec)
    assert shape(offset) == expected
    assert offset.text == spec.strip()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("   ", "empty", id="blank"),
        pytest.param("0d", "must be positive", id="zero"),
        pytest.param("0 business days", "must be positive", id="zero-business-days"),
        pytest.param("-3d", "must be positive", id="negative"),
        pytest.param("soon", "cannot read", id="words"),
        pytest.param("5", "cannot read", id="no-unit"),
        pytest.param("5 fortnights", "unknown unit", id="unknown-unit"),
        pytest.param("3 months", "unknown unit", id="months-not-supported"),
        pytest.param("1.5d", "cannot read", id="fraction"),
        pytest.param("99999d", "longer than 3650 days", id="enormous-days"),
        pytest.param("3651d", "longer than 3650 days", id="just-over-the-limit"),
        pytest.param("87601h", "longer than 3650 days", id="enormous-hours"),
        pytest.param("522w", "longer than 3650 days", id="enormous-weeks"),
        pytest.param("3651 business days", "longer than 3650 days", id="enormous-business-days"),
        pytest.param("9" * 5000 + "d", "longer than 3650 days", id="absurdly-many-digits"),
        pytest.param("next tuesday", "cannot read", id="ambiguous-next-tuesday"),
        pytest.param("funday of next week", "cannot read", id="not-a-weekday"),
        pytest.param("tuesday of this week", "cannot read", id="this-week"),
    ],
)
def test_parse_offset_refuses_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as excinfo:
        parse_offset(spec)
    assert "expected e.g. '5d', '36h', '2 weeks', '5 business days'" in str(excinfo.value)
    assert len(str(excinfo.value)) < 300  # a huge spec is not echoed in full


@pytest.mark.parametrize(
    ("spec", "days"),
    [
        pytest.param("5d", 5.0, id="5d"),
        pytest.param("36h", 1.5, id="36h"),
        pytest.param("2 weeks", 14.0, id="2-weeks"),
        pytest.param("4 business days", 4.0, id="4-business-days"),
        pytest.param("tuesday of the following week", 2.0, id="tuesday-from-a-sunday"),
        pytest.param("monday of the following week", 1.0, id="monday-from-a-sunday"),
    ],
)
def test_minimum_days(spec: str, days: float) -> None:
    assert parse_offset(spec).minimum_days() == days


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        pytest.param("5d", "5 days", id="days"),
        pytest.param("1 day", "1 day", id="one-day"),
        pytest.param("36h", "36 hours", id="hours"),
        pytest.param("90m", "90 minutes", id="minutes"),
        pytest.param("5bd", "5 business days", id="business-days"),
        pytest.param("martedì della settimana dopo", "Tuesday of the following week", id="weekday"),
    ],
)
def test_describe_is_a_normalised_phrase_that_parses_back(spec: str, text: str) -> None:
    offset = parse_offset(spec)
    assert offset.describe() == text
    assert shape(parse_offset(text)) == shape(offset)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"kind": OffsetKind.DURATION}, id="duration-without-delta"),
        pytest.param({"kind": OffsetKind.DURATION, "delta": -DAY}, id="negative-delta"),
        pytest.param({"kind": OffsetKind.BUSINESS_DAYS, "amount": 0}, id="zero-business-days"),
        pytest.param({"kind": OffsetKind.WEEKDAY_OF_FOLLOWING_WEEK}, id="weekday-missing"),
        pytest.param({"kind": OffsetKind.WEEKDAY_OF_FOLLOWING_WEEK, "weekday": 7}, id="weekday-7"),
        pytest.param({"kind": "fortnightly"}, id="unknown-kind"),
    ],
)
def test_offset_refuses_inconsistent_fields(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Offset(**kwargs)  # type: ignore[arg-type]


# --- Properties ----------------------------------------------------------------------------

ZONES = [
    "Europe/Rome",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Santiago",
    "UTC",
]
COUNTRY = {
    "Europe/Rome": ("IT", None),
    "America/New_York": ("US", "NY"),
    "Asia/Kolkata": ("IN", None),
    "Australia/Lord_Howe": ("AU", "NSW"),
    "America/Santiago": ("CL", None),
    "UTC": (None, None),
}

# The holidays package knows Indian (lunar) holidays only up to 2035 and warns beyond;
# offsets from late 2035 reach into 2036.
beyond_holiday_tables = pytest.mark.filterwarnings(
    "ignore:Requested Holidays are available only:UserWarning"
)

aware_times = st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2035, 12, 31),
    timezones=st.sampled_from([ZoneInfo(z) for z in ZONES]),
)


@st.composite
def default_calendars(draw: st.DrawFn) -> Calendar:
    tz = draw(st.sampled_from(ZONES))
    country, subdivision = COUNTRY[tz]
    if draw(st.booleans()):
        country, subdivision = None, None
    return Calendar(tz=tz, country=country, subdivision=subdivision)


@st.composite
def odd_calendars(draw: st.DrawFn) -> Calendar:
    """Any window (including ones inside DST gaps and repeated hours), any workdays."""
    tz = draw(st.sampled_from(ZONES))
    start = draw(st.integers(min_value=0, max_value=24 * 60 - 2))
    end = draw(st.integers(min_value=start + 1, max_value=24 * 60 - 1))
    workdays = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return Calendar(
        tz=tz,
        window_start=time(start // 60, start % 60),
        window_end=time(end // 60, end % 60),
        workdays=workdays,
    )


@beyond_holiday_tables
@settings(deadline=None)
@given(cal=default_calendars(), t=aware_times)
def test_next_window_open_is_the_earliest_in_window_instant_not_before_t(
    cal: Calendar, t: datetime
) -> None:
    opened = cal.next_window_open(t)
    assert instant(opened) >= instant(t)
    assert cal.in_window(opened)
    assert opened.tzinfo == cal.zone()
    assert same_instant_and_zone(cal.next_window_open(opened), opened)
    if instant(opened) != instant(t):
        # Nothing in window in between: one second earlier is still closed.
        assert not cal.in_window(instant(opened) - timedelta(seconds=1))
        assert (opened.hour, opened.minute) == (9, 0)


@beyond_holiday_tables
@settings(deadline=None)
@given(cal=odd_calendars(), t=aware_times)
def test_next_window_open_with_any_window_is_in_window_and_not_before_t(
    cal: Calendar, t: datetime
) -> None:
    opened = cal.next_window_open(t)
    assert instant(opened) >= instant(t)
    assert cal.in_window(opened)


@beyond_holiday_tables
@settings(deadline=None)
@given(cal=default_calendars(), t=aware_times, n=st.integers(min_value=1, max_value=40))
def test_add_business_days_lands_on_a_later_business_day(
    cal: Calendar, t: datetime, n: int
) -> None:
    result = cal.add_business_days(t, n)
    start = cal.local(t)
    assert cal.is_business_day(result.date())
    assert result.date() > start.date()
    assert instant(result) > instant(t)
    # Wall time is kept, except when it does not exist that day (then it moves forward).
    if (result.hour, result.minute) != (start.hour, start.minute):
        assert result.replace(tzinfo=None).time() > start.time()


def offset_specs() -> st.SearchStrategy[str]:
    weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    return st.one_of(
        st.builds(
            "{}{}".format,
            st.integers(min_value=1, max_value=400),
            st.sampled_from(["m", " minutes", "h", " hours", "d", " days", "w", " weeks"]),
        ),
        st.builds(
            "{} {}".format,
            st.integers(min_value=1, max_value=300),
            st.sampled_from(["business days", "working days", "bd"]),
        ),
        st.builds(
            "{} {}".format,
            st.sampled_from(weekdays),
            st.sampled_from(["of the following week", "of next week"]),
        ),
    )


@beyond_holiday_tables
@settings(deadline=None)
@given(spec=offset_specs(), anchor=aware_times, cal=default_calendars())
def test_every_parseable_offset_is_due_after_its_anchor(
    spec: str, anchor: datetime, cal: Calendar
) -> None:
    offset = parse_offset(spec)
    due = offset.apply(anchor, cal)
    assert instant(due) > instant(anchor)
    assert due.tzinfo == cal.zone()
    assert (instant(due) - instant(anchor)) / DAY >= offset.minimum_days() - 1 / 24 or (
        offset.kind is OffsetKind.WEEKDAY_OF_FOLLOWING_WEEK
    )
    if offset.kind is OffsetKind.WEEKDAY_OF_FOLLOWING_WEEK:
        assert cal.is_business_day(due.date())
        assert due.time() == cal.window_start
        assert (due.date() - cal.local(anchor).date()).days >= offset.minimum_days()


def test_max_offset_applies_without_overflow() -> None:
    anchor = rome(2026, 11, 20, 10)
    for spec in (f"{MAX_OFFSET_DAYS}d", f"{MAX_OFFSET_DAYS} business days"):
        assert instant(parse_offset(spec).apply(anchor, IT)) > instant(anchor)


# The fast paths for days with one UTC offset throughout must agree with the careful
# DST-resolving computation everywhere, including the days next to a change.

transition_heavy_times = st.one_of(
    aware_times,
    # Days around the DST changes of the sampled zones, where the fast path must yield.
    st.builds(
        lambda zone, year, month, day, minute: (
            datetime(year, month, day, tzinfo=zone) + timedelta(minutes=minute)
        ),
        st.sampled_from([ZoneInfo(z) for z in ZONES]),
        st.integers(min_value=2024, max_value=2030),
        st.sampled_from([3, 4, 9, 10, 11]),
        st.integers(min_value=1, max_value=28),
        st.integers(min_value=0, max_value=2 * 24 * 60),
    ),
)


@beyond_holiday_tables
@settings(deadline=None, max_examples=300)
@given(cal=st.one_of(default_calendars(), odd_calendars()), t=transition_heavy_times)
def test_next_window_open_fast_path_agrees_with_the_resolving_one(
    cal: Calendar, t: datetime
) -> None:
    fast = cal.next_window_open(t)
    careful = cal._next_window_open_resolving(cal.local(t))
    assert same_instant_and_zone(fast, careful)
    assert (fast.replace(tzinfo=None), fast.fold) == (careful.replace(tzinfo=None), careful.fold)


@settings(deadline=None, max_examples=300)
@given(
    zone=st.sampled_from([ZoneInfo(z) for z in ZONES]),
    day=st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
    minute=st.integers(min_value=0, max_value=24 * 60 - 1),
)
def test_wall_time_fast_path_agrees_with_resolving_through_utc(
    zone: ZoneInfo, day: date, minute: int
) -> None:
    wall = time(minute // 60, minute % 60)
    careful = datetime.combine(day, wall).replace(tzinfo=zone).astimezone(UTC).astimezone(zone)
    got = businesstime._at_wall_time(day, wall, zone)
    assert (got.replace(tzinfo=None), got.fold, got.tzinfo) == (
        careful.replace(tzinfo=None),
        careful.fold,
        careful.tzinfo,
    )


@pytest.mark.parametrize(
    ("zone", "day", "steady"),
    [
        ("Europe/Rome", date(2026, 3, 29), False),  # spring forward 02:00 -> 03:00
        ("Europe/Rome", date(2026, 10, 25), False),  # fall back 03:00 -> 02:00
        ("Europe/Rome", date(2026, 3, 28), True),
        ("Australia/Lord_Howe", date(2026, 10, 4), False),  # a 30-minute change
        ("America/Santiago", date(2026, 9, 6), False),  # changes at midnight
        ("America/Santiago", date(2026, 9, 4), True),
        ("UTC", date(2026, 3, 29), True),
    ],
)
def test_steady_day_finds_every_kind_of_change(zone: str, day: date, steady: bool) -> None:
    assert businesstime._steady_day(ZoneInfo(zone), day) is steady


def exactly(t: datetime) -> tuple[datetime, int, object]:
    """Wall time, fold and zone: what two results must share to be the same value."""
    return t.replace(tzinfo=None), t.fold, t.tzinfo


@beyond_holiday_tables
@settings(deadline=None, max_examples=400)
@given(
    cal=st.one_of(default_calendars(), odd_calendars()),
    spec=offset_specs(),
    anchors=st.lists(transition_heavy_times, min_size=1, max_size=4),
)
def test_opening_after_is_next_window_open_of_the_applied_offset(
    cal: Calendar, spec: str, anchors: list[datetime]
) -> None:
    offset = parse_offset(spec)
    # Several anchors, some on the same local day, and each twice: the memo is filled
    # by the first and read by the others.
    anchors += [a.replace(hour=h) for a in anchors[:1] for h in (0, 8, 12, 23)]
    for anchor in anchors + anchors:
        fast = cal.opening_after(offset, anchor)
        slow = cal.next_window_open(offset.apply(anchor, cal))
        assert exactly(fast) == exactly(slow)


def test_opening_after_refuses_a_naive_anchor_like_apply() -> None:
    with pytest.raises(ValueError, match=r"anchor .* is naive"):
        IT.opening_after(parse_offset("5d"), datetime(2026, 11, 20, 10))


@pytest.mark.parametrize("spec", ["1d", "2 business days", "3w", "tuesday of next week", "90m"])
@pytest.mark.parametrize("fold", [0, 1])
def test_opening_after_from_a_repeated_hour(spec: str, fold: int) -> None:
    # 02:30 happens twice in Rome on 25 Oct 2026; either one lands at 02:30 (fold 0) on a
    # steady day, inside a window that is open all day.
    cal = Calendar(tz="Europe/Rome", window_start=time(0), window_end=time(23, 59),
                   workdays=frozenset(range(7)))  # fmt: skip
    anchor = datetime(2026, 10, 25, 2, 30, fold=fold, tzinfo=ROME)
    offset = parse_offset(spec)
    for _ in range(2):
        fast = cal.opening_after(offset, anchor)
        assert exactly(fast) == exactly(cal.next_window_open(offset.apply(anchor, cal)))
