"""From the store to the engine's input: one :class:`ThreadFacts` per thread.

The shell around :mod:`ghostwatch.engine`: reads threads, their messages, what the
user said (tracking) and what was already done (step log), and hands the engine
plain values. Nothing here decides anything.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from ghostwatch.absence import extract_text
from ghostwatch.classify import Kind
from ghostwatch.config import AccountSettings
from ghostwatch.facts import AutoReply, Invoice, StepRecord, ThreadFacts
from ghostwatch.judgment import ThreadState, Verdict
from ghostwatch.message import Direction
from ghostwatch.policy import PolicySettings
from ghostwatch.records import builder
from ghostwatch.store import Folder, MessageRow, StepLog, ThreadRow, Tracking, in_chunks


def name_of(db: Session, account: AccountSettings, facts: ThreadFacts) -> str:
    """The display name the thread's counterpart last wrote under ("" if none)."""
    address = facts.counterpart_last_wrote_from or facts.verdict.counterpart
    if not address:
        return ""
    name = db.scalar(
        select(MessageRow.from_name)
        .where(
            MessageRow.account == account.name,
            MessageRow.from_addr == address,
            MessageRow.from_name != "",
        )
        .order_by(MessageRow.date.desc())
        .limit(1)
    )
    return (name or "").strip().strip('"')


def silence_anchor(verdict: Verdict) -> str | None:
    """The key of the current silence in the step log: when it started."""
    start = verdict.first_unanswered_at or verdict.awaiting_since
    return start.isoformat() if start else None


def verdict_of(row: ThreadRow) -> Verdict:
    counterparts = tuple(row.counterparts.split()) if row.counterparts else ()
    if not counterparts and row.counterpart:
        counterparts = (row.counterpart,)
    return Verdict(
        state=ThreadState(row.state),
        subject=row.subject,
        last_activity=row.last_activity,
        message_count=row.message_count,
        awaiting_since=row.awaiting_since,
        counterpart=row.counterpart,
        counterparts=counterparts,
        last_outgoing_message_id=row.last_outgoing_message_id,
        notes=tuple(row.notes.split("\n")) if row.notes else (),
        first_unanswered_at=row.first_unanswered_at,
    )


@dataclass(frozen=True, slots=True)
class _Mail:
    key: int  # the store's id: ties on date are broken in store order
    thread_id: str
    folder: str
    date: datetime
    direction: str
    kind: str
    from_addr: str
    to_addrs: tuple[str, ...]
    subject: str
    bounced_addrs: tuple[str, ...]
    auto_reply_text: str | None


_new_mail = builder(_Mail)  # once per message read: see ghostwatch.records
# Stored values, read for every message (an Enum member's .value is a descriptor call).
_INCOMING = Direction.INCOMING.value
_OUTGOING = Direction.OUTGOING.value
_HUMAN = Kind.HUMAN.value
_AUTO_REPLY = Kind.AUTO_REPLY.value
_BOUNCE = Kind.BOUNCE.value

_MAIL_COLUMNS = (
    MessageRow.id,
    MessageRow.thread_id,
    MessageRow.folder_id,
    MessageRow.date,
    MessageRow.direction,
    MessageRow.kind,
    MessageRow.from_addr,
    MessageRow.to_addrs,
    MessageRow.cc_addrs,
    MessageRow.subject,
    MessageRow.bounced_addrs,
    MessageRow.auto_reply_text,
)


def _mails(db: Session, account: str, *conditions: ColumnElement[bool]) -> list[_Mail]:
    """The account's messages matching any of ``conditions`` (each applied on its own,
    a message once), oldest first; in store order where dates are equal."""
    query = select(Folder.id, Folder.name).where(Folder.account == account)
    folders: dict[int, str] = {fid: name for fid, name in db.execute(query)}
    found: dict[int, Any] = {}
    for condition in conditions:
        for r in db.execute(select(*_MAIL_COLUMNS).where(MessageRow.account == account, condition)):
            found[r.id] = r
    mails = []
    for key in sorted(found):
        # Unpacked by position: cheaper than a row's attributes, for every message read.
        (_, tid, folder_id, date, direction, kind, from_addr, to, cc, subject, bounced,
         auto_reply_text) = found[key]  # fmt: skip
        mails.append(
            _new_mail(
                key,
                tid or "",
                folders.get(folder_id, ""),
                date,
                direction,
                kind,
                from_addr,
                tuple(f"{to} {cc}".split()),
                subject,
                tuple(bounced.split()) if bounced else (),
                auto_reply_text,
            )
        )
    mails.sort(key=attrgetter("date"))
    return mails


def _folder_of(mails: list[_Mail]) -> str:
    """The folder a thread lives in, for rules: where their latest mail was filed,
    else where the thread started."""
    incoming = [m for m in mails if m.direction == _INCOMING]
    chosen = incoming[-1] if incoming else (mails[0] if mails else None)
    return chosen.folder if chosen and chosen.folder else "INBOX"


_ANSWER_COLUMNS = (
    MessageRow.id,
    MessageRow.thread_id,
    MessageRow.date,
    MessageRow.direction,
    MessageRow.from_addr,
    MessageRow.to_addrs,
    MessageRow.cc_addrs,
)


def _answers(
    db: Session, account: str, thread_ids: Iterable[str], wrote: Callable[[int, str], bool]
) -> tuple[dict[str, list[timedelta]], list[tuple[datetime, int, str]]]:
    """Per address, how long they took to answer the user's messages in these threads
    (in the order of their answers); and who wrote each human message received in them,
    as (date, key, sender), for those ``wrote(key, sender)`` keeps.

    A chunk of threads at a time, human mail only, as plain rows: the threads the
    counterparts ever answered in can hold a good part of a big mailbox.
    """
    answers: list[tuple[datetime, int, str, timedelta]] = []
    senders: list[tuple[datetime, int, str]] = []
    for part in in_chunks(sorted(thread_ids)):
        query = select(*_ANSWER_COLUMNS).where(
            MessageRow.account == account,
            MessageRow.thread_id.in_(part),
            MessageRow.kind == _HUMAN,
        )
        rows = sorted(db.execute(query), key=itemgetter(2, 0))  # date, store order
        waiting: dict[tuple[str | None, str], datetime] = {}
        for key, tid, date, direction, from_addr, to, cc in rows:
            if direction == _OUTGOING:
                for addr in f"{to} {cc}".split():
                    waiting.setdefault((tid, addr), date)
            elif direction == _INCOMING:
                sent = waiting.pop((tid, from_addr), None)
                if sent is not None:
                    answers.append((date, key, from_addr, date - sent))
                if wrote(key, from_addr):
                    senders.append((date, key, from_addr))
    answers.sort(key=itemgetter(0, 1))
    latencies: dict[str, list[timedelta]] = defaultdict(list)
    for _, _, address, took in answers:
        latencies[address].append(took)
    return latencies, senders


def _invoice(t: Tracking | None) -> Invoice | None:
    if t is None or not t.invoice_number or t.due is None:
        return None
    try:
        amount = Decimal(t.amount or "0")
    except InvalidOperation:
        amount = Decimal(0)
    return Invoice(
        number=t.invoice_number,
        amount=amount,
        currency=t.currency or "EUR",
        due=t.due,
        paid_at=t.paid_at,
        attachment=t.attachment,
    )


def gather(
    db: Session,
    account: AccountSettings,
    policy: PolicySettings,
    *,
    thread_ids: Collection[str] | None = None,
    awaiting_only: bool = True,
) -> list[ThreadFacts]:
    """ThreadFacts for the account's threads (those awaiting a reply by default)."""
    query = select(ThreadRow).where(ThreadRow.account == account.name)
    if thread_ids is not None:
        query = query.where(ThreadRow.thread_id.in_(list(thread_ids)))
    elif awaiting_only:
        query = query.where(ThreadRow.awaiting.is_(True))
    threads = list(db.scalars(query))
    if not threads:
        return []
    tracking = {
        t.thread_id: t for t in db.scalars(select(Tracking).where(Tracking.account == account.name))
    }
    log: dict[tuple[str, str], list[StepRecord]] = defaultdict(list)
    for s in db.scalars(select(StepLog).where(StepLog.account == account.name)):
        log[(s.thread_id, s.anchor)].append(StepRecord(s.step, s.at, s.outcome))

    # Only the mail these threads' facts depend on, not the whole mailbox: their own
    # messages; every thread their counterparts answered in (reply latencies); what
    # their clients wrote from (learned aliases); notices naming their invoices.
    verdicts = {row.thread_id: verdict_of(row) for row in threads}
    counterparts = sorted({a for v in verdicts.values() for a in v.counterparts})
    client_of_thread = {tid: policy.client_for(v.counterparts) for tid, v in verdicts.items()}
    clients = {c.name: c for c in client_of_thread.values() if c is not None}
    notices = policy.payment_notices
    invoices = sorted(
        {
            t.invoice_number
            for row in threads
            if (t := tracking.get(row.thread_id)) is not None and t.invoice_number
        }
    )
    # No DISTINCT and no "thread_id IS NOT NULL" here: either one leads SQLite to walk
    # the whole (account, thread_id) index instead of looking the senders up in
    # (account, from_addr), a second per query at a million messages.
    answered_in = {
        tid
        for part in in_chunks(counterparts)
        for tid in db.scalars(
            select(MessageRow.thread_id).where(
                MessageRow.account == account.name,
                MessageRow.from_addr.in_(part),
                MessageRow.direction == _INCOMING,
            )
        )
        if tid is not None
    }
    # Read whole: these threads' own mail, and (below) clients' and notices. The threads
    # the counterparts answered in are read lighter, by _answers.
    conditions: list[ColumnElement[bool]] = [
        MessageRow.thread_id.in_(part) for part in in_chunks(sorted(verdicts))
    ]
    # A sender at a client's domain: no index serves a suffix match, so every domain
    # goes into one scan of the senders rather than two each.
    domain_matches: list[ColumnElement[bool]] = []
    for relevant in clients.values():
        conditions += [MessageRow.from_addr.in_(part) for part in in_chunks(relevant.addresses)]
        for domain in relevant.domains:
            domain_matches += [
                MessageRow.from_addr.like(f"%@{domain}"),
                MessageRow.from_addr.like(f"%.{domain}"),
            ]
    # (In groups: SQLite nests each OR a level deeper, and caps the depth at 1000.)
    conditions += [or_(*part) for part in in_chunks(domain_matches, 200)]
    if notices.senders:
        conditions += [MessageRow.subject.contains(n, autoescape=True) for n in invoices]
    mails = _mails(db, account.name, *conditions)
    by_thread: dict[str, list[_Mail]] = defaultdict(list)
    for m in mails:
        if m.thread_id in verdicts:
            by_thread[m.thread_id].append(m)
    read = {m.key for m in mails}
    own = account.own_addresses()
    client_of = _ClientOf(policy)

    def from_client(key: int, sender: str) -> bool:
        return key not in read and sender not in own and client_of(sender) is not None

    latencies, more_senders = _answers(db, account.name, verdicts.keys() | answered_in, from_client)
    late = _late_payers(db, account.name, tracking.values(), policy)
    incoming = [m for m in mails if m.direction == _INCOMING]
    senders = [
        (m.date, m.key, m.from_addr)
        for m in incoming
        if m.kind == _HUMAN and m.from_addr not in own
    ]
    senders += more_senders
    senders.sort(key=itemgetter(0, 1))
    contacts = _client_contacts((sender for _, _, sender in senders), client_of)

    facts = []
    for row in threads:
        verdict = verdicts[row.thread_id]
        since = verdict.awaiting_since
        thread_mails = by_thread.get(row.thread_id, [])
        after = [m for m in thread_mails if since is not None and m.date >= since]
        client = client_of_thread[row.thread_id]
        known = dict.fromkeys(verdict.counterparts)
        last_from = None
        if client is not None:
            known.update(dict.fromkeys(client.addresses))
            seen, wrote_from = contacts.get(client.name, ([], None))
            known.update(dict.fromkeys(seen))
            if wrote_from and _same_person(wrote_from, verdict.counterparts, client.addresses):
                last_from = wrote_from
        t = tracking.get(row.thread_id)
        anchor = silence_anchor(verdict)
        payment_seen = None
        if t is not None and t.invoice_number and notices.senders:
            payment_seen = next(
                (
                    m.date
                    for m in incoming
                    if notices.matches(m.from_addr, m.subject, t.invoice_number)
                ),
                None,
            )
        days_late = tuple(
            d for tid, d in late.get(client.name if client else "", []) if tid != row.thread_id
        )
        facts.append(
            ThreadFacts(
                thread_id=row.thread_id,
                account=account.name,
                subject=row.subject,
                verdict=verdict,
                stage=t.stage if t else None,
                counterpart_last_wrote_from=last_from,
                auto_replies=tuple(
                    AutoReply(
                        at=m.date,
                        body=extract_text((m.auto_reply_text or "").encode("utf-8")),
                        subject=m.subject,
                    )
                    for m in after
                    if m.kind == _AUTO_REPLY
                ),
                bounced_addresses=tuple(
                    dict.fromkeys(a for m in after if m.kind == _BOUNCE for a in m.bounced_addrs)
                ),
                known_addresses=tuple(known),
                invoice=_invoice(t),
                stopped=t.stopped if t else None,
                steps_done=tuple(log.get((row.thread_id, anchor or ""), [])),
                snoozed_until=t.snoozed_until if t else None,
                reply_latencies=tuple(
                    d for a in verdict.counterparts for d in latencies.get(a, [])
                ),
                first_unanswered_at=verdict.first_unanswered_at,
                folder=_folder_of(thread_mails),
                payment_seen_at=payment_seen,
                days_late_history=days_late,
            )
        )
    return facts


def _late_payers(
    db: Session, account: str, tracked: Iterable[Tracking], policy: PolicySettings
) -> dict[str, list[tuple[str, int]]]:
    """Per client name: (thread id, days after the due date) of each paid invoice."""
    paid = {t.thread_id: t for t in tracked if t.paid_at is not None and t.due is not None}
    if not paid:
        return {}
    rows = db.execute(
        select(ThreadRow.thread_id, ThreadRow.counterparts, ThreadRow.counterpart).where(
            ThreadRow.account == account, ThreadRow.thread_id.in_(list(paid))
        )
    )
    out: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for tid, counterparts, counterpart in rows:
        client = policy.client_for((counterparts or counterpart or "").split())
        t = paid[tid]
        if client is not None and t.paid_at is not None and t.due is not None:
            out[client.name].append((tid, max((t.paid_at.date() - t.due).days, 0)))
    return out


def _same_person(addr: str, counterparts: tuple[str, ...], listed: list[str]) -> bool:
    """Whether ``addr`` is plausibly another address of the person we wrote to, not
    a colleague of theirs: it is on the client's own list of addresses, or shares
    the first word of its local part ("elena" in elena.bassi@...)."""
    if addr in listed and any(c in listed for c in counterparts):
        return True
    first = re.split(r"[._+-]", addr.partition("@")[0], maxsplit=1)[0]
    return any(
        re.split(r"[._+-]", c.partition("@")[0], maxsplit=1)[0] == first for c in counterparts
    )


class _ClientOf:
    """The name of the client an address belongs to (memoised), or None."""

    def __init__(self, policy: PolicySettings) -> None:
        self.policy = policy
        self.names: dict[str, str | None] = {}

    def __call__(self, address: str) -> str | None:
        if address not in self.names:
            client = self.policy.client_for([address])
            self.names[address] = client.name if client else None
        return self.names[address]


def _client_contacts(
    senders: Iterable[str], client_of: _ClientOf
) -> dict[str, tuple[list[str], str]]:
    """Per client name: the addresses they wrote from (learned aliases included), and
    the one they wrote from last. ``senders``: who wrote each human message received,
    oldest first (the user's own addresses left out)."""
    out: dict[str, tuple[list[str], str]] = {}
    for sender in senders:
        name = client_of(sender)
        if name is None:
            continue
        seen, _ = out.get(name, ([], ""))
        if sender not in seen:
            seen.append(sender)
        out[name] = (seen, sender)
    return out
