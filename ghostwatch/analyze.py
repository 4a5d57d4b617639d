"""Re-thread and re-judge an account from the store (the shell around the pure
``threads`` and ``judgment`` modules)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from sys import intern
from typing import cast

import structlog
from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch.classify import Kind
from ghostwatch.config import AccountSettings
from ghostwatch.judgment import Identity, Msg, Verdict, judge_all
from ghostwatch.message import Direction
from ghostwatch.store import MessageRow, StepLog, ThreadRow, Tracking
from ghostwatch.threads import ThreadInput, thread_messages

log = structlog.get_logger("ghostwatch.analyze")


def identity_of(account: AccountSettings) -> Identity:
    return Identity(
        addresses=account.own_addresses(),
        colleague_domains=frozenset(account.colleague_domains),
    )


def _split(value: str) -> tuple[str, ...]:
    return tuple(intern(v) for v in value.split()) if value else ()


_COLUMNS = (
    MessageRow.id,
    MessageRow.message_id,
    MessageRow.in_reply_to,
    MessageRow.references,
    MessageRow.subject,
    MessageRow.date,
    MessageRow.from_addr,
    MessageRow.to_addrs,
    MessageRow.cc_addrs,
    MessageRow.direction,
    MessageRow.kind,
    MessageRow.bounced_addrs,
    MessageRow.bounced_message_id,
    MessageRow.gm_thrid,
    MessageRow.thread_id,
)


def _unite_gmail_threads(gm_thrids: dict[int, int], assigned: dict[int, str]) -> None:
    """Gmail's X-GM-THRID is authoritative where present: merge threads it joins."""
    by_thrid: dict[int, list[int]] = defaultdict(list)
    for key, thrid in gm_thrids.items():
        by_thrid[thrid].append(key)
    rename: dict[str, str] = {}
    for keys in by_thrid.values():
        tids = sorted({assigned[k] for k in keys})
        for tid in tids[1:]:
            rename[tid] = tids[0]
    if rename:
        for key, original in assigned.items():
            tid = original
            while tid in rename:
                tid = rename[tid]
            assigned[key] = tid


# A message in the mailbox has arrived, whatever its Date header says: a client whose
# clock runs ahead must not have their answer ignored until that hour comes.
CLOCK_SKEW = timedelta(days=1)


def carry_over(db: Session, account: str, moved: dict[str, set[str]], live: set[str]) -> None:
    """Threads were renamed (a merge, or an older root found): what the user said about
    them (stop, stage, invoice) and the steps already taken go with their messages.

    Losing a ``stop`` or a step record here would mean chasing someone the user said
    to leave alone, or sending a step twice; so when a thread splits, every part
    inherits, and when threads merge, a stop on either side stops the whole.
    """
    old_ids = list(moved)
    tracked = {
        t.thread_id: t
        for t in db.scalars(
            select(Tracking).where(Tracking.account == account, Tracking.thread_id.in_(old_ids))
        )
    }
    for old, targets in moved.items():
        source = tracked.get(old)
        if source is None:
            continue
        for new in targets:
            target = db.get(Tracking, (account, new))
            if target is None:
                target = Tracking(account=account, thread_id=new, updated_at=source.updated_at)
                db.add(target)
            for name in ("stage", "invoice_number", "amount", "currency", "due", "attachment",
                         "paid_at", "stopped", "snoozed_until"):  # fmt: skip
                if getattr(target, name) is None and getattr(source, name) is not None:
                    setattr(target, name, getattr(source, name))
        if old not in live:
            db.delete(source)
    logs = list(
        db.scalars(
            select(StepLog).where(StepLog.account == account, StepLog.thread_id.in_(old_ids))
        )
    )
    existing = {
        (s.thread_id, s.anchor, s.step)
        for s in db.scalars(
            select(StepLog).where(
                StepLog.account == account,
                StepLog.thread_id.in_([t for ts in moved.values() for t in ts]),
            )
        )
    }
    for log_row in logs:
        for new in moved[log_row.thread_id]:
            if (new, log_row.anchor, log_row.step) not in existing:
                existing.add((new, log_row.anchor, log_row.step))
                db.add(
                    StepLog(
                        account=account,
                        thread_id=new,
                        anchor=log_row.anchor,
                        step=log_row.step,
                        outcome=log_row.outcome,
                        at=log_row.at,
                    )
                )
        if log_row.thread_id not in live:
            db.delete(log_row)
    db.flush()


def analyze_account(
    sessions: sessionmaker[Session],
    account: AccountSettings,
    now: datetime,
    *,
    clock_skew: timedelta = CLOCK_SKEW,
) -> dict[str, Verdict]:
    """Thread every stored message of ``account``, judge every thread, store verdicts.

    Works on plain rows and Core statements: the ORM's per-object bookkeeping costs
    more than the threading itself on a mailbox of tens of thousands of messages.
    """
    identity = identity_of(account)
    with sessions() as db:
        # One pass over the rows builds both views; the rows themselves are then
        # dropped, which keeps the peak memory of a big first sync down.
        inputs: list[ThreadInput] = []
        msgs: dict[int, Msg] = {}
        old_tid: dict[int, str | None] = {}
        gm_thrids: dict[int, int] = {}
        query = select(*_COLUMNS).where(MessageRow.account == account.name)
        # Streamed in batches, and the strings that repeat across a mailbox (addresses,
        # subjects of a thread) shared: a 60,000-message mailbox fits in ~100 MB.
        # On the Core connection rows stream from the cursor (an ORM execute would
        # fetch them all first; its yield_per streams too but costs more time).
        result = db.connection().execute(query.execution_options(stream_results=True))
        for r in result:
            to_addrs, cc_addrs = _split(r.to_addrs), _split(r.cc_addrs)
            from_addr = intern(r.from_addr)
            subject = intern(r.subject)
            inputs.append(
                ThreadInput(
                    key=r.id,
                    message_id=r.message_id,
                    in_reply_to=r.in_reply_to,
                    references=_split(r.references),  # interned: long threads repeat ids
                    subject=subject,
                    date=r.date,
                    participants=frozenset(
                        a
                        for a in (from_addr, *to_addrs, *cc_addrs)
                        if a and a not in identity.addresses
                    ),
                )
            )
            msgs[r.id] = Msg(
                message_id=r.message_id,
                date=r.date,
                direction=Direction(r.direction),
                kind=Kind(r.kind),
                from_addr=from_addr,
                to_addrs=to_addrs,
                cc_addrs=cc_addrs,
                subject=subject,
                bounced_addrs=_split(r.bounced_addrs),
                bounced_message_id=r.bounced_message_id,
            )
            old_tid[r.id] = r.thread_id
            if r.gm_thrid is not None:
                gm_thrids[r.id] = r.gm_thrid
        assigned = thread_messages(inputs)
        del inputs
        _unite_gmail_threads(gm_thrids, assigned)

        changed = [{"rid": k, "tid": t} for k, t in assigned.items() if old_tid[k] != t]
        moved: dict[str, set[str]] = defaultdict(set)
        for key, tid in assigned.items():
            before = old_tid[key]
            if before is not None and before != tid:
                moved[before].add(tid)
        del old_tid
        if moved:
            carry_over(db, account.name, moved, set(assigned.values()))
        if changed:
            table = cast(Table, MessageRow.__table__)
            db.connection().execute(
                update(table)
                .where(table.c.id == bindparam("rid"))
                .values(thread_id=bindparam("tid")),
                changed,
            )
        del changed

        threads: dict[str, list[Msg]] = defaultdict(list)
        for key, msg in msgs.items():
            threads[assigned[key]].append(msg)
        del msgs
        verdicts = judge_all(threads, identity, now + clock_skew)

        db.execute(delete(ThreadRow).where(ThreadRow.account == account.name))
        if verdicts:
            db.connection().execute(
                insert(cast(Table, ThreadRow.__table__)),
                [
                    {
                        "account": account.name,
                        "thread_id": tid,
                        "subject": v.subject,
                        "state": v.state.value,
                        "awaiting": v.awaiting,
                        "awaiting_since": v.awaiting_since,
                        "counterpart": v.counterpart,
                        "last_outgoing_message_id": v.last_outgoing_message_id,
                        "last_activity": v.last_activity,
                        "message_count": v.message_count,
                        "notes": "\n".join(v.notes),
                        "updated_at": now,
                        "counterparts": " ".join(v.counterparts),
                        "first_unanswered_at": v.first_unanswered_at,
                    }
                    for tid, v in verdicts.items()
                ],
            )
        db.commit()
    awaiting = sum(1 for v in verdicts.values() if v.awaiting)
    log.debug("account_judged", account=account.name, threads=len(verdicts), awaiting=awaiting)
    return verdicts
