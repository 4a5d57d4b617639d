"""Digest flags about clients and the digest schedule (pure parts of ghostwatch.approval)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ghostwatch.approval import _client_flags, digest_due
from ghostwatch.facts import ThreadFacts
from ghostwatch.judgment import ThreadState, Verdict

T = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday
ROME = ZoneInfo("Europe/Rome")
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def _facts(thread: str, who: str, **kw: object) -> ThreadFacts:
    verdict = Verdict(ThreadState.AWAITING_REPLY, subject="s", last_activity=T, message_count=1,
                      awaiting_since=T, counterpart=who, counterparts=(who,))  # fmt: skip
    return ThreadFacts(thread, "work", "s", verdict, **kw)  # type: ignore[arg-type]


def test_a_habitually_slow_client_is_flagged_with_the_figures() -> None:
    slow = _facts("t1", "slow@acme.example", reply_latencies=tuple(
        timedelta(days=d) for d in (8, 9, 12)))  # fmt: skip
    [flag] = _client_flags([slow], {"t1"}, slow_days=5)
    assert flag.kind == "slow_client"
    assert "slow@acme.example usually answers in 9 days (median of 3 replies)" in flag.text


def test_two_replies_are_not_a_habit_and_fast_clients_are_not_flagged() -> None:
    few = _facts("t1", "a@x.example", reply_latencies=(timedelta(days=20), timedelta(days=20)))
    fast = _facts("t2", "b@x.example", reply_latencies=(timedelta(days=1),) * 4)
    assert _client_flags([few, fast], {"t1", "t2"}, slow_days=5) == []


def test_a_late_payer_is_flagged_once_per_client_and_only_for_this_digests_threads() -> None:
    late = _facts("t1", "pay@acme.example", days_late_history=(0, 12, 20))
    same_client = _facts("t2", "pay@acme.example", days_late_history=(0, 12, 20))
    elsewhere = _facts("t3", "other@x.example", days_late_history=(30,))
    flags = _client_flags([late, same_client, elsewhere], {"t1", "t2"}, slow_days=5)
    assert [f.text for f in flags] == [
        "pay@acme.example paid late before: 2 of 3 invoices, 16 days late on average"
    ]


def test_the_digest_is_owed_once_per_scheduled_time() -> None:
    """08:30 Rome on business days: owed from 08:30, not again after it was sent, and a
    restart after a weekend owes one digest (Monday's), not three."""
    at_0830 = datetime(2026, 11, 30, 8, 30, tzinfo=ROME)
    assert digest_due(None, at_0830 - timedelta(minutes=1), ["08:30"], WEEKDAYS, ROME) != at_0830
    assert digest_due(None, at_0830, ["08:30"], WEEKDAYS, ROME) == at_0830
    assert digest_due(at_0830, at_0830 + timedelta(hours=3), ["08:30"], WEEKDAYS, ROME) is None
    friday = datetime(2026, 11, 27, 8, 30, tzinfo=ROME)
    assert digest_due(friday, at_0830 + timedelta(hours=1), ["08:30"], WEEKDAYS, ROME) == at_0830
    saturday_noon = datetime(2026, 11, 28, 12, 0, tzinfo=ROME)
    assert digest_due(friday, saturday_noon, ["08:30"], WEEKDAYS, ROME) is None


def test_two_times_a_day_owe_the_latest_passed() -> None:
    noon = datetime(2026, 11, 30, 13, 0, tzinfo=ROME)
    morning = datetime(2026, 11, 30, 8, 30, tzinfo=ROME)
    owed = digest_due(morning, noon, ["08:30", "12:30"], WEEKDAYS, ROME)
    assert owed == datetime(2026, 11, 30, 12, 30, tzinfo=ROME)
