"""Unit tests for ghostwatch.dispatch: may this outbox row go now, and if not, until when.

Every clock is fixed. 2026-11-23 is a Monday; 2026-12-08 (a Tuesday) is the
Immacolata, a public holiday in Italy. Unless a test says otherwise the client's
calendar is Rome's, Monday-Friday 09:00-17:00, and the spread is off (``NO_SPREAD``)
so expected times are round; the spread has its own tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from ghostwatch.businesstime import Calendar
from ghostwatch.dispatch import (
    Candidate,
    Go,
    Hold,
    Limits,
    SentRecord,
    decide,
    order,
    send_slot,
    spread_offset,
)

ROME = ZoneInfo("Europe/Rome")
NEW_YORK = ZoneInfo("America/New_York")

ROME_CAL = Calendar(tz="Europe/Rome")
IT = Calendar(tz="Europe/Rome", country="IT")
NY_CAL = Calendar(tz="America/New_York")

NO_SPREAD = Limits(spread_minutes=0)
AUTO = Limits(spread_minutes=0, auto_send=True)

# Offsets pinned by test_spread_offset_is_pinned_to_sha256 (with the default 40 minutes).
MID_15 = "<gw-1@example.test>"
MID_38 = "<gw-4@example.test>"
MID = "<gw-2@example.test>"

CLIENT = "client:Acme"


def rome(y: int, m: int, d: int, hh: int = 0, mm: int = 0, *, fold: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ROME, fold=fold)


def utc(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


def ny(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=NEW_YORK)


def instant(t: datetime | None) -> datetime:
    """``t`` in UTC: same-zone datetimes compare wall times, so compare instants."""
    assert t is not None
    return t.astimezone(UTC)


MONDAY_9 = rome(2026, 11, 23, 9, 0)


def cand(
    due_at: datetime = MONDAY_9,
    *,
    row_id: int = 1,
    message_id: str = MID,
    state: str = "approved",
    mode: str = "approve",
    client: str = CLIENT,
    next_attempt_at: datetime | None = None,
) -> Candidate:
    return Candidate(
        row_id=row_id,
        message_id=message_id,
        state=state,
        mode=mode,
        client=client,
        due_at=due_at,
        next_attempt_at=next_attempt_at,
    )


def held(result: Go | Hold) -> Hold:
    assert isinstance(result, Hold), f"expected a Hold, got {result}"
    return result


# --- Limits ---------------------------------------------------------------------------------


def test_limits_defaults_are_the_documented_ones() -> None:
    limits = Limits()
    assert (limits.hourly_cap, limits.per_client_daily, limits.spread_minutes) == (20, 1, 40)
    assert limits.auto_send is False


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"hourly_cap": 0}, "hourly_cap"),
        ({"hourly_cap": -5}, "hourly_cap"),
        ({"per_client_daily": 0}, "per_client_daily"),
        ({"spread_minutes": -1}, "spread_minutes"),
        ({"spread_minutes": 601}, "spread_minutes"),
    ],
)
def test_limits_reject_out_of_range_values(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("spread", [0, 1, 600])
def test_limits_accept_spread_bounds(spread: int) -> None:
    assert Limits(spread_minutes=spread).spread_minutes == spread


# --- Naive datetimes ------------------------------------------------------------------------


def test_naive_due_at_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"due_at .* naive"):
        cand(datetime(2026, 11, 23, 10, 0))


def test_naive_next_attempt_at_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"next_attempt_at .* naive"):
        cand(next_attempt_at=datetime(2026, 11, 23, 10, 0))


def test_naive_sent_at_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"sent_at .* naive"):
        SentRecord(CLIENT, datetime(2026, 11, 23, 10, 0))


def test_naive_now_is_rejected_by_decide() -> None:
    with pytest.raises(ValueError, match=r"now .* naive"):
        decide(cand(), datetime(2026, 11, 23, 10, 0), ROME_CAL, NO_SPREAD, [])


def test_decide_rejects_a_naive_sent_at_that_bypassed_the_constructor() -> None:
    """Frozen dataclasses can still be forced; decide checks again rather than trust it."""
    record = SentRecord(CLIENT, utc(2026, 11, 23, 8, 0))
    object.__setattr__(record, "sent_at", datetime(2026, 11, 23, 8, 0))
    with pytest.raises(ValueError, match="sent_at"):
        decide(cand(), utc(2026, 11, 23, 10, 0), ROME_CAL, NO_SPREAD, [record])


# --- Spread offset --------------------------------------------------------------------------


def test_spread_offset_is_pinned_to_sha256() -> None:
    """Golden values: a change of hash (or Python's salted hash()) would reshuffle every slot."""
    assert spread_offset(MID_15, 40) == timedelta(minutes=15)
    assert spread_offset(MID_38, 40) == timedelta(minutes=38)
    assert spread_offset(MID, 40) == timedelta(minutes=8)
    assert spread_offset(MID_15, 600) == timedelta(minutes=375)


def test_spread_offset_is_deterministic() -> None:
    assert spread_offset("<x@y>", 40) == spread_offset("<x@y>", 40)


def test_spread_offsets_stay_in_range_and_vary_across_ids() -> None:
    offsets = [spread_offset(f"<msg-{i}@example.test>", 40) for i in range(50)]
    assert all(timedelta(0) <= o < timedelta(minutes=40) for o in offsets)
    assert all(o.total_seconds() % 60 == 0 for o in offsets)
    assert len(set(offsets)) > 10


def test_zero_spread_means_no_offset() -> None:
    assert spread_offset(MID_38, 0) == timedelta(0)


def test_spread_of_one_minute_is_always_zero() -> None:
    """[0, 1) whole minutes holds only 0."""
    assert {spread_offset(f"<m{i}@x>", 1) for i in range(20)} == {timedelta(0)}


# --- send_slot ------------------------------------------------------------------------------


def test_slot_in_window_is_due_at_plus_offset() -> None:
    slot = send_slot(cand(utc(2026, 11, 23, 10, 0), message_id=MID_15), ROME_CAL, Limits())
    assert instant(slot) == utc(2026, 11, 23, 10, 15)
    assert slot.tzinfo == ROME


def test_rows_due_together_get_different_slots() -> None:
    due = rome(2026, 11, 23, 9, 0)
    a = send_slot(cand(due, message_id=MID_15), ROME_CAL, Limits())
    b = send_slot(cand(due, message_id=MID_38), ROME_CAL, Limits())
    assert (a, b) == (rome(2026, 11, 23, 9, 15), rome(2026, 11, 23, 9, 38))


def test_slot_for_a_weekend_due_date_is_monday_opening_plus_offset() -> None:
    slot = send_slot(cand(rome(2026, 11, 21, 11, 0), message_id=MID_15), ROME_CAL, Limits())
    assert slot == rome(2026, 11, 23, 9, 15)


def test_slot_skips_a_public_holiday() -> None:
    """Due Monday evening 7 Dec: Tuesday is the Immacolata, so Wednesday 9 Dec."""
    slot = send_slot(cand(rome(2026, 12, 7, 18, 0), message_id=MID_15), IT, Limits())
    assert slot == rome(2026, 12, 9, 9, 15)


def test_slot_without_a_country_lands_on_the_holiday() -> None:
    """Control for the test above: the holiday comes from the country, not the date."""
    slot = send_slot(cand(rome(2026, 12, 7, 18, 0), message_id=MID_15), ROME_CAL, Limits())
    assert slot == rome(2026, 12, 8, 9, 15)


def test_offset_past_window_end_moves_to_next_opening() -> None:
    """Due 16:50 with a 15-minute offset would be 17:05: next business day 09:00 instead."""
    slot = send_slot(cand(rome(2026, 11, 27, 16, 50), message_id=MID_15), ROME_CAL, Limits())
    assert slot == rome(2026, 11, 30, 9, 0)


def test_offset_inside_window_near_its_end_is_kept() -> None:
    slot = send_slot(cand(rome(2026, 11, 27, 16, 40), message_id=MID_15), ROME_CAL, Limits())
    assert slot == rome(2026, 11, 27, 16, 55)


# --- Rules 1-3: state and approval ----------------------------------------------------------


@pytest.mark.parametrize(
    "state", ["sending", "sent", "failed", "uncertain", "cancelled", "skipped", "bogus"]
)
def test_unsendable_state_is_held_for_a_person_naming_the_state(state: str) -> None:
    hold = held(decide(cand(state=state), utc(2026, 11, 23, 10, 0), ROME_CAL, AUTO, []))
    assert hold.until is None
    assert state in hold.reason
    assert hold.row_id == 1


def test_state_rule_comes_before_everything_else() -> None:
    """A sent row with a retry time and a future slot still reports its state."""
    c = cand(rome(2026, 11, 30, 9, 0), state="sent", next_attempt_at=rome(2026, 11, 23, 12, 0))
    hold = held(decide(c, rome(2026, 11, 23, 10, 0), ROME_CAL, NO_SPREAD, []))
    assert hold.reason.startswith("sent")


def test_queued_approve_row_waits_for_approval() -> None:
    hold = held(
        decide(cand(state="queued", mode="approve"), utc(2026, 11, 23, 10, 0), ROME_CAL, AUTO, [])
    )
    assert hold == Hold(1, "waiting for your approval", None)


def test_queued_row_with_unknown_mode_fails_closed() -> None:
    """A corrupt mode must never count as "auto", even with auto-send on."""
    hold = held(
        decide(cand(state="queued", mode="Auto "), utc(2026, 11, 23, 10, 0), ROME_CAL, AUTO, [])
    )
    assert hold.until is None
    assert hold.reason.startswith("waiting for your approval")


def test_queued_auto_row_waits_when_auto_send_is_off() -> None:
    hold = held(
        decide(cand(state="queued", mode="auto"), utc(2026, 11, 23, 10, 0), ROME_CAL, NO_SPREAD, [])
    )
    assert hold == Hold(
        1, "auto-send is off ([sending] auto_send = false): waiting for your approval", None
    )


def test_queued_auto_row_goes_when_auto_send_is_on() -> None:
    result = decide(cand(state="queued", mode="auto"), utc(2026, 11, 23, 10, 0), ROME_CAL, AUTO, [])
    assert result == Go(1, rome(2026, 11, 23, 9, 0))


def test_approved_row_goes_whatever_its_mode() -> None:
    for mode in ("approve", "auto"):
        result = decide(cand(mode=mode), utc(2026, 11, 23, 10, 0), ROME_CAL, NO_SPREAD, [])
        assert isinstance(result, Go)


# --- Rule 4: retry backoff ------------------------------------------------------------------


def test_retry_backoff_holds_until_next_attempt() -> None:
    retry = utc(2026, 11, 23, 10, 30)
    hold = held(
        decide(cand(next_attempt_at=retry), utc(2026, 11, 23, 10, 0), ROME_CAL, NO_SPREAD, [])
    )
    assert instant(hold.until) == retry
    assert hold.reason == "retrying after a temporary refusal at 11:30 CET"


def test_retry_on_a_later_day_names_the_day() -> None:
    retry = rome(2026, 11, 24, 9, 5)
    hold = held(
        decide(cand(next_attempt_at=retry), rome(2026, 11, 23, 16, 0), ROME_CAL, NO_SPREAD, [])
    )
    assert hold.reason == "retrying after a temporary refusal at Tue 24 Nov 09:05 CET"


def test_retry_time_reached_no_longer_holds() -> None:
    now = utc(2026, 11, 23, 10, 30)
    result = decide(cand(next_attempt_at=now), now, ROME_CAL, NO_SPREAD, [])
    assert isinstance(result, Go)


def test_retry_rule_comes_before_the_slot_rule() -> None:
    c = cand(rome(2026, 11, 23, 15, 0), next_attempt_at=rome(2026, 11, 23, 11, 0))
    hold = held(decide(c, rome(2026, 11, 23, 10, 0), ROME_CAL, NO_SPREAD, []))
    assert hold.until == rome(2026, 11, 23, 11, 0)
    assert hold.reason.startswith("retrying")


# --- Rule 5: the row's slot -----------------------------------------------------------------


def test_before_slot_holds_until_slot() -> None:
    c = cand(rome(2026, 11, 23, 9, 0), message_id=MID_15)
    hold = held(decide(c, rome(2026, 11, 23, 9, 5), ROME_CAL, Limits(), []))
    assert hold.until == rome(2026, 11, 23, 9, 15)
    assert hold.reason == "not before 09:15 CET"


def test_slot_on_a_later_day_is_described_with_the_day() -> None:
    c = cand(rome(2026, 11, 30, 10, 0))
    hold = held(decide(c, rome(2026, 11, 23, 10, 0), ROME_CAL, NO_SPREAD, []))
    assert hold.reason == "not before Mon 30 Nov 10:00 CET"


def test_slot_in_another_year_names_the_year() -> None:
    c = cand(rome(2027, 1, 4, 10, 0))
    hold = held(decide(c, rome(2026, 12, 30, 10, 0), ROME_CAL, NO_SPREAD, []))
    assert hold.reason == "not before Mon 4 Jan 2027 10:00 CET"


def test_at_the_slot_the_row_goes_with_that_slot() -> None:
    c = cand(rome(2026, 11, 23, 9, 0), message_id=MID_15)
    assert decide(c, rome(2026, 11, 23, 9, 15), ROME_CAL, Limits(), []) == Go(
        1, rome(2026, 11, 23, 9, 15)
    )


def test_slot_is_compared_as_an_instant_in_the_repeated_hour() -> None:
    """25 Oct 2026, clocks go back at 03:00 CEST. ``now`` is 02:30 *CET* (01:30 UTC), the
    slot 02:45 *CEST* (00:45 UTC): by wall time now < slot, but the slot has passed."""
    always_open = Calendar(
        tz="Europe/Rome",
        window_start=time(0, 0),
        window_end=time(23, 59),
        workdays=frozenset(range(7)),
    )
    c = cand(rome(2026, 10, 25, 2, 45))
    now = rome(2026, 10, 25, 2, 30, fold=1)
    assert instant(now) > instant(c.due_at)
    assert isinstance(decide(c, now, always_open, NO_SPREAD, []), Go)


# --- Rule 6: the send window ----------------------------------------------------------------


def test_after_hours_holds_until_next_morning_plus_offset() -> None:
    c = cand(rome(2026, 11, 23, 10, 0), message_id=MID_15)
    hold = held(decide(c, rome(2026, 11, 23, 18, 0), ROME_CAL, Limits(), []))
    assert hold.until == rome(2026, 11, 24, 9, 15)
    assert hold.reason == (
        "outside the send window (Mon-Fri 09:00-17:00 Europe/Rome); "
        "next opening Tue 24 Nov 09:00 CET"
    )


def test_friday_evening_holds_until_monday() -> None:
    c = cand(rome(2026, 11, 27, 10, 0))
    hold = held(decide(c, rome(2026, 11, 27, 17, 0), ROME_CAL, NO_SPREAD, []))
    assert hold.until == rome(2026, 11, 30, 9, 0)
    assert "next opening Mon 30 Nov 09:00 CET" in hold.reason


def test_weekend_holds_until_monday() -> None:
    c = cand(rome(2026, 11, 20, 10, 0))
    hold = held(decide(c, rome(2026, 11, 21, 11, 0), ROME_CAL, NO_SPREAD, []))
    assert hold.until == rome(2026, 11, 23, 9, 0)
    assert "holiday" not in hold.reason


def test_public_holiday_holds_until_next_business_day_and_names_it() -> None:
    c = cand(rome(2026, 12, 7, 10, 0), message_id=MID_15)
    hold = held(decide(c, rome(2026, 12, 8, 10, 0), IT, Limits(), []))
    assert hold.until == rome(2026, 12, 9, 9, 15)
    assert "today is a holiday: Immaculate Conception" in hold.reason
    assert "next opening Wed 9 Dec 09:00 CET" in hold.reason


def test_window_hold_reopens_when_the_offset_leaves_a_short_window() -> None:
    """A 09:00-09:10 window cannot fit a 15-minute offset: Wednesday's opening plus the
    offset is 09:15, outside, so the row looks again at the opening after that (Thursday)
    and then goes, its slot having passed. Only a spread longer than the window does this."""
    short = Calendar(tz="Europe/Rome", window_end=time(9, 10))
    c = cand(rome(2026, 11, 23, 9, 0), message_id=MID_15)
    assert send_slot(c, short, Limits()) == rome(2026, 11, 24, 9, 0)
    hold = held(decide(c, rome(2026, 11, 24, 12, 0), short, Limits(), []))
    assert hold.until == rome(2026, 11, 26, 9, 0)
    assert "next opening Wed 25 Nov 09:00 CET" in hold.reason
    assert decide(c, hold.until, short, Limits(), []) == Go(1, rome(2026, 11, 24, 9, 0))


def test_window_description_lists_non_contiguous_workdays() -> None:
    odd = Calendar(tz="Europe/Rome", workdays=frozenset({0, 2, 3, 4}))
    c = cand(rome(2026, 11, 23, 10, 0))
    hold = held(decide(c, rome(2026, 11, 24, 10, 0), odd, NO_SPREAD, []))
    assert "(Mon, Wed-Fri 09:00-17:00 Europe/Rome)" in hold.reason
    assert hold.until == rome(2026, 11, 25, 9, 0)


def test_window_rule_comes_before_the_caps() -> None:
    sent = [SentRecord(CLIENT, rome(2026, 11, 23, 16, 55))]
    hold = held(decide(cand(), rome(2026, 11, 23, 17, 30), ROME_CAL, NO_SPREAD, sent))
    assert hold.reason.startswith("outside the send window")


# --- Rule 7: per-client daily cap -----------------------------------------------------------


def test_second_message_to_a_client_the_same_day_waits_for_tomorrow() -> None:
    sent = [SentRecord(CLIENT, rome(2026, 11, 23, 9, 30))]
    c = cand(message_id=MID_15)
    hold = held(decide(c, rome(2026, 11, 23, 11, 0), ROME_CAL, Limits(), sent))
    assert hold.until == rome(2026, 11, 24, 9, 15)
    assert hold.reason == f"already wrote to {CLIENT} today"


def test_per_client_cap_on_friday_waits_until_monday() -> None:
    sent = [SentRecord(CLIENT, rome(2026, 11, 27, 9, 30))]
    c = cand(rome(2026, 11, 27, 9, 0))
    hold = held(decide(c, rome(2026, 11, 27, 11, 0), ROME_CAL, NO_SPREAD, sent))
    assert hold.until == rome(2026, 11, 30, 9, 0)


def test_per_client_cap_skips_the_holiday_after_today() -> None:
    sent = [SentRecord(CLIENT, rome(2026, 12, 7, 9, 30))]
    c = cand(rome(2026, 12, 7, 9, 0))
    hold = held(decide(c, rome(2026, 12, 7, 11, 0), IT, NO_SPREAD, sent))
    assert hold.until == rome(2026, 12, 9, 9, 0)


def test_other_clients_sends_do_not_count_towards_the_per_client_cap() -> None:
    sent = [SentRecord("client:Other", rome(2026, 11, 23, 9, 30))]
    assert isinstance(decide(cand(), rome(2026, 11, 23, 11, 0), ROME_CAL, NO_SPREAD, sent), Go)


def test_yesterdays_send_does_not_count() -> None:
    sent = [SentRecord(CLIENT, rome(2026, 11, 23, 16, 59))]
    assert isinstance(decide(cand(), rome(2026, 11, 24, 9, 1), ROME_CAL, NO_SPREAD, sent), Go)


def test_per_client_day_is_the_clients_local_day_not_utc_late_send() -> None:
    """23:30 UTC on Monday is 00:30 Tuesday in Rome: it is today's send on Tuesday."""
    sent = [SentRecord(CLIENT, utc(2026, 11, 23, 23, 30))]
    c = cand(rome(2026, 11, 24, 9, 0))
    hold = held(decide(c, rome(2026, 11, 24, 10, 0), ROME_CAL, NO_SPREAD, sent))
    assert hold.reason.startswith("already wrote to")
    assert hold.until == rome(2026, 11, 25, 9, 0)


def test_per_client_day_is_the_clients_local_day_not_utc_same_utc_date() -> None:
    """22:30 UTC on Monday is still Monday in Rome: it does not count on Tuesday."""
    sent = [SentRecord(CLIENT, utc(2026, 11, 23, 22, 30))]
    c = cand(rome(2026, 11, 24, 9, 0))
    assert isinstance(decide(c, rome(2026, 11, 24, 10, 0), ROME_CAL, NO_SPREAD, sent), Go)


def test_per_client_day_in_new_york_ignores_a_same_utc_date_send_from_the_night_before() -> None:
    """02:00 UTC Monday is Sunday 21:00 in New York: not Monday's send there."""
    sent = [SentRecord(CLIENT, utc(2026, 11, 23, 2, 0))]
    c = cand(ny(2026, 11, 23, 9, 0))
    now = ny(2026, 11, 23, 15, 0)
    assert now.astimezone(UTC).date() == sent[0].sent_at.date()
    assert isinstance(decide(c, now, NY_CAL, NO_SPREAD, sent), Go)


def test_per_client_daily_limit_of_two_allows_a_second_send() -> None:
    limits = Limits(spread_minutes=0, per_client_daily=2)
    one = [SentRecord(CLIENT, rome(2026, 11, 23, 9, 30))]
    two = [*one, SentRecord(CLIENT, rome(2026, 11, 23, 10, 0))]
    now = rome(2026, 11, 23, 11, 0)
    assert isinstance(decide(cand(), now, ROME_CAL, limits, one), Go)
    assert held(decide(cand(), now, ROME_CAL, limits, two)).until == rome(2026, 11, 24, 9, 0)


def test_per_client_rule_comes_before_the_hourly_cap() -> None:
    limits = Limits(spread_minutes=0, hourly_cap=1)
    sent = [SentRecord(CLIENT, rome(2026, 11, 23, 10, 30))]
    hold = held(decide(cand(), rome(2026, 11, 23, 11, 0), ROME_CAL, limits, sent))
    assert hold.reason.startswith("already wrote to")


# --- Rule 8: hourly cap ---------------------------------------------------------------------


def _others(*times: datetime) -> list[SentRecord]:
    return [SentRecord(f"client:{i}", t) for i, t in enumerate(times)]


def test_hourly_cap_holds_until_the_oldest_send_is_an_hour_old() -> None:
    limits = Limits(spread_minutes=0, hourly_cap=3)
    sent = _others(utc(2026, 11, 23, 10, 20), utc(2026, 11, 23, 10, 5), utc(2026, 11, 23, 10, 40))
    hold = held(decide(cand(), utc(2026, 11, 23, 10, 50), ROME_CAL, limits, sent))
    assert instant(hold.until) == utc(2026, 11, 23, 11, 5)
    assert hold.reason == "hourly cap of 3 sends reached"


def test_hourly_cap_counts_sends_in_any_zone_as_instants() -> None:
    limits = Limits(spread_minutes=0, hourly_cap=2)
    sent = _others(ny(2026, 11, 23, 5, 10), rome(2026, 11, 23, 11, 30))  # 10:10, 10:30 UTC
    hold = held(decide(cand(), utc(2026, 11, 23, 10, 50), ROME_CAL, limits, sent))
    assert instant(hold.until) == utc(2026, 11, 23, 11, 10)


def test_hourly_cap_below_the_limit_goes() -> None:
    limits = Limits(spread_minutes=0, hourly_cap=3)
    sent = _others(utc(2026, 11, 23, 10, 5), utc(2026, 11, 23, 10, 40))
    assert isinstance(decide(cand(), utc(2026, 11, 23, 10, 50), ROME_CAL, limits, sent), Go)


def test_hourly_cap_window_excludes_a_send_exactly_an_hour_old() -> None:
    """(now - 1h, now]: at ``until`` the oldest send has just dropped out."""
    limits = Limits(spread_minutes=0, hourly_cap=2)
    sent = _others(utc(2026, 11, 23, 9, 50), utc(2026, 11, 23, 10, 30))
    assert isinstance(decide(cand(), utc(2026, 11, 23, 10, 50), ROME_CAL, limits, sent), Go)


def test_hourly_cap_window_includes_a_send_just_under_an_hour_old() -> None:
    limits = Limits(spread_minutes=0, hourly_cap=2)
    sent = _others(utc(2026, 11, 23, 9, 51), utc(2026, 11, 23, 10, 30))
    hold = held(decide(cand(), utc(2026, 11, 23, 10, 50), ROME_CAL, limits, sent))
    assert instant(hold.until) == utc(2026, 11, 23, 10, 51)


def test_hourly_cap_ignores_sends_after_now() -> None:
    limits = Limits(spread_minutes=0, hourly_cap=1)
    sent = _others(utc(2026, 11, 23, 11, 0))
    assert isinstance(decide(cand(), utc(2026, 11, 23, 10, 50), ROME_CAL, limits, sent), Go)


def test_hourly_cap_over_the_limit_waits_until_enough_sends_age_out() -> None:
    """Four sends against a cap of 3 (the cap was lowered): the oldest ageing out still
    leaves 3, so the row waits for the second oldest."""
    limits = Limits(spread_minutes=0, hourly_cap=3)
    sent = _others(
        utc(2026, 11, 23, 10, 0),
        utc(2026, 11, 23, 10, 10),
        utc(2026, 11, 23, 10, 20),
        utc(2026, 11, 23, 10, 30),
    )
    hold = held(decide(cand(), utc(2026, 11, 23, 10, 50), ROME_CAL, limits, sent))
    assert instant(hold.until) == utc(2026, 11, 23, 11, 10)


# --- Rule 9: Go -----------------------------------------------------------------------------


def test_go_when_everything_allows_it() -> None:
    c = cand(rome(2026, 11, 23, 9, 0), row_id=42, message_id=MID_15, state="approved")
    sent = [
        SentRecord(CLIENT, rome(2026, 11, 20, 10, 0)),  # last Friday
        SentRecord("client:Other", rome(2026, 11, 23, 9, 10)),
    ]
    result = decide(c, rome(2026, 11, 23, 9, 20), ROME_CAL, Limits(), sent)
    assert result == Go(42, rome(2026, 11, 23, 9, 15))


def test_overdue_row_goes_with_its_original_slot() -> None:
    c = cand(rome(2026, 11, 20, 9, 0))
    result = decide(c, rome(2026, 11, 23, 10, 0), ROME_CAL, NO_SPREAD, [])
    assert result == Go(1, rome(2026, 11, 20, 9, 0))


# --- order ----------------------------------------------------------------------------------


def test_order_sorts_by_slot_then_row_id() -> None:
    a = cand(rome(2026, 11, 24, 9, 0), row_id=1)
    b = cand(rome(2026, 11, 23, 10, 0), row_id=5)
    c = cand(rome(2026, 11, 23, 10, 0), row_id=3)
    d = cand(rome(2026, 11, 21, 12, 0), row_id=9)  # Saturday: slot Monday 09:00
    ordered = order([a, b, c, d], lambda _: ROME_CAL, NO_SPREAD)
    assert [x.row_id for x in ordered] == [9, 3, 5, 1]


def test_order_uses_the_spread_slot_not_due_at() -> None:
    early_due_late_slot = cand(rome(2026, 11, 23, 9, 0), row_id=1, message_id=MID_38)
    late_due_early_slot = cand(rome(2026, 11, 23, 9, 10), row_id=2, message_id=MID_15)
    ordered = order([early_due_late_slot, late_due_early_slot], lambda _: ROME_CAL, Limits())
    assert [x.row_id for x in ordered] == [2, 1]


def test_order_uses_each_candidates_own_calendar_and_compares_instants() -> None:
    """New York's 09:00 opening is 15:00 in Rome, after Rome's 10:00 row."""
    in_ny = cand(ny(2026, 11, 23, 7, 0), row_id=1, client="client:NY")
    in_rome = cand(rome(2026, 11, 23, 10, 0), row_id=2)
    calendars = {"client:NY": NY_CAL, CLIENT: ROME_CAL}
    ordered = order([in_ny, in_rome], lambda c: calendars[c.client], NO_SPREAD)
    assert [x.row_id for x in ordered] == [2, 1]


def test_order_returns_a_new_list_and_handles_empty_input() -> None:
    cands = [cand(rome(2026, 11, 24, 9, 0), row_id=2), cand(row_id=1)]
    ordered = order(cands, lambda _: ROME_CAL, NO_SPREAD)
    assert [x.row_id for x in cands] == [2, 1]
    assert [x.row_id for x in ordered] == [1, 2]
    assert order([], lambda _: ROME_CAL, NO_SPREAD) == []
