"""Whether one outbox row may be sent at ``now``, and if not, until when it waits.

Pure: a function of (row, ``now``, the client's calendar, limits, recent sends). No
clock, no I/O, no database; the sender gathers the facts, calls :func:`decide` and
acts on the :class:`Go` or :class:`Hold` that comes back.

Send-window logic lives in :class:`~ghostwatch.businesstime.Calendar`; this module
only adds the spread offset, the approval gate, retry backoff and the two caps.

Instants are compared in UTC throughout: between two datetimes of the *same* zone
Python compares wall times and ignores ``fold``, which is wrong in the repeated hour.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from ghostwatch.businesstime import Calendar

__all__ = [
    "Candidate",
    "Go",
    "Hold",
    "Limits",
    "SentRecord",
    "decide",
    "order",
    "send_slot",
    "spread_offset",
]

SENDABLE_STATES = frozenset({"queued", "approved"})

_HOUR = timedelta(hours=1)
_ONE_DAY = timedelta(days=1)
_MAX_SPREAD_MINUTES = 600

_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Why a row in a state that never goes out is held; the user sees it verbatim.
_STATE_REASONS = {
    "sending": "being sent right now",
    "sent": "already sent",
    "failed": "refused for good by the mail server: needs your decision",
    "uncertain": "may or may not have gone out: check before sending it again",
    "cancelled": "cancelled",
    "skipped": "skipped",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """How fast and how often ghostwatch may write."""

    hourly_cap: int = 20  # at most this many sends (all clients) in any 60 minutes
    per_client_daily: int = 1  # per client per local calendar day (the client's zone)
    spread_minutes: int = 40  # sends are spread over this many minutes after the slot opens
    auto_send: bool = False  # whether mode "auto" rows may go without approval

    def __post_init__(self) -> None:
        if self.hourly_cap < 1:
            raise ValueError(f"hourly_cap must be at least 1, got {self.hourly_cap}")
        if self.per_client_daily < 1:
            raise ValueError(f"per_client_daily must be at least 1, got {self.per_client_daily}")
        if not 0 <= self.spread_minutes <= _MAX_SPREAD_MINUTES:
            raise ValueError(
                f"spread_minutes must be between 0 and {_MAX_SPREAD_MINUTES}, "
                f"got {self.spread_minutes}"
            )


@dataclass(frozen=True, slots=True)
class Candidate:
    """One outbox row, as far as dispatch needs to know it."""

    row_id: int
    message_id: str  # seeds the spread offset, so a row keeps its slot across restarts
    state: str  # only "queued" and "approved" can ever go
    mode: str  # "approve" or "auto"
    client: str  # key for the per-client cap, e.g. "client:Acme" or an address
    due_at: datetime
    next_attempt_at: datetime | None = None  # retry backoff after a 4xx

    def __post_init__(self) -> None:
        _require_aware(self.due_at, "due_at")
        if self.next_attempt_at is not None:
            _require_aware(self.next_attempt_at, "next_attempt_at")


@dataclass(frozen=True, slots=True)
class SentRecord:
    """A message that went out (to any client), for the caps."""

    client: str
    sent_at: datetime

    def __post_init__(self) -> None:
        _require_aware(self.sent_at, "sent_at")


@dataclass(frozen=True, slots=True)
class Go:
    """Send the row now; ``slot`` is the instant it became eligible."""

    row_id: int
    slot: datetime


@dataclass(frozen=True, slots=True)
class Hold:
    """Do not send yet. ``until`` None means only a person can release the row."""

    row_id: int
    reason: str
    until: datetime | None


def spread_offset(message_id: str, spread_minutes: int) -> timedelta:
    """Whole minutes in ``[0, spread_minutes)`` derived from sha256 of ``message_id``.

    Python's ``hash()`` is salted per process, so it would move the slot on every
    restart; sha256 gives the same offset everywhere, forever.
    """
    if spread_minutes <= 0:
        return timedelta(0)
    digest = hashlib.sha256(message_id.encode("utf-8")).digest()
    # 64 bits modulo at most 600: the bias is far below anything observable.
    return timedelta(minutes=int.from_bytes(digest[:8], "big") % spread_minutes)


def send_slot(c: Candidate, cal: Calendar, limits: Limits) -> datetime:
    """Earliest instant this row may go, in the calendar's zone.

    The first window opening at or after ``due_at`` plus the row's spread offset, so
    rows due together do not all leave at 09:00:00. An offset that runs past the
    window's end moves to the next opening.
    """
    return _spread(cal.next_window_open(c.due_at), c.message_id, cal, limits)


def decide(
    c: Candidate, now: datetime, cal: Calendar, limits: Limits, sent: Sequence[SentRecord]
) -> Go | Hold:
    """Go, or Hold with a one-line reason and when to look again.

    Rules, first failing one wins: state, approval, auto-send switch, retry backoff,
    the row's slot, the send window, the per-client daily cap, the hourly cap.
    ``cal`` is the client's calendar; ``sent`` holds recent sends to all clients.
    """
    _require_aware(now, "now")
    _require_aware(c.due_at, "due_at")
    for record in sent:
        _require_aware(record.sent_at, "sent_at")
    now_utc = now.astimezone(UTC)

    if c.state not in SENDABLE_STATES:
        explanation = _STATE_REASONS.get(c.state, "not a state that is ever sent")
        return Hold(c.row_id, f"{c.state}: {explanation}", None)
    if c.state == "queued":
        # Fail closed: any mode other than "auto" (even a corrupt one) needs a person.
        if c.mode != "auto":
            suffix = "" if c.mode == "approve" else f" (unknown mode {c.mode!r})"
            return Hold(c.row_id, f"waiting for your approval{suffix}", None)
        if not limits.auto_send:
            return Hold(
                c.row_id,
                "auto-send is off ([sending] auto_send = false): waiting for your approval",
                None,
            )

    if c.next_attempt_at is not None and c.next_attempt_at.astimezone(UTC) > now_utc:
        retry = cal.local(c.next_attempt_at)
        return Hold(
            c.row_id,
            f"retrying after a temporary refusal at {_stamp(retry, now, cal)}",
            retry,
        )

    slot = send_slot(c, cal, limits)
    if now_utc < slot.astimezone(UTC):
        return Hold(c.row_id, f"not before {_stamp(slot, now, cal)}", slot)

    if not cal.in_window(now):
        opening = cal.next_window_open(now)
        return Hold(
            c.row_id,
            f"outside the send window ({_describe_window(cal)}{_day_off(now, cal)}); "
            f"next opening {_stamp(opening, now, cal)}",
            _spread(opening, c.message_id, cal, limits),
        )

    today = cal.local(now).date()
    to_client_today = sum(
        1 for r in sent if r.client == c.client and cal.local(r.sent_at).date() == today
    )
    if to_client_today >= limits.per_client_daily:
        reopen = cal.next_window_open(_start_of_day(today + _ONE_DAY, cal))
        return Hold(
            c.row_id,
            f"already wrote to {c.client} today",
            _spread(reopen, c.message_id, cal, limits),
        )

    last_hour = sorted(
        t for t in (r.sent_at.astimezone(UTC) for r in sent) if now_utc - _HOUR < t <= now_utc
    )
    excess = len(last_hour) - limits.hourly_cap
    if excess >= 0:
        # Room for one more once enough sends age out. With exactly the cap in the
        # hour that is the oldest; more (a lowered cap) need more of them to age out.
        until = (last_hour[excess] + _HOUR).astimezone(cal.zone())
        return Hold(c.row_id, f"hourly cap of {limits.hourly_cap} sends reached", until)

    return Go(c.row_id, slot)


def order(
    cands: Sequence[Candidate], cal_for: Callable[[Candidate], Calendar], limits: Limits
) -> list[Candidate]:
    """``cands`` by (send slot, row id): the longest-due rows get the caps' room first."""
    keyed = [((send_slot(c, cal_for(c), limits).astimezone(UTC), c.row_id), c) for c in cands]
    keyed.sort(key=lambda pair: pair[0])
    return [c for _, c in keyed]


# --- Helpers --------------------------------------------------------------------------------


def _require_aware(t: datetime, what: str) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} {t.isoformat()} is naive: dispatch needs timezone-aware times")


def _spread(opening: datetime, message_id: str, cal: Calendar, limits: Limits) -> datetime:
    # Add absolute time via UTC: aware + timedelta is wall-clock arithmetic in Python.
    slot = (opening.astimezone(UTC) + spread_offset(message_id, limits.spread_minutes)).astimezone(
        cal.zone()
    )
    return slot if cal.in_window(slot) else cal.next_window_open(slot)


def _start_of_day(d: date, cal: Calendar) -> datetime:
    # Round-trip through UTC so a midnight skipped by DST still lands on ``d``.
    naive = datetime.combine(d, time(0))
    return naive.replace(tzinfo=cal.zone()).astimezone(UTC).astimezone(cal.zone())


def _stamp(t: datetime, now: datetime, cal: Calendar) -> str:
    """``Mon 30 Nov 09:00 CET`` in the client's zone; just ``09:00 CET`` when it is today."""
    local = cal.local(t)
    local_now = cal.local(now)
    clock = f"{local:%H:%M} {local.tzname()}"
    d = local.date()
    if d == local_now.date():
        return clock
    day = f"{_DAY_NAMES[d.weekday()]} {d.day} {_MONTHS[d.month - 1]}"
    if d.year != local_now.year:
        day = f"{day} {d.year}"
    return f"{day} {clock}"


def _describe_window(cal: Calendar) -> str:
    """``Mon-Fri 09:00-17:00 Europe/Rome``."""
    hours = f"{cal.window_start:%H:%M}-{cal.window_end:%H:%M}"
    return f"{_describe_days(cal.workdays)} {hours} {cal.tz}"


def _describe_days(days: frozenset[int]) -> str:
    # Runs of three or more read as ranges ("Mon-Fri"); shorter ones as lists.
    runs: list[list[int]] = []
    for d in sorted(days):
        if runs and runs[-1][-1] == d - 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    parts: list[str] = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{_DAY_NAMES[run[0]]}-{_DAY_NAMES[run[-1]]}")
        else:
            parts.extend(_DAY_NAMES[d] for d in run)
    return ", ".join(parts)


def _day_off(now: datetime, cal: Calendar) -> str:
    # A closed workday is the puzzling case ("it's Tuesday, why not?"): name the holiday.
    today = cal.local(now).date()
    if today.weekday() not in cal.workdays:
        return ""
    name = cal.holiday_name(today)
    return "" if name is None else f"; today is a holiday: {name}"
