"""Time zones, business days, send windows and the step timing language of policies.

Everything here is pure: no wall clock, no I/O (beyond the ``holidays`` package
building its tables in memory). Every datetime in and out is timezone-aware; local
reasoning happens in the :class:`Calendar`'s zone and results come back in that zone.

Local wall times that do not exist or exist twice (DST changes) are resolved one way
everywhere in this module (see :func:`_at_wall_time`):

* an ambiguous wall time (the repeated hour when clocks go back) takes ``fold=0``,
  the first of the two instants;
* a nonexistent wall time (the hour skipped when clocks go forward) moves forward by
  the length of the gap: 02:30 on a day that jumps 02:00 -> 03:00 becomes 03:30.

The policy engine computes when a step is due as::

    cal.next_window_open(offset.apply(anchor, cal))

:meth:`Offset.apply` only does the timing arithmetic; moving into the send window is
:meth:`Calendar.next_window_open`'s job, so each can be explained on its own.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

__all__ = [
    "MAX_OFFSET_DAYS",
    "Calendar",
    "Offset",
    "OffsetKind",
    "parse_offset",
]

#: Offsets longer than this (in days) are refused: nobody follows up ten years later,
#: and such a value is almost certainly a typo.
MAX_OFFSET_DAYS = 3650

# How far the calendar searches for a business day or a window before giving up. Public
# holidays never fill a year, so only a pathological ``extra_holidays`` can reach it.
_SEARCH_LIMIT_DAYS = 3 * 366

_ONE_DAY = timedelta(days=1)

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# --- Public holidays ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _supported_countries() -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType(
        {code: tuple(subdivs) for code, subdivs in holidays.list_supported_countries().items()}
    )


@functools.lru_cache(maxsize=512)
def _public_holidays(country: str, subdivision: str | None, year: int) -> Mapping[date, str]:
    """The public holidays of one country/subdivision/year, built once per process.

    Building a ``holidays`` table is slow (it evaluates every rule of the country), so
    it is cached. The cache holds a read-only snapshot rather than the ``HolidayBase``
    itself: that is a mutable dict which grows on lookups of other years, and a shared
    cached value must not change under its other users. Countries whose holidays come
    from tables (India's lunar ones end in 2035) warn and return a partial year outside
    their range.
    """
    table = holidays.country_holidays(country, subdiv=subdivision, years=year, expand=False)
    return MappingProxyType({day: str(name) for day, name in table.items()})


def _plain_date(d: date) -> date:
    # A datetime is a date subclass: passing one would silently use *its* zone's date,
    # which is exactly the bug a calendar exists to prevent.
    if isinstance(d, datetime):
        raise TypeError("pass a date, not a datetime: use cal.local(t).date()")
    return d


# --- Wall-time resolution -------------------------------------------------------------------


def _at_wall_time(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The instant at local ``wall`` time on ``day`` in ``zone``, DST-resolved.

    Ambiguous times take ``fold=0`` (the earlier instant). A nonexistent time, read
    with ``fold=0``, uses the offset in force before the gap; converting that instant
    back to local time therefore lands the same distance past the gap: it moves
    forward by the gap's length.
    """
    naive = datetime.combine(day, wall.replace(tzinfo=None, fold=0))
    if _steady_day(zone, day):  # every wall time of the day exists once: nothing to resolve
        return naive.replace(tzinfo=zone)
    return naive.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)


_QUARTER_HOUR = timedelta(minutes=15)

# See Calendar._offset_opening.
_OffsetOpening = tuple[date | None, datetime | None, datetime | None]


@functools.lru_cache(maxsize=65536)
def _steady_day(zone: ZoneInfo, day: date) -> bool:
    """Whether ``zone`` keeps one UTC offset through all of ``day``, with no wall time
    skipped or repeated (no DST change, no change of standard time).

    Local arithmetic on such a day needs no DST resolution; the calendar takes a fast
    path there and the careful one on the few days a year that are not steady. Checked
    every quarter of an hour, both folds: tz changes happen on quarter-hour boundaries.
    """
    start = datetime.combine(day, time(0)).replace(tzinfo=zone)
    offset = start.utcoffset()
    t = start
    while t.date() == day:
        if t.utcoffset() != offset or t.replace(fold=1).utcoffset() != offset:
            return False
        t += _QUARTER_HOUR
    end = datetime.combine(day + _ONE_DAY, time(0)).replace(tzinfo=zone)
    return end.utcoffset() == offset and end.replace(fold=1).utcoffset() == offset


def _require_aware(t: datetime, what: str = "datetime") -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} {t.isoformat()} is naive: ghostwatch needs timezone-aware times")


# --- Calendar -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Calendar:
    """Where and when messages may be sent: a zone, working days, holidays, a window.

    ``country``/``subdivision`` select public holidays from the ``holidays`` package
    (observed substitute days included, as offices close on them); ``extra_holidays``
    adds the user's own days off. The send window is ``[window_start, window_end)`` in
    local wall time and must not span midnight.
    """

    tz: str = "UTC"
    country: str | None = None
    subdivision: str | None = None
    window_start: time = time(9, 0)
    window_end: time = time(17, 0)
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    extra_holidays: frozenset[date] = frozenset()
    # Memo of is_business_day: planning asks about the same few weeks for every thread.
    # Not part of the value: excluded from equality, hashing and repr.
    _business_days: dict[date, bool] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _business_day_sums: dict[tuple[date, int], date] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _zone: ZoneInfo | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    # Memo of the steady-day search in next_window_open: the first opening after a day.
    _openings_after: dict[date, datetime | None] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    # Memo of opening_after, by offset and the anchor's local day (see there).
    _offset_openings: dict[tuple[OffsetKind, int, int | None, date], _OffsetOpening] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "_zone", ZoneInfo(self.tz))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {self.tz!r}: use an IANA name such as 'Europe/Rome', "
                "'America/New_York' or 'UTC'"
            ) from None
        self._validate_region()
        for name in ("window_start", "window_end"):
            value = getattr(self, name)
            if not isinstance(value, time) or value.tzinfo is not None:
                raise ValueError(f"{name} must be a naive local time such as time(9, 0)")
        if not self.window_start < self.window_end:
            raise ValueError(
                f"send window {self.window_start:%H:%M}-{self.window_end:%H:%M} is empty or "
                "spans midnight: window_start must be earlier than window_end"
            )
        workdays = frozenset(self.workdays)
        if not workdays or not workdays <= frozenset(range(7)):
            raise ValueError(
                f"workdays {sorted(workdays)} must be a non-empty set of 0 (Monday) .. 6 (Sunday)"
            )
        object.__setattr__(self, "workdays", workdays)
        object.__setattr__(self, "extra_holidays", frozenset(self.extra_holidays))

    def _validate_region(self) -> None:
        if self.country is None:
            if self.subdivision is not None:
                raise ValueError(f"subdivision {self.subdivision!r} given without a country")
            return
        supported = _supported_countries()
        country = self.country.strip().upper()
        if country not in supported:
            raise ValueError(
                f"no public holidays known for country {self.country!r}: use an ISO 3166 "
                "alpha-2 code such as 'IT', 'DE', 'US' or 'GB'"
            )
        object.__setattr__(self, "country", country)
        if self.subdivision is None:
            return
        by_upper = {s.upper(): s for s in supported[country]}
        canonical = by_upper.get(self.subdivision.strip().upper())
        if canonical is None:
            raise ValueError(
                f"unknown subdivision {self.subdivision!r} for {country}: expected one of "
                + ", ".join(supported[country])
            )
        object.__setattr__(self, "subdivision", canonical)

    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return self._zone or ZoneInfo(self.tz)

    def local(self, t: datetime) -> datetime:
        """``t`` (aware) as local time in the calendar's zone."""
        _require_aware(t)
        return t.astimezone(self.zone())

    # Days.

    def _public_holiday(self, d: date) -> str | None:
        if self.country is None:
            return None
        return _public_holidays(self.country, self.subdivision, d.year).get(d)

    def is_holiday(self, d: date) -> bool:
        """Whether ``d`` is a public holiday or one of the user's extra days off."""
        d = _plain_date(d)
        return d in self.extra_holidays or self._public_holiday(d) is not None

    def holiday_name(self, d: date) -> str | None:
        """The holiday's name (English, from ``holidays``), "Day off" for an extra day."""
        d = _plain_date(d)
        name = self._public_holiday(d)
        if name is None and d in self.extra_holidays:
            return "Day off"
        return name

    def is_business_day(self, d: date) -> bool:
        """A workday that is not a holiday."""
        known = self._business_days.get(d)
        if known is not None and type(d) is date:
            return known
        d = _plain_date(d)
        result = d.weekday() in self.workdays and not self.is_holiday(d)
        self._business_days[d] = result
        return result

    def next_business_day(self, d: date, *, include_today: bool = False) -> date:
        """The first business day after ``d`` (or ``d`` itself when ``include_today``)."""
        d = _plain_date(d)
        candidate = d if include_today else d + _ONE_DAY
        for _ in range(_SEARCH_LIMIT_DAYS):
            if self.is_business_day(candidate):
                return candidate
            candidate += _ONE_DAY
        raise ValueError(f"no business day within {_SEARCH_LIMIT_DAYS} days of {d.isoformat()}")

    def add_business_days(self, start: datetime, n: int) -> datetime:
        """``n`` business days after ``start``'s local date, at the same local wall time.

        Weekends (days outside ``workdays``) and holidays are skipped and do not count.
        ``start`` need not be on a business day: 1 business day after a Saturday is
        Monday. ``n == 0`` returns ``start`` unchanged (in local time). The wall time
        is kept across DST changes and resolved as described in the module docstring.
        """
        if n < 0:
            raise ValueError(f"add_business_days needs n >= 0, got {n}")
        local_start = self.local(start)
        if n == 0:
            return local_start
        day = self._business_day_sum(local_start.date(), n)
        return _at_wall_time(day, local_start.time(), self.zone())

    def _business_day_sum(self, start_day: date, n: int) -> date:
        """The ``n``-th business day after ``start_day`` (``n >= 1``), memoised."""
        day = self._business_day_sums.get((start_day, n))
        if day is None:
            day = start_day
            for _ in range(n):
                day = self.next_business_day(day)
            self._business_day_sums[(start_day, n)] = day
        return day

    # Send window.

    def in_window(self, t: datetime) -> bool:
        """On a business day and ``window_start <= local wall time < window_end``."""
        lt = self.local(t)
        return self.is_business_day(lt.date()) and self.window_start <= lt.time() < self.window_end

    def next_window_open(self, t: datetime) -> datetime:
        """``t`` if it is in the window, else the earliest later in-window instant.

        That is today's window start when ``t`` is before it on a business day, else
        the window start of the next business day. A window start that does not exist
        locally that day (DST gap) moves forward by the gap; in a repeated hour both
        occurrences are tried, earliest first, so the result is never before ``t``.
        """
        lt = self.local(t)
        zone = self.zone()
        day = lt.date()
        # Fast path, for days with one UTC offset throughout (all but a few a year):
        # wall times there compare like instants and each exists once.
        if _steady_day(zone, day):
            if self.is_business_day(day):
                wall = lt.time()
                if wall < self.window_start:
                    return datetime.combine(day, self.window_start).replace(tzinfo=zone)
                if wall < self.window_end:
                    return lt
            later = self._opening_after_day(day)
            if later is not None:
                return later
        return self._next_window_open_resolving(lt)

    def _opening_after_day(self, day: date) -> datetime | None:
        """The window opening of the first business day after ``day``, when every day
        up to it is steady (else None: the careful path decides). Memoised: planning
        asks it for the same few weeks again and again."""
        if day in self._openings_after:
            return self._openings_after[day]
        zone = self.zone()
        opening = None
        later = day
        for _ in range(_SEARCH_LIMIT_DAYS):
            later += _ONE_DAY
            if not _steady_day(zone, later):
                break  # the careful path, from the original instant
            if self.is_business_day(later):
                opening = datetime.combine(later, self.window_start).replace(tzinfo=zone)
                break
        self._openings_after[day] = opening
        return opening

    def opening_after(self, offset: Offset, anchor: datetime) -> datetime:
        """``self.next_window_open(offset.apply(anchor, self))``, the due time of a step.

        The same value, computed once per offset and local day of the anchor where it
        can be: a weekday of the following week depends on that day alone; a day count
        or business-day count lands on one day, and on a steady one the answer is that
        day's window opening, the anchor's wall time on it, or the next opening after
        it, as the wall time falls before, in or after the window. Everything else
        (hour and minute durations, target days with a DST change) takes the long way.
        """
        kind = offset.kind
        if anchor.tzinfo is None or anchor.utcoffset() is None:
            return self.next_window_open(offset.apply(anchor, self))  # raises
        if kind is OffsetKind.DURATION and not offset.calendar_days:
            return self.next_window_open(offset.apply(anchor, self))
        zone = self.zone()
        local = anchor.astimezone(zone)
        key = (kind, offset.amount, offset.weekday, local.date())
        entry = self._offset_openings.get(key)
        if entry is None:
            entry = self._offset_openings[key] = self._offset_opening(offset, anchor, local)
        target, before, after = entry
        if target is None:
            if before is None:
                return self.next_window_open(offset.apply(anchor, self))
            return before
        wall = local.time()
        if before is not None:  # a business day
            if wall < self.window_start:
                return before
            if wall < self.window_end:
                return datetime.combine(target, wall.replace(fold=0) if wall.fold else wall, zone)
        if after is not None:
            return after
        return self.next_window_open(offset.apply(anchor, self))

    def _offset_opening(self, offset: Offset, anchor: datetime, local: datetime) -> _OffsetOpening:
        """:meth:`opening_after`'s memo entry for ``offset`` and ``local``'s day:
        (None, result, None) when the result depends on the day alone; (None, None, None)
        when it must be computed each time; else (target day, its window opening or None
        if it is no business day, the next opening after it or None if unknown)."""
        if offset.kind is OffsetKind.WEEKDAY_OF_FOLLOWING_WEEK:
            return None, self.next_window_open(offset.apply(anchor, self)), None
        day = local.date()
        if offset.kind is OffsetKind.BUSINESS_DAYS:
            target = self._business_day_sum(day, offset.amount)
        else:
            target = day + timedelta(days=offset.amount)
        zone = self.zone()
        if not _steady_day(zone, target):
            return None, None, None
        before = None
        if self.is_business_day(target):
            before = datetime.combine(target, self.window_start).replace(tzinfo=zone)
        return target, before, self._opening_after_day(target)

    def _next_window_open_resolving(self, lt: datetime) -> datetime:
        """:meth:`next_window_open` for any day, DST changes included."""
        if self.in_window(lt):
            return lt
        zone = self.zone()
        day = lt.date()
        for _ in range(_SEARCH_LIMIT_DAYS):
            if self.is_business_day(day):
                for fold in (0, 1):
                    naive = datetime.combine(day, self.window_start)
                    opening = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC).astimezone(zone)
                    # Compare in UTC: between two datetimes of the same zone Python
                    # compares wall times and ignores fold.
                    if opening.astimezone(UTC) >= lt.astimezone(UTC) and self.in_window(opening):
                        return opening
            day += _ONE_DAY
        raise ValueError(f"no send window within {_SEARCH_LIMIT_DAYS} days of {lt.isoformat()}")


# --- Offsets --------------------------------------------------------------------------------


class OffsetKind(StrEnum):
    DURATION = "duration"
    BUSINESS_DAYS = "business_days"
    WEEKDAY_OF_FOLLOWING_WEEK = "weekday_of_following_week"


@dataclass(frozen=True, slots=True)
class Offset:
    """When a follow-up step is due, relative to an anchor (usually the unanswered message).

    * ``DURATION``: ``delta`` after the anchor. When ``calendar_days`` is set (the spec
      counted days or weeks), ``amount`` is the number of calendar days and the step
      keeps the anchor's local wall time; otherwise (hours, minutes) it is absolute.
    * ``BUSINESS_DAYS``: ``amount`` business days after the anchor's local date.
    * ``WEEKDAY_OF_FOLLOWING_WEEK``: ``weekday`` (Monday=0) of the week after the
      anchor's week.

    ``text`` keeps the spec as written, for explanations.
    """

    kind: OffsetKind
    amount: int = 0
    delta: timedelta = timedelta(0)
    weekday: int | None = None
    text: str = ""
    calendar_days: bool = False

    def __post_init__(self) -> None:
        kind = OffsetKind(self.kind)
        object.__setattr__(self, "kind", kind)
        if kind is OffsetKind.DURATION:
            if self.delta <= timedelta(0):
                raise ValueError(f"a duration offset needs a positive delta, got {self.delta}")
            if self.calendar_days and self.delta != timedelta(days=self.amount):
                raise ValueError("a calendar-day duration needs delta == timedelta(days=amount)")
        elif kind is OffsetKind.BUSINESS_DAYS:
            if self.amount < 1:
                raise ValueError(f"a business-day offset needs amount >= 1, got {self.amount}")
        elif self.weekday is None or not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday) .. 6 (Sunday), got {self.weekday}")

    def apply(self, anchor: datetime, cal: Calendar) -> datetime:
        """The instant the step is due, in ``cal``'s zone; always later than ``anchor``.

        * Day/week durations use local calendar arithmetic: "5d" from Friday 10:00 is
          Wednesday 10:00 local even across a DST change (so 5x24h +/- 1h of absolute
          time); nonexistent/ambiguous wall times are resolved as in the module docs.
        * Hour/minute durations are absolute: "36h" is exactly 36 hours later, whatever
          the clocks do in between.
        * Business days: :meth:`Calendar.add_business_days`.
        * Weekday of the following week: that weekday of the ISO week (Monday..Sunday)
          after the anchor's local week, at ``window_start``; if it is not a business
          day (a holiday, or a weekday outside ``workdays``), the next business day.
          Friday 20 Nov, Monday 16 Nov and Sunday 22 Nov 2026 all give Tuesday 24 Nov.

        The result is not moved into the send window: the caller does
        ``cal.next_window_open(offset.apply(anchor, cal))``.
        """
        _require_aware(anchor, "anchor")
        zone = cal.zone()
        local_anchor = anchor.astimezone(zone)
        if self.kind is OffsetKind.DURATION:
            if self.calendar_days:
                day = local_anchor.date() + timedelta(days=self.amount)
                return _at_wall_time(day, local_anchor.time(), zone)
            # Aware datetime + timedelta is wall-clock arithmetic in Python; go via UTC
            # to add absolute time.
            return (anchor.astimezone(UTC) + self.delta).astimezone(zone)
        if self.kind is OffsetKind.BUSINESS_DAYS:
            return cal.add_business_days(anchor, self.amount)
        assert self.weekday is not None  # noqa: S101 - guaranteed by __post_init__
        anchor_day = local_anchor.date()
        monday_after = anchor_day - timedelta(days=anchor_day.weekday()) + timedelta(days=7)
        target = monday_after + timedelta(days=self.weekday)
        target = cal.next_business_day(target, include_today=True)
        return _at_wall_time(target, cal.window_start, zone)

    def minimum_days(self) -> float:
        """The smallest possible distance from anchor to due date, in days.

        Durations: their length. Business days: ``amount`` (skipped days only add).
        Weekday of the following week: the date distance from the most favourable
        anchor, a Sunday: 1 + weekday (Tuesday -> 2 days).
        """
        if self.kind is OffsetKind.DURATION:
            return self.delta / _ONE_DAY
        if self.kind is OffsetKind.BUSINESS_DAYS:
            return float(self.amount)
        assert self.weekday is not None  # noqa: S101 - guaranteed by __post_init__
        return float(1 + self.weekday)

    def describe(self) -> str:
        """A normalised English phrase for explanations: "5 days", "36 hours", ..."""
        if self.kind is OffsetKind.BUSINESS_DAYS:
            return _plural(self.amount, "business day")
        if self.kind is OffsetKind.WEEKDAY_OF_FOLLOWING_WEEK:
            assert self.weekday is not None  # noqa: S101 - guaranteed by __post_init__
            return f"{WEEKDAY_NAMES[self.weekday]} of the following week"
        if self.calendar_days:
            return _plural(self.amount, "day")
        minutes = int(self.delta.total_seconds()) // 60
        if minutes % 60 == 0:
            return _plural(minutes // 60, "hour")
        return _plural(minutes, "minute")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# --- The timing language --------------------------------------------------------------------

_EXPECTED = (
    "expected e.g. '5d', '36h', '2 weeks', '5 business days', 'tuesday of the following week'"
)


def _duration_units() -> dict[str, tuple[int, bool]]:
    """Unit name -> (minutes per unit, whether it counts calendar days)."""
    table = (
        (("m", "min", "mins", "minute", "minutes", "minuto", "minuti"), 1, False),
        (("h", "hr", "hrs", "hour", "hours", "ora", "ore"), 60, False),
        (("d", "day", "days", "giorno", "giorni", "gg"), 1440, True),
        (("w", "wk", "wks", "week", "weeks", "settimana", "settimane"), 7 * 1440, True),
    )
    return {name: (minutes, calendar) for names, minutes, calendar in table for name in names}


_DURATION_UNITS = _duration_units()

_BUSINESS_UNITS = frozenset(
    {
        "bd",
        "business day",
        "business days",
        "working day",
        "working days",
        "work day",
        "work days",
        "workday",
        "workdays",
        "giorno lavorativo",
        "giorni lavorativi",
    }
)

_EN_WEEKDAYS = {
    **{name.lower(): i for i, name in enumerate(WEEKDAY_NAMES)},
    **{abbr: i for i, abbr in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    "tues": 1,
    "thur": 3,
    "thurs": 3,
}
_IT_WEEKDAYS = {
    name: i
    for i, name in enumerate(
        ("lunedi", "martedi", "mercoledi", "giovedi", "venerdi", "sabato", "domenica")
    )
}

_AMOUNT_RE = re.compile(r"(?P<sign>[+-]?)\s*(?P<n>\d+)\s*(?P<unit>[a-z][a-z ]*)")
_EN_WEEK = r"(?:the\s+)?(?:following|next)\s+week"
_WEEKDAY_RES: tuple[tuple[re.Pattern[str], dict[str, int]], ...] = (
    # "tuesday of the following week", "tuesday of next week", "tuesday next week"
    (re.compile(rf"(?P<wd>[a-z]+)\s+(?:(?:of|in)\s+)?{_EN_WEEK}"), _EN_WEEKDAYS),
    # "next week tuesday", "the following week's tuesday", "next week on tuesday"
    (re.compile(rf"{_EN_WEEK}(?:'s)?\s+(?:on\s+)?(?P<wd>[a-z]+)"), _EN_WEEKDAYS),
    # "martedì della settimana successiva/dopo/seguente/prossima", "... della prossima settimana"
    (
        re.compile(
            r"(?P<wd>[a-z]+)\s+(?:(?:della|nella)\s+)?"
            r"(?:settimana\s+(?:successiva|dopo|seguente|prossima)|prossima\s+settimana)"
        ),
        _IT_WEEKDAYS,
    ),
)


def _normalise(spec: str) -> str:
    # Case-, accent- and whitespace-insensitive: "Martedì  della settimana dopo".
    decomposed = unicodedata.normalize("NFKD", spec.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.replace("\u2019", "'").split())


def parse_offset(spec: str) -> Offset:
    """Parse a step timing such as "5d", "36h", "5 business days", "tuesday of next week".

    Durations: ``N`` + m/min/minutes, h/hours, d/days, w/weeks (also Italian: ore,
    giorni, settimane). Business days: "N business days", "N working days", "Nbd".
    A weekday of the following week: "<weekday> of the following week", "<weekday> of
    next week", "next week <weekday>", "martedì della settimana successiva/dopo".
    Amounts must be positive and at most :data:`MAX_OFFSET_DAYS` days long.

    Raises ``ValueError`` naming the spec and the accepted forms.
    """
    if not isinstance(spec, str):
        raise TypeError(f"offset spec must be a string, got {type(spec).__name__}: {spec!r}")
    text = spec.strip()
    shown = repr(text if len(text) <= 60 else text[:57] + "...")
    norm = _normalise(spec)
    if not norm:
        raise ValueError(f"empty offset: {_EXPECTED}")

    for pattern, names in _WEEKDAY_RES:
        match = pattern.fullmatch(norm)
        if match and match["wd"] in names:
            return Offset(
                OffsetKind.WEEKDAY_OF_FOLLOWING_WEEK, weekday=names[match["wd"]], text=text
            )

    match = _AMOUNT_RE.fullmatch(norm)
    if match is None:
        raise ValueError(f"cannot read offset {shown}: {_EXPECTED}")
    unit = match["unit"].strip()
    if unit not in _DURATION_UNITS and unit not in _BUSINESS_UNITS:
        raise ValueError(f"unknown unit {unit[:30]!r} in offset {shown}: {_EXPECTED}")
    digits = match["n"].lstrip("0") or "0"
    if match["sign"] == "-" or digits == "0":
        raise ValueError(f"offset {shown} must be positive: {_EXPECTED}")
    if len(digits) > 9:  # also keeps int() away from its huge-string limit
        raise ValueError(f"offset {shown} is longer than {MAX_OFFSET_DAYS} days: {_EXPECTED}")
    n = int(digits)

    if unit in _BUSINESS_UNITS:
        if n > MAX_OFFSET_DAYS:
            raise ValueError(f"offset {shown} is longer than {MAX_OFFSET_DAYS} days: {_EXPECTED}")
        return Offset(OffsetKind.BUSINESS_DAYS, amount=n, text=text)

    per_unit, calendar = _DURATION_UNITS[unit]
    minutes = n * per_unit
    if minutes > MAX_OFFSET_DAYS * 1440:
        raise ValueError(f"offset {shown} is longer than {MAX_OFFSET_DAYS} days: {_EXPECTED}")
    delta = timedelta(minutes=minutes)
    if calendar:
        return Offset(
            OffsetKind.DURATION, amount=delta.days, delta=delta, text=text, calendar_days=True
        )
    return Offset(OffsetKind.DURATION, delta=delta, text=text)
