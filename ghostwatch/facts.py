"""What the policy engine reads (thread facts) and returns (planned steps, explanations).

Plain frozen values: the shell fills them from the store, the engine
(:mod:`ghostwatch.engine`, which re-exports them) reads them, nothing here acts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from ghostwatch.judgment import Verdict

__all__ = ["AutoReply", "Explanation", "Invoice", "PlannedStep", "StepRecord", "ThreadFacts"]


@dataclass(frozen=True, slots=True)
class Invoice:
    number: str
    amount: Decimal
    currency: str
    due: date
    paid_at: datetime | None = None
    attachment: str | None = None


@dataclass(frozen=True, slots=True)
class AutoReply:
    """An automated reply received after the last outgoing message."""

    at: datetime
    body: str
    subject: str


@dataclass(frozen=True, slots=True)
class StepRecord:
    """A step handled in the current silence: "sent", "done", "skipped", "snoozed:<iso>"."""

    step: str
    at: datetime
    outcome: str


@dataclass(frozen=True, slots=True)
class ThreadFacts:
    """Everything the engine knows about one thread; the shell gathers it."""

    thread_id: str
    account: str
    subject: str
    verdict: Verdict
    stage: str | None = None
    counterpart_last_wrote_from: str | None = None
    auto_replies: tuple[AutoReply, ...] = ()
    bounced_addresses: tuple[str, ...] = ()
    known_addresses: tuple[str, ...] = ()
    invoice: Invoice | None = None
    stopped: str | None = None
    steps_done: tuple[StepRecord, ...] = ()
    snoozed_until: datetime | None = None
    attachments: tuple[str, ...] = ()
    folder: str = "INBOX"
    payment_seen_at: datetime | None = None
    reply_latencies: tuple[timedelta, ...] = ()
    days_late_history: tuple[int, ...] = ()
    #: Your first message of this silence, before any follow-up; the kill fee counts
    #: from it. None: ``verdict.awaiting_since``.
    first_unanswered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step to perform at ``due_at`` (in the client's zone). ``index`` is the step's
    position in its policy, -1 for the engine's own tasks (bounce, address mismatch)."""

    thread_id: str
    account: str
    step: str
    index: int
    action: str
    template: str | None
    mode: str
    due_at: datetime
    reason: str
    stage: str
    counterpart: str | None
    attach_invoice: bool
    late_fee: Decimal | None
    deadline_at: datetime | None
    task: str | None
    checklist: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Explanation:
    thread_id: str
    stage: str | None
    status: str
    lines: tuple[str, ...]
    next_step: PlannedStep | None
