"""A client's track record: how fast they answer and how late they pay. Pure helpers.

PLAYBOOK stage 1: "A client who is habitually slow to answer is a warning sign: surface
it (their reply-time history)". Stage 3: "If the same client comes back, surface their
history (days late) so the freelancer can raise rates and ask for a deposit."
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ghostwatch.facts import Invoice

__all__ = [
    "describe_late_payments",
    "describe_latency",
    "is_habitually_slow",
    "late_payment_history",
    "reply_latency_stats",
]


def reply_latency_stats(latencies: Sequence[timedelta]) -> tuple[timedelta, timedelta] | None:
    """(median, 90th percentile) of reply latencies, or None without any.

    The percentile is the nearest-rank one: a latency the client actually showed.
    """
    if not latencies:
        return None
    ordered = sorted(latencies)
    seconds = statistics.median(t.total_seconds() for t in ordered)
    rank = max(1, math.ceil(0.9 * len(ordered)))
    return timedelta(seconds=seconds), ordered[rank - 1]


def is_habitually_slow(latencies: Sequence[timedelta], threshold_days: float) -> bool:
    """Whether the client's median reply takes longer than ``threshold_days``."""
    stats = reply_latency_stats(latencies)
    return stats is not None and stats[0] > timedelta(days=threshold_days)


def late_payment_history(invoices: Iterable[Invoice]) -> list[int]:
    """Days late of each paid invoice (0 when paid on time), in the order given.

    Unpaid invoices have no final figure yet and are left out. The payment day is read
    in ``paid_at``'s own offset.
    """
    return [
        max(0, (inv.paid_at.date() - inv.due).days) for inv in invoices if inv.paid_at is not None
    ]


def _days(t: timedelta) -> str:
    days = t.total_seconds() / 86400
    return f"{days:.1f}".removesuffix(".0") + (" day" if days == 1 else " days")


def describe_latency(latencies: Sequence[timedelta], threshold_days: float) -> str | None:
    """One explanation line about reply times, or None without data."""
    stats = reply_latency_stats(latencies)
    if stats is None:
        return None
    median, p90 = stats
    line = (
        f"reply history: median {_days(median)}, 90th percentile {_days(p90)} "
        f"over {len(latencies)} replies"
    )
    if median > timedelta(days=threshold_days):
        line += f"; habitually slow (median over {threshold_days:g} days): consider declining"
    return line


def describe_late_payments(days_late: Sequence[int]) -> str | None:
    """One explanation line about past payments, or None without data."""
    if not days_late:
        return None
    late = [d for d in days_late if d > 0]
    if not late:
        return f"payment history: {len(days_late)} invoices, all paid on time"
    listed = ", ".join(str(d) for d in days_late)
    return (
        f"payment history: days late {listed} (worst {max(late)}): raise your rates and ask "
        "for a non-refundable deposit (50% new, 25-30% repeat work)"
    )
