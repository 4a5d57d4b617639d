"""Re-thread and re-judge an account from the store (the shell around the pure
``threads`` and ``judgment`` modules)."""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from operator import attrgetter
from sys import intern
from typing import Any, cast

import structlog
from sqlalchemy import (
    Connection,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch.classify import Kind
from ghostwatch.config import AccountSettings
from ghostwatch.judgment import Identity, Msg, ThreadState, Verdict, judge_all
from ghostwatch.message import Direction
from ghostwatch.records import builder
from ghostwatch.store import (
    IN_CHUNK,
    Mention,
    MessageRow,
    StepLog,
    ThreadKey,
    ThreadRow,
    Tracking,
    in_chunks,
    insert_plain,
    insert_values,
)
from ghostwatch.threads import (
    StreamThreader,
    ThreadInput,
    ids_named,
    mentioned_ids,
    thread_id_number,
    thread_id_of,
    thread_messages_keyed,
    to_micros,
)

log = structlog.get_logger("ghostwatch.analyze")


def identity_of(account: AccountSettings) -> Identity:
    return Identity(
        addresses=account.own_addresses(),
        colleague_domains=frozenset(account.colleague_domains),
    )


# Built once per stored message (see ghostwatch.records); enum members by stored value.
_new_thread_input = builder(ThreadInput)
_new_msg = builder(Msg)
_DIRECTIONS = {d.value: d for d in Direction}
_KINDS = {k.value: k for k in Kind}
_NO_ADDRESS = ("",)  # a message without a From


def _split(value: str) -> tuple[str, ...]:
    return tuple(map(intern, value.split())) if value else ()


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


def _unite_gmail_threads(gm_thrids: dict[int, int], assigned: dict[int, str]) -> dict[str, str]:
    """Gmail's X-GM-THRID is authoritative where present: merge threads it joins.
    Returns the renames (each joined thread to the name of its group)."""
    rename = _gmail_renames(sorted((thrid, assigned[key]) for key, thrid in gm_thrids.items()))
    if rename:
        for key, original in assigned.items():
            assigned[key] = _renamed(rename, original)
    return rename


def _joined_keys(
    rename: Mapping[str, str], key_of: Callable[[str], str | None]
) -> set[tuple[str, str]]:
    """(thread, subject key) of each part Gmail joined to a thread of another key."""
    return {
        (joined, key)
        for part, joined in rename.items()
        if (key := key_of(part)) is not None and key != key_of(joined)
    }


def _store_thread_keys(conn: Connection, account: str, pairs: set[tuple[str, str]]) -> None:
    if pairs:
        conn.execute(
            insert(ThreadKey),
            [{"account": account, "thread_id": t, "subject_key": k} for t, k in sorted(pairs)],
        )


def _drop_thread_keys(conn: Connection, account: str, thread_ids: set[str] | None) -> None:
    """Forget the joined parts' keys of these threads (None: of every thread)."""
    if thread_ids is None:
        conn.execute(delete(ThreadKey).where(ThreadKey.account == account))
        return
    for part in in_chunks(sorted(thread_ids)):
        conn.execute(
            delete(ThreadKey).where(ThreadKey.account == account, ThreadKey.thread_id.in_(part))
        )


def _gmail_renames(pairs: Iterable[tuple[int, str]]) -> dict[str, str]:
    """The thread renames that join the threads sharing an X-GM-THRID, each to its
    group's smallest thread id, from (X-GM-THRID, thread id) pairs that come grouped by
    X-GM-THRID. Holds only the threads that are renamed."""
    # Union-find over thread ids: a thread that shares one X-GM-THRID with a second
    # thread and another with a third joins both, whatever order the ids come in.
    parent: dict[str, str] = {}

    def root(tid: str) -> str:
        while tid in parent:
            tid = parent[tid]
        return tid

    current: int | None = None
    first = ""  # a thread holding the current X-GM-THRID
    for thrid, tid in pairs:
        if thrid != current:
            current, first = thrid, tid
            continue
        a, b = root(first), root(tid)
        if a != b:
            low, high = sorted((a, b))
            parent[high] = low
    return {tid: root(tid) for tid in parent}


def _renamed(rename: dict[str, str], tid: str) -> str:
    while tid in rename:
        tid = rename[tid]
    return tid


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


@dataclass(frozen=True, slots=True)
class Analysis:
    """What a full analysis stored: how many threads, how many awaiting a reply."""

    threads: int
    awaiting: int


def analyze_account(
    sessions: sessionmaker[Session],
    account: AccountSettings,
    now: datetime,
    *,
    clock_skew: timedelta = CLOCK_SKEW,
) -> Analysis:
    """Thread every stored message of ``account``, judge every thread, store verdicts.

    Up to :data:`IN_MEMORY_LIMIT` messages the account is threaded and judged in
    memory. Beyond, memory stays bounded whatever the size of the mailbox: threading
    keeps a few integers per message (:class:`~ghostwatch.threads.StreamThreader`,
    with the ids numbered by the database), and threads are judged a batch at a time
    as they are read back. Both give the same result (the tests hold them to each
    other). Works on plain rows and Core statements: the ORM's per-object bookkeeping
    costs more than the threading itself. :func:`analyze_changes` does the same work
    for only what new mail can affect.
    """
    with sessions() as db:
        conn = db.connection()
        count = conn.scalar(
            select(func.count()).select_from(MessageRow).where(MessageRow.account == account.name)
        )
        if (count or 0) <= IN_MEMORY_LIMIT:
            query = select(*_COLUMNS).where(MessageRow.account == account.name)
            # On the Core connection rows stream from the cursor.
            rows = conn.execute(query.execution_options(stream_results=True))
            verdicts = _rethread(db, account, rows, now + clock_skew, now, replaced=None)
            analysis = Analysis(len(verdicts), sum(1 for v in verdicts.values() if v.awaiting))
        else:
            analysis = _analyze_whole(db, account, now + clock_skew, now)
        db.commit()
    return analysis


#: Up to this many messages, a full analysis holds the account in memory (about 1.5 KB
#: a message, and faster); beyond it, it streams in bounded memory.
IN_MEMORY_LIMIT = 100_000


def _analyze_whole(
    db: Session, account: AccountSettings, visible_until: datetime, now: datetime
) -> Analysis:
    name, identity = account.name, identity_of(account)
    conn = db.connection()
    ids = _index_mentions(conn, name)
    threader = StreamThreader(ids)
    before = _ThreadNumbers()
    old = array("q")  # per message: its thread before (see _ThreadNumbers)
    gmail = False  # any X-GM-THRID: threads are joined through them once stored
    rank = func.dense_rank().over(order_by=Mention.msgid)
    numbered = conn.execute(
        select(Mention.message_pk, Mention.msgid, rank)
        .join(MessageRow, MessageRow.id == Mention.message_pk)
        .where(Mention.account == name)
        .order_by(MessageRow.date, MessageRow.id)
        .execution_options(stream_results=True)
    )
    messages = conn.execute(
        select(
            MessageRow.id,
            MessageRow.date,
            MessageRow.message_id,
            MessageRow.in_reply_to,
            MessageRow.references,
            MessageRow.thread_id,
            MessageRow.gm_thrid,
        )
        .where(MessageRow.account == name)
        .order_by(MessageRow.date, MessageRow.id)
        .execution_options(stream_results=True)
    )
    # Both come in the same order: each message's numbered ids follow one another.
    pending = next(numbered, None)
    for r in messages:
        number: dict[str, int] = {}
        while pending is not None and pending[0] == r.id:
            number[pending[1]] = pending[2] - 1
            pending = next(numbered, None)
        own = r.message_id.strip() if r.message_id else ""
        threader.add(
            r.id,
            to_micros(r.date),
            number[own] if own else None,
            number[r.in_reply_to] if r.in_reply_to else None,
            [number[ref] for ref in r.references.split()],
        )
        old.append(before.number(r.thread_id))
        gmail = gmail or r.gm_thrid is not None
    if pending is not None:
        raise RuntimeError(f"account {name}: mentions of message {pending[0]} out of order")

    heads = threader.head_keys()
    for start in range(0, len(heads), IN_CHUNK):
        part = heads[start : start + IN_CHUNK]
        query = select(MessageRow.id, MessageRow.subject).where(MessageRow.id.in_(part.tolist()))
        subjects: dict[int, str] = {key: subject for key, subject in conn.execute(query)}
        for j, key in enumerate(part, start):
            threader.set_subject(j, subjects[key])
    del heads
    distinct = conn.execute(
        select(Mention.msgid)
        .distinct()
        .where(Mention.account == name)
        .order_by(Mention.msgid)
        .execution_options(stream_results=True)
    )
    for n, (msgid,) in enumerate(distinct):  # numbered as dense_rank numbers them
        if threader.needs_name(n):
            threader.set_name(n, msgid)

    def participants_of(keys: list[int]) -> dict[int, frozenset[str]]:
        people: dict[int, frozenset[str]] = {}
        for part in in_chunks(keys):
            query = select(
                MessageRow.id, MessageRow.from_addr, MessageRow.to_addrs, MessageRow.cc_addrs
            ).where(MessageRow.id.in_(part))
            for key, from_addr, to_addrs, cc_addrs in conn.execute(query):
                people[key] = _participants(from_addr, to_addrs, cc_addrs, identity)
        return people

    threader.join_by_subject(participants_of)

    moved: dict[str, set[str]] = defaultdict(set)
    table = cast(Table, MessageRow.__table__)
    update_thread = (
        update(table).where(table.c.id == bindparam("rid")).values(thread_id=bindparam("tid"))
    )
    changed: list[dict[str, Any]] = []
    for position, (key, tid) in enumerate(threader.assignments()):
        was = old[position]
        if was == -1 or before.name(was) != tid:
            changed.append({"rid": key, "tid": tid})
            if was != -1 and not gmail:  # Gmail: counted once the threads are joined
                moved[before.name(was)].add(tid)
            if len(changed) >= _UPDATE_BATCH:
                conn.execute(update_thread, changed)
                changed = []
    if changed:
        conn.execute(update_thread, changed)
    del changed
    rename: dict[str, str] = {}
    if gmail:
        # The threads sharing an X-GM-THRID, read back grouped from the store, are
        # joined there; what moved is then counted from the joined names.
        pairs = conn.execute(
            select(MessageRow.gm_thrid, MessageRow.thread_id)
            .where(MessageRow.account == name, MessageRow.gm_thrid.is_not(None))
            .group_by(MessageRow.gm_thrid, MessageRow.thread_id)
            .order_by(MessageRow.gm_thrid, MessageRow.thread_id)
            .execution_options(stream_results=True)
        )
        rename = _gmail_renames(
            (thrid, tid) for thrid, tid in pairs if thrid is not None and tid is not None
        )
        for tid, joined in sorted(rename.items()):
            conn.execute(
                update(table)
                .where(table.c.account == name, table.c.thread_id == tid)
                .values(thread_id=joined)
            )
        for position, (_, threaded) in enumerate(threader.assignments()):
            tid = _renamed(rename, threaded)
            was = old[position]
            if was != -1 and before.name(was) != tid:
                moved[before.name(was)].add(tid)
    del old, before
    if moved:
        live = {_renamed(rename, tid) for _, tid in threader.assignments()}
        carry_over(db, name, moved, live)
        del live
    del moved
    db.execute(delete(ThreadRow).where(ThreadRow.account == name))
    _drop_thread_keys(conn, name, None)
    _store_thread_keys(conn, name, _joined_keys(rename, threader.subject_key))
    return _judge_stored(conn, account, identity, threader.subject_key, (visible_until, now))


class _ThreadNumbers:
    """Thread ids as numbers, so one per message fits in an array: "t" + 12 hex digits
    (every id threading gives) is that number; anything else gets a negative one."""

    def __init__(self) -> None:
        self._odd: dict[str, int] = {}
        self._odd_names: dict[int, str] = {}

    def number(self, tid: str | None) -> int:
        """-1 for None."""
        if tid is None:
            return -1
        number = thread_id_number(tid)
        if number is not None:
            return number
        n = self._odd.get(tid)
        if n is None:
            n = self._odd[tid] = -2 - len(self._odd)
            self._odd_names[n] = tid
        return n

    def name(self, number: int) -> str:
        return thread_id_of(number) if number >= 0 else self._odd_names[number]


_UPDATE_BATCH = 20_000
_JUDGE_BATCH = 2_000


def _judge_stored(
    conn: Connection,
    account: AccountSettings,
    identity: Identity,
    subject_key: Callable[[str], str | None],
    when: tuple[datetime, datetime],
) -> Analysis:
    """Judge every thread of the account as stored, a batch of threads at a time, and
    store the verdicts. Who wrote last in the whole account comes from the store.
    ``when``: (visible until, now)."""
    name = account.name
    visible_until, now = when
    rows = conn.execute(
        select(*_COLUMNS)
        .where(MessageRow.account == name)
        .order_by(MessageRow.thread_id, MessageRow.id)  # in store order within a thread
        .execution_options(stream_results=True)
    )

    latest: dict[str, tuple[datetime, str]] | None = None

    def contacts(addrs: set[str]) -> dict[str, tuple[datetime, str]]:
        # Every sender's latest word at once: one query instead of one per batch.
        nonlocal latest
        if latest is None:
            latest = _latest_contacts(conn, name, identity, None, visible_until)
        return {a: latest[a] for a in addrs if a in latest}

    threads = awaiting = 0

    def judge(batch: dict[str, list[Msg]]) -> None:
        nonlocal threads, awaiting
        verdicts = judge_all(batch, identity, visible_until, contacts=contacts)
        _insert_verdicts(conn, name, verdicts, now, subject_key)
        threads += len(verdicts)
        awaiting += sum(1 for v in verdicts.values() if v.awaiting)

    batch: dict[str, list[Msg]] = {}
    for tid, group in groupby(rows, key=attrgetter("thread_id")):
        batch[tid] = [_msg(r, identity) for r in group]
        if len(batch) >= _JUDGE_BATCH:
            judge(batch)
            batch = {}
    judge(batch)
    log.debug("account_judged", account=name, threads=threads, awaiting=awaiting)
    return Analysis(threads=threads, awaiting=awaiting)


def _insert_verdicts(
    conn: Connection,
    account: str,
    verdicts: Mapping[str, Verdict],
    now: datetime,
    subject_key: Callable[[str], str | None],
) -> None:
    if not verdicts:
        return
    insert_plain(
        conn,
        cast(Table, ThreadRow.__table__),
        [
            {
                "account": account,
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
                "subject_key": subject_key(tid),
            }
            for tid, v in verdicts.items()
        ],
    )


_MENTION_COLUMNS = ("message_pk", "msgid", "account")


def _insert_mentions(conn: Connection, rows: list[tuple[int, str, str]]) -> None:
    """(message_pk, msgid, account) rows straight to the driver (see insert_values)."""
    insert_values(conn, cast(Table, Mention.__table__), _MENTION_COLUMNS, rows)


def _index_mentions(conn: Connection, account: str) -> int:
    """Rebuild the account's index of the ids each message names; how many distinct.

    Old rows are deleted a batch of messages at a time (one DELETE of millions of rows
    holds all their row ids in memory).
    """
    stale = conn.scalar(select(Mention.message_pk).where(Mention.account == account).limit(1))
    table = cast(Table, Mention.__table__)
    rows = conn.execute(
        select(MessageRow.id, MessageRow.message_id, MessageRow.in_reply_to, MessageRow.references)
        .where(MessageRow.account == account)
        .execution_options(stream_results=True)
    )
    batch: list[tuple[int, str, str]] = []
    keys: list[int] = []

    def flush() -> None:
        if stale is not None:
            for part in in_chunks(keys):
                conn.execute(delete(table).where(table.c.message_pk.in_(part)))
        _insert_mentions(conn, batch)
        batch.clear()
        keys.clear()

    for key, message_id, in_reply_to, references in rows:
        keys.append(key)
        batch.extend(
            (key, i, account) for i in ids_named(message_id, in_reply_to, references.split())
        )
        if len(batch) >= _MENTION_BATCH:
            flush()
    flush()
    count = conn.scalar(
        select(func.count(func.distinct(Mention.msgid))).where(Mention.account == account)
    )
    return int(count or 0)


#: Beyond this many new messages, analyze_changes re-threads the whole account: the
#: lookups would cost more than they save (a first sync, a long offline spell).
INCREMENTAL_LIMIT = 5000


def analyze_changes(
    sessions: sessionmaker[Session],
    account: AccountSettings,
    now: datetime,
    *,
    clock_skew: timedelta = CLOCK_SKEW,
) -> int:
    """Thread and judge what mail synced since the last analysis can affect.

    New messages (stored, not yet threaded) can only change the threads that mention
    one of their Message-IDs (found through the ``mentions`` index), the threads the
    subject fallback could join to those (same subject key), and the threads holding
    a message whose date has come into view since the last analysis. Those are
    re-threaded and re-judged exactly as :func:`analyze_account` would; every other
    thread keeps its stored verdict. On Gmail, the threads holding a new message's
    X-GM-THRID are affected too, and a thread's subject keys include those of the parts
    Gmail joined to it (``thread_keys``). Falls back to :func:`analyze_account` for a
    first analysis or many new messages. Returns how many threads were judged.
    """
    identity = identity_of(account)
    with sessions() as db:
        conn = db.connection()
        new = conn.execute(
            select(*_COLUMNS).where(
                MessageRow.account == account.name, MessageRow.thread_id.is_(None)
            )
        ).all()
        if not new:
            return 0
        indexed = db.scalar(select(Mention.msgid).where(Mention.account == account.name).limit(1))
        if len(new) > INCREMENTAL_LIMIT or indexed is None:
            db.rollback()
            return analyze_account(sessions, account, now, clock_skew=clock_skew).threads
        new_inputs = _thread_inputs(new, identity)
        ids = {i for item in new_inputs for i in mentioned_ids(item)}
        touched = _threads_mentioning(conn, account.name, ids)
        # Gmail: the threads holding a new message's X-GM-THRID join it. Each holds
        # every stored message with its ids, as the last analysis joined them.
        touched |= _threads_of_gmail_threads(
            conn, account.name, {r.gm_thrid for r in new if r.gm_thrid is not None}
        )
        last = db.scalar(
            select(func.max(ThreadRow.updated_at)).where(ThreadRow.account == account.name)
        )
        if last is not None:
            # Judgment hides messages dated after now + skew: those that came into view
            # since the last analysis change their threads' verdicts too.
            touched |= set(
                conn.scalars(
                    select(MessageRow.thread_id)
                    .distinct()
                    .where(
                        MessageRow.account == account.name,
                        func.coalesce(MessageRow.thread_id, "") != "",  # by the date index
                        MessageRow.date > last + clock_skew,
                        MessageRow.date <= now + clock_skew,
                    )
                )
            )
        stored = _rows_of_threads(conn, account.name, touched)
        rows = [*new, *stored]
        # The subject fallback joins threads of equal subject keys that share a
        # participant: bring in every thread with a key of the affected ones (before
        # and after this change) and someone in common with them. Those it leaves
        # out cannot gain or lose a join: a join needs a shared participant, and the
        # threads an orphan joined are in its own (stored) thread.
        inputs = [*new_inputs, *_thread_inputs(stored, identity)]
        del new_inputs
        _, keys = thread_messages_keyed(inputs)
        involved = frozenset().union(*(i.participants for i in inputs))
        del inputs
        wanted = {k for k in keys.values() if k is not None}
        for part in in_chunks(sorted(touched)):
            wanted.update(
                conn.scalars(
                    select(ThreadRow.subject_key).where(
                        ThreadRow.account == account.name,
                        ThreadRow.thread_id.in_(part),
                        ThreadRow.subject_key.is_not(None),
                    )
                )
            )
            wanted.update(
                conn.scalars(
                    select(ThreadKey.subject_key).where(
                        ThreadKey.account == account.name, ThreadKey.thread_id.in_(part)
                    )
                )
            )
        same_key: set[str] = set()
        for part in in_chunks(sorted(wanted)):
            same_key.update(
                conn.scalars(
                    select(ThreadRow.thread_id).where(
                        ThreadRow.account == account.name, ThreadRow.subject_key.in_(part)
                    )
                )
            )
            # A part Gmail joined to a thread of another subject keeps its own key.
            same_key.update(
                conn.scalars(
                    select(ThreadKey.thread_id).where(
                        ThreadKey.account == account.name, ThreadKey.subject_key.in_(part)
                    )
                )
            )
        same_subject = _sharing_participants(
            conn, account.name, identity, same_key - touched, involved
        )
        rows += _rows_of_threads(conn, account.name, same_subject)
        # Someone writing in one thread answers for their other threads too ("they
        # wrote in another thread"): where the latest word of a sender of these rows
        # changes, their threads awaiting a reply or said to be answered elsewhere are
        # judged again, as they stand.
        redo = touched | same_subject
        elsewhere = _Elsewhere(
            conn,
            account.name,
            identity,
            rows=rows,
            redo=redo,
            visibility=(last + clock_skew if last else None, now + clock_skew),
        )
        verdicts = _rethread(
            db, account, rows, now + clock_skew, now, replaced=redo, rejudge=elsewhere
        )
        db.commit()
    log.debug(
        "account_judged_incrementally",
        account=account.name,
        new=len(new),
        threads=len(verdicts),
        messages=len(rows),
    )
    return len(verdicts)


class _Elsewhere:
    """The stored threads to judge again because a sender's latest word changed.

    A thread awaiting X, or said to be answered by X elsewhere, is judged with X's
    latest human message in the whole account (date and thread). That changes only
    through X's rows that are new, newly in view, or moved to another thread: the
    latest word of those senders is read before and after the rows are re-threaded.
    """

    def __init__(
        self,
        conn: Connection,
        account: str,
        identity: Identity,
        *,
        rows: list[Any],
        redo: set[str],
        visibility: tuple[datetime | None, datetime],
    ) -> None:
        self.conn, self.account, self.identity = conn, account, identity
        self.rows, self.redo = rows, redo
        self.seen_before, self.seen_now = visibility
        self.senders: set[str] = set()
        self.before: dict[str, tuple[datetime, str]] = {}

    def prepare(self, moved_rows: set[int]) -> None:
        """Before the rows' new thread ids are stored: whose word may change, and what
        it was."""
        seen_before = self.seen_before
        self.senders = {
            r.from_addr
            for r in self.rows
            if r.direction == Direction.INCOMING.value
            and r.kind == Kind.HUMAN.value
            and self.identity.is_external(r.from_addr)
            and (r.id in moved_rows or seen_before is None or r.date > seen_before)
        }
        if self.senders and seen_before is not None:
            self.before = _latest_contacts(
                self.conn, self.account, self.identity, self.senders, seen_before
            )

    def threads(self) -> list[Any]:
        """After: the rows of the threads to judge again, as they stand."""
        if not self.senders:
            return []
        after = _latest_contacts(
            self.conn, self.account, self.identity, self.senders, self.seen_now
        )
        changed = {a for a in self.senders if self.before.get(a) != after.get(a)}
        if not changed:
            return []
        query = select(ThreadRow.thread_id, ThreadRow.counterparts).where(
            ThreadRow.account == self.account,
            or_(
                ThreadRow.awaiting.is_(True),
                ThreadRow.state == ThreadState.ANSWERED_ELSEWHERE.value,
            ),
        )
        waiting = {
            tid
            for tid, counterparts in self.conn.execute(query)
            if tid not in self.redo and not changed.isdisjoint(counterparts.split())
        }
        return _rows_of_threads(self.conn, self.account, waiting)


def _sharing_participants(
    conn: Connection, account: str, identity: Identity, thread_ids: set[str], people: frozenset[str]
) -> set[str]:
    """The threads among ``thread_ids`` with a participant (as threading counts them)
    in ``people``."""
    found: set[str] = set()
    for part in in_chunks(sorted(thread_ids)):
        query = select(
            MessageRow.thread_id, MessageRow.from_addr, MessageRow.to_addrs, MessageRow.cc_addrs
        ).where(MessageRow.account == account, MessageRow.thread_id.in_(part))
        for tid, from_addr, to_addrs, cc_addrs in conn.execute(query):
            if tid is None or tid in found:
                continue
            if not people.isdisjoint(_participants(from_addr, to_addrs, cc_addrs, identity)):
                found.add(tid)
    return found


def _threads_holding(
    conn: Connection, values: Iterable[Any], query: Callable[[list[Any]], Select[str | None]]
) -> set[str]:
    """The threads ``query`` (for a chunk of ``values``) finds, over every chunk."""
    found: set[str] = set()
    for part in in_chunks(sorted(values)):
        found.update(t for t in conn.scalars(query(part)) if t is not None)
    return found


# The two queries below return duplicates, which _threads_holding folds into a set: with
# DISTINCT, SQLite reads the thread ids in order from the (account, thread_id) index,
# the whole account's, rather than looking the given values up in their own index.


def _threads_mentioning(conn: Connection, account: str, ids: set[str]) -> set[str]:
    threads = select(MessageRow.thread_id)
    return _threads_holding(
        conn,
        ids,
        lambda part: threads.join(Mention, Mention.message_pk == MessageRow.id).where(
            Mention.account == account, Mention.msgid.in_(part)
        ),
    )


def _threads_of_gmail_threads(conn: Connection, account: str, thrids: set[int]) -> set[str]:
    threads = select(MessageRow.thread_id)
    return _threads_holding(
        conn,
        thrids,
        lambda part: threads.where(MessageRow.account == account, MessageRow.gm_thrid.in_(part)),
    )


def _rows_of_threads(conn: Connection, account: str, thread_ids: set[str]) -> list[Any]:
    rows: list[Any] = []
    for part in in_chunks(sorted(thread_ids)):
        query = select(*_COLUMNS).where(
            MessageRow.account == account, MessageRow.thread_id.in_(part)
        )
        rows.extend(conn.execute(query))
    return rows


def _thread_inputs(rows: Iterable[Any], identity: Identity) -> list[ThreadInput]:
    return [_thread_input(r, identity) for r in rows]


def _thread_input(r: Any, identity: Identity) -> ThreadInput:
    return _new_thread_input(
        key=r.id,
        message_id=r.message_id,
        in_reply_to=r.in_reply_to,
        references=_split(r.references),  # interned: long threads repeat ids
        subject=intern(r.subject),
        date=r.date,
        participants=_participants(r.from_addr, r.to_addrs, r.cc_addrs, identity),
    )


def _participants(
    from_addr: str, to_addrs: str, cc_addrs: str, identity: Identity
) -> frozenset[str]:
    """Who takes part in a message, as threading counts them: the owner's own excluded."""
    addrs = frozenset((intern(from_addr), *_split(to_addrs), *_split(cc_addrs)))
    return addrs.difference(identity.addresses, _NO_ADDRESS)


def _rethread(
    db: Session,
    account: AccountSettings,
    rows: Iterable[Any],
    visible_until: datetime,
    now: datetime,
    *,
    replaced: set[str] | None,
    rejudge: _Elsewhere | None = None,
) -> dict[str, Verdict]:
    """Thread ``rows`` (whole threads only) in memory, store their thread ids, mentions
    and verdicts. ``replaced``: the stored threads these rows were in (None: every
    thread of the account is being replaced; otherwise who last wrote is looked up in
    the store). ``rejudge``: which other stored threads to judge again, as they stand."""
    identity = identity_of(account)
    # One pass over the rows builds both views; the rows themselves are then dropped,
    # which keeps the peak memory of a big first sync down. The strings that repeat
    # across a mailbox (addresses, subjects of a thread) are shared.
    inputs: list[ThreadInput] = []
    msgs: dict[int, Msg] = {}
    old_tid: dict[int, str | None] = {}
    gm_thrids: dict[int, int] = {}
    for r in rows:
        item = _thread_input(r, identity)
        inputs.append(item)
        msgs[r.id] = _msg(r, identity)
        old_tid[r.id] = r.thread_id
        if r.gm_thrid is not None:
            gm_thrids[r.id] = r.gm_thrid
    assigned, subject_keys = thread_messages_keyed(inputs)
    joined = _joined_keys(_unite_gmail_threads(gm_thrids, assigned), subject_keys.get)
    _store_mentions(db, account.name, inputs, old_tid, everything=replaced is None)
    del inputs

    conn = db.connection()
    changed: list[dict[str, Any]] = [
        {"rid": k, "tid": t} for k, t in assigned.items() if old_tid[k] != t
    ]
    if rejudge is not None:
        rejudge.prepare({c["rid"] for c in changed})
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
        conn.execute(
            update(table).where(table.c.id == bindparam("rid")).values(thread_id=bindparam("tid")),
            changed,
        )
    del changed

    rethreaded = set(assigned.values())
    as_they_stand: set[str] = set()
    for r in rejudge.threads() if rejudge is not None else ():
        msgs[r.id] = _msg(r, identity)
        assigned.setdefault(r.id, r.thread_id)
        as_they_stand.add(r.thread_id)
    # In store order: which of two copies of one message judgment keeps must not
    # depend on the order the rows were read in.
    threads: dict[str, list[Msg]] = defaultdict(list)
    for key in sorted(msgs):
        threads[assigned[key]].append(msgs[key])
    del msgs
    if as_they_stand:
        # Not re-threaded: their subject keys stay.
        for part in in_chunks(sorted(as_they_stand)):
            query = select(ThreadRow.thread_id, ThreadRow.subject_key).where(
                ThreadRow.account == account.name, ThreadRow.thread_id.in_(part)
            )
            subject_keys.update((tid, key) for tid, key in conn.execute(query))
    if replaced is None:
        verdicts = judge_all(threads, identity, visible_until)
        db.execute(delete(ThreadRow).where(ThreadRow.account == account.name))
    else:
        verdicts = judge_all(
            threads,
            identity,
            visible_until,
            contacts=lambda addrs: _latest_contacts(
                conn, account.name, identity, addrs, visible_until
            ),
        )
        for part in in_chunks(sorted(replaced | set(threads))):
            db.execute(
                delete(ThreadRow).where(
                    ThreadRow.account == account.name, ThreadRow.thread_id.in_(part)
                )
            )
    _drop_thread_keys(conn, account.name, None if replaced is None else replaced | rethreaded)
    _store_thread_keys(conn, account.name, joined)
    _insert_verdicts(conn, account.name, verdicts, now, subject_keys.get)
    awaiting = sum(1 for v in verdicts.values() if v.awaiting)
    log.debug("threads_judged", account=account.name, threads=len(verdicts), awaiting=awaiting)
    return verdicts


def _msg(r: Any, identity: Identity) -> Msg:
    return _new_msg(
        message_id=r.message_id,
        date=r.date,
        direction=_DIRECTIONS.get(r.direction) or Direction(r.direction),
        kind=_KINDS.get(r.kind) or Kind(r.kind),
        from_addr=intern(r.from_addr),
        to_addrs=_split(r.to_addrs),
        cc_addrs=_split(r.cc_addrs),
        subject=intern(r.subject),
        bounced_addrs=_split(r.bounced_addrs),
        bounced_message_id=r.bounced_message_id,
    )


def _latest_contacts(
    conn: Connection,
    account: str,
    identity: Identity,
    addrs: set[str] | None,
    visible_until: datetime,
) -> dict[str, tuple[datetime, str]]:
    """judgment.latest_human_contact over the whole stored account, for ``addrs``
    (None: for every sender, in one query)."""
    latest: dict[str, tuple[datetime, str]] = {}
    answers = (
        MessageRow.account == account,
        MessageRow.direction == Direction.INCOMING.value,
        MessageRow.kind == Kind.HUMAN.value,
        # Threaded rows only. Both terms are written so that no planner picks the
        # thread or date index over the sender's (a range scan of the account).
        func.coalesce(MessageRow.thread_id, "") != "",
        func.coalesce(MessageRow.date, MessageRow.date) <= visible_until,
    )
    parts: Iterable[list[str] | None] = [None] if addrs is None else in_chunks(sorted(addrs))
    for part in parts:
        among = () if part is None else (MessageRow.from_addr.in_(part),)
        # Per address, its latest date, then the greatest thread id at that date.
        best = (
            select(MessageRow.from_addr.label("addr"), func.max(MessageRow.date).label("at"))
            .where(*answers, *among)
            .group_by(MessageRow.from_addr)
            .subquery()
        )
        query = (
            select(MessageRow.from_addr, MessageRow.date, func.max(MessageRow.thread_id))
            .join(best, and_(MessageRow.from_addr == best.c.addr, MessageRow.date == best.c.at))
            .where(*answers, *among)
            .group_by(MessageRow.from_addr, MessageRow.date)
        )
        for addr, when, tid in conn.execute(query):
            if tid is None or not identity.is_external(addr):
                continue
            if addr not in latest or latest[addr] < (when, tid):
                latest[addr] = (when, tid)
    return latest


_MENTION_BATCH = 20000


def _store_mentions(
    db: Session,
    account: str,
    inputs: list[ThreadInput],
    old_tid: dict[int, str | None],
    *,
    everything: bool,
) -> None:
    """Index the ids each message names; once per message (those not threaded before),
    or all of them afresh when the whole account is re-threaded."""
    conn = db.connection()
    table = cast(Table, Mention.__table__)
    if everything:
        conn.execute(delete(table).where(table.c.account == account))
    batch: list[tuple[int, str, str]] = []
    for item in inputs:
        if not everything and old_tid[item.key] is not None:
            continue
        batch.extend((item.key, i, account) for i in mentioned_ids(item))
        if len(batch) >= _MENTION_BATCH:
            _insert_mentions(conn, batch)
            batch = []
    _insert_mentions(conn, batch)
