"""Replaying a mailbox's history with a simulated clock: what ghostwatch would have
done, step by step, without sending anything.

The same ingestion, judgment, facts and planner as the real thing run over an
mbox or Maildir; time jumps from event to event (a message arriving, a step
falling due), and due steps are recorded in a throwaway step log as if done.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch import engine
from ghostwatch.analyze import analyze_account
from ghostwatch.config import AccountSettings
from ghostwatch.errors import GhostwatchError
from ghostwatch.facts import PlannedStep
from ghostwatch.gather import gather, silence_anchor
from ghostwatch.localsource import ingest
from ghostwatch.policy import PolicySettings
from ghostwatch.store import MessageRow, StepLog, ThreadRow, open_store

MAX_ITERATIONS = 100_000
# The simulated clock must see each message only once it was sent.
NO_SKEW = timedelta(0)


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    at: datetime
    kind: str  # "step" (would have been done) | "cancelled" (a reply made it moot)
    thread_id: str
    subject: str
    counterpart: str | None
    step: str
    action: str
    template: str | None
    mode: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReplayResult:
    events: list[TimelineEvent]
    #: As of the end of the replay: every thread, and the steps still ahead.
    threads: list[ThreadRow]
    upcoming: list[PlannedStep]
    end: datetime


Setup = Callable[[sessionmaker[Session], datetime], None]


def replay(
    source: Path,
    account: AccountSettings,
    policy: PolicySettings,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    setup: Setup | None = None,
) -> ReplayResult:
    """Replay ``source`` between ``start`` and ``end`` (default: its first message to
    14 days after its last) and return the timeline. ``setup`` may record tracking
    (stages, invoices) in the throwaway store before the clock starts."""
    with tempfile.TemporaryDirectory(prefix="ghostwatch-replay-") as tmp:
        sessions = open_store(f"sqlite:///{Path(tmp) / 'replay.db'}")
        try:
            return _run(source, account, policy, sessions, start=start, end=end, setup=setup)
        finally:
            sessions.kw["bind"].dispose()


def _run(
    source: Path,
    account: AccountSettings,
    policy: PolicySettings,
    sessions: sessionmaker[Session],
    *,
    start: datetime | None,
    end: datetime | None,
    setup: Setup | None,
) -> ReplayResult:
    first_seen = start or datetime.fromtimestamp(0).astimezone()
    ingest(source, account, sessions, first_seen)
    with sessions() as db:
        dates = sorted(
            db.scalars(select(MessageRow.date).where(MessageRow.account == account.name))
        )
    if not dates:
        raise GhostwatchError(f"{source}: no messages to replay")
    now = start or dates[0]
    stop_at = end or dates[-1] + timedelta(days=14)
    if stop_at <= now:
        raise GhostwatchError("--to must be later than --from")
    # Thread ids must exist before setup runs.
    analyze_account(sessions, account, now, clock_skew=NO_SKEW)
    if setup is not None:
        setup(sessions, now)

    events: list[TimelineEvent] = []
    pending: dict[str, PlannedStep] = {}
    arrivals = [d for d in dates if d > now]
    for _ in range(MAX_ITERATIONS):
        analyze_account(sessions, account, now, clock_skew=NO_SKEW)
        with sessions() as db:
            facts = {f.thread_id: f for f in gather(db, account, policy)}
            planned = engine.plan(facts.values(), policy, now)
            subjects = {t: s for t, s in db.execute(select(ThreadRow.thread_id, ThreadRow.subject))}
            # A step that was pending and vanished because the thread got an answer.
            for tid, step in list(pending.items()):
                if tid not in facts:
                    row = db.get(ThreadRow, (account.name, tid))
                    why = row.notes.split("\n")[-1] if row and row.notes else "no longer silent"
                    events.append(_event(now, "cancelled", step, subjects.get(tid, ""),
                                         f"{step.step} cancelled: {why}"))  # fmt: skip
                    del pending[tid]
            due = [s for s in planned if s.due_at <= now]
            for step in due:
                verdict = facts[step.thread_id].verdict
                db.add(
                    StepLog(
                        account=account.name,
                        thread_id=step.thread_id,
                        anchor=silence_anchor(verdict) or "",
                        step=step.step,
                        outcome="done" if step.action in ("task", "close") else "sent",
                        at=step.due_at,
                    )
                )
                events.append(_event(step.due_at, "step", step, subjects.get(step.thread_id, ""),
                                     step.reason))  # fmt: skip
                pending.pop(step.thread_id, None)
            db.commit()
        if due:
            continue  # the next step of those threads may be planned from this one
        pending = {s.thread_id: s for s in planned}
        while arrivals and arrivals[0] <= now:
            arrivals.pop(0)
        candidates = [s.due_at for s in planned] + arrivals[:1] + [stop_at]
        nxt = min(candidates)
        if nxt <= now:
            nxt = now + timedelta(minutes=1)
        if nxt >= stop_at:
            break
        now = nxt
    else:
        raise GhostwatchError("replay did not settle; this is a bug, please report it")
    events.sort(key=lambda e: (e.at, e.thread_id))
    analyze_account(sessions, account, stop_at, clock_skew=NO_SKEW)
    with sessions() as db:
        upcoming = engine.plan(gather(db, account, policy), policy, stop_at)
        threads = list(db.scalars(select(ThreadRow).where(ThreadRow.account == account.name)))
    return ReplayResult(events, threads, upcoming, stop_at)


def _event(at: datetime, kind: str, step: PlannedStep, subject: str, reason: str) -> TimelineEvent:
    return TimelineEvent(
        at=at,
        kind=kind,
        thread_id=step.thread_id,
        subject=subject,
        counterpart=step.counterpart,
        step=step.step,
        action=step.action,
        template=step.template,
        mode=step.mode,
        reason=reason,
    )
