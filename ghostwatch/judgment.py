"""Who owes whom a reply: pure judgment over threads, with ``now`` passed in.

A thread awaits a reply when its last human message is from the user to someone
outside, and no later human message from any counterpart exists. A reply from
another address of the same person or from a colleague at their domain counts as
an answer; an auto-reply, a bounce or a newsletter does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from ghostwatch.classify import Kind
from ghostwatch.message import Direction

# Providers whose domain says nothing about the organisation behind an address: a
# message from someone@gmail.com is not "a colleague at the client's domain".
FREEMAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.it",
        "live.com", "live.it", "msn.com", "yahoo.com", "yahoo.it", "ymail.com",
        "icloud.com", "me.com", "mac.com", "aol.com", "gmx.com", "gmx.de", "gmx.net",
        "web.de", "proton.me", "protonmail.com", "pm.me", "fastmail.com", "zoho.com",
        "libero.it", "virgilio.it", "tin.it", "alice.it", "tim.it", "tiscali.it",
        "email.it", "inwind.it", "fastwebnet.it", "aruba.it", "pec.it", "legalmail.it",
        "yandex.com", "mail.ru", "qq.com", "163.com", "orange.fr", "free.fr", "laposte.net",
        "t-online.de", "btinternet.com", "comcast.net", "mail.com",
    }
)  # fmt: skip


class ThreadState(StrEnum):
    AWAITING_REPLY = "awaiting_reply"
    ANSWERED = "answered"
    ANSWERED_ELSEWHERE = "answered_elsewhere"  # the counterpart wrote in another thread
    OWED_BY_USER = "owed_by_user"  # the last human word is theirs: the user owes a reply
    INTERNAL = "internal"  # only the user's own colleagues involved
    AUTOMATED_ONLY = "automated_only"  # newsletters, notifications, bounces alone
    NOTE_TO_SELF = "note_to_self"


@dataclass(frozen=True, slots=True)
class Msg:
    """The judgment's view of one message."""

    message_id: str | None
    date: datetime
    direction: Direction
    kind: Kind
    from_addr: str
    to_addrs: tuple[str, ...] = ()
    cc_addrs: tuple[str, ...] = ()
    subject: str = ""
    bounced_addrs: tuple[str, ...] = ()
    bounced_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who "the user" is: their addresses and their own organisation's domains."""

    addresses: frozenset[str]
    colleague_domains: frozenset[str] = frozenset()

    def is_own(self, addr: str) -> bool:
        return addr in self.addresses

    def is_colleague(self, addr: str) -> bool:
        return domain_of(addr) in self.colleague_domains

    def is_external(self, addr: str) -> bool:
        return not self.is_own(addr) and not self.is_colleague(addr)


@dataclass(frozen=True, slots=True)
class Verdict:
    state: ThreadState
    subject: str
    last_activity: datetime
    message_count: int
    awaiting_since: datetime | None = None
    counterpart: str | None = None
    counterparts: tuple[str, ...] = ()
    last_outgoing_message_id: str | None = None
    notes: tuple[str, ...] = field(default=())
    #: The user's first message of the current silence (before any follow-up).
    first_unanswered_at: datetime | None = None

    @property
    def awaiting(self) -> bool:
        return self.state is ThreadState.AWAITING_REPLY


def domain_of(addr: str) -> str:
    return addr.rpartition("@")[2].lower()


def org_domain(addr: str) -> str | None:
    """The organisation domain of an address, or None for free-mail providers."""
    domain = domain_of(addr)
    return None if domain in FREEMAIL_DOMAINS or not domain else domain


def _fmt(when: datetime) -> str:
    return when.strftime("%Y-%m-%d")


def _dedupe(messages: Iterable[Msg]) -> list[Msg]:
    """One entry per Message-ID (the same message may sit in INBOX and Sent)."""
    seen: dict[str, Msg] = {}
    anonymous: list[Msg] = []
    for m in messages:
        if m.message_id is None:
            anonymous.append(m)
        elif m.message_id not in seen or m.direction is Direction.OUTGOING:
            seen[m.message_id] = m
    return sorted([*seen.values(), *anonymous], key=lambda m: (m.date, m.message_id or ""))


def _answers(m: Msg, identity: Identity) -> bool:
    """A human message from anyone outside the user's organisation answers."""
    return (
        m.kind is Kind.HUMAN
        and m.direction is Direction.INCOMING
        and identity.is_external(m.from_addr)
    )


def _list_answer(m: Msg, recipients: set[str]) -> bool:
    """A counterpart answering through a mailing list (a Google Group, say) carries
    List-Id and looks like bulk mail; in the thread, from them, it is an answer."""
    # Only the exact address we wrote to: a newsletter from their domain is not them.
    return m.kind is Kind.BULK and m.direction is Direction.INCOMING and m.from_addr in recipients


def judge_thread(messages: Sequence[Msg], identity: Identity, now: datetime) -> Verdict:
    """Judge one thread as of ``now``; messages dated after ``now`` are not seen yet."""
    msgs = [m for m in _dedupe(messages) if m.date <= now]
    if not msgs:
        # Every message is in the future (a replay clock, or a wrong Date header).
        first = min(messages, key=lambda m: m.date)
        return Verdict(ThreadState.AUTOMATED_ONLY, first.subject, first.date, 0)
    last = msgs[-1]
    # The thread is named after what the user wrote, not after an auto-reply to it.
    subject = next(
        (m.subject for m in msgs if m.subject and m.kind is Kind.HUMAN),
        next((m.subject for m in msgs if m.subject), ""),
    )
    base = {"subject": subject, "last_activity": last.date, "message_count": len(msgs)}

    human = [m for m in msgs if m.kind is Kind.HUMAN and m.direction is not Direction.SELF]
    if not human:
        only_self = all(m.direction is Direction.SELF for m in msgs)
        state = ThreadState.NOTE_TO_SELF if only_self else ThreadState.AUTOMATED_ONLY
        return Verdict(state, **base)  # type: ignore[arg-type]

    outgoing = [
        m
        for m in human
        if m.direction is Direction.OUTGOING
        and any(identity.is_external(a) for a in (*m.to_addrs, *m.cc_addrs))
    ]
    if not outgoing:
        if any(_answers(m, identity) for m in human):
            return Verdict(ThreadState.OWED_BY_USER, **base)  # type: ignore[arg-type]
        return Verdict(ThreadState.INTERNAL, **base)  # type: ignore[arg-type]

    last_out = outgoing[-1]
    after = [m for m in msgs if m.date >= last_out.date and m is not last_out]
    recipients = {a for a in (*last_out.to_addrs, *last_out.cc_addrs) if identity.is_external(a)}
    answer = next((m for m in after if _answers(m, identity) or _list_answer(m, recipients)), None)
    if answer is not None:
        note = f"answered by {answer.from_addr} on {_fmt(answer.date)}"
        return Verdict(ThreadState.ANSWERED, notes=(note,), **base)  # type: ignore[arg-type]

    external = tuple(
        dict.fromkeys(
            a for a in (*last_out.to_addrs, *last_out.cc_addrs) if identity.is_external(a)
        )
    )
    notes = []
    for m in after:
        if m.kind is Kind.AUTO_REPLY:
            notes.append(f"auto-reply from {m.from_addr} on {_fmt(m.date)} (not an answer)")
        elif m.kind is Kind.BOUNCE:
            failed = ", ".join(m.bounced_addrs) or "unknown address"
            notes.append(f"bounce on {_fmt(m.date)}: {failed} (not an answer)")
        elif m.kind is Kind.BULK:
            notes.append(f"automated mail from {m.from_addr} on {_fmt(m.date)} (ignored)")
    answered_before = [m.date for m in human if m.date <= last_out.date and _answers(m, identity)]
    silence_start = max(answered_before, default=None)
    first_out = next(
        (m for m in outgoing if silence_start is None or m.date > silence_start), last_out
    )
    return Verdict(
        ThreadState.AWAITING_REPLY,
        first_unanswered_at=first_out.date,
        awaiting_since=last_out.date,
        counterpart=external[0],
        counterparts=external,
        last_outgoing_message_id=last_out.message_id,
        notes=tuple(notes),
        **base,  # type: ignore[arg-type]
    )


def latest_human_contact(
    threads: Mapping[str, Sequence[Msg]], identity: Identity
) -> dict[str, tuple[datetime, str]]:
    """Latest human incoming message per sender address: (date, thread id)."""
    latest: dict[str, tuple[datetime, str]] = {}
    for thread_id, msgs in threads.items():
        for m in msgs:
            # Ties on the date go to the greater thread id, whatever the input order.
            if _answers(m, identity) and (
                m.from_addr not in latest or latest[m.from_addr] < (m.date, thread_id)
            ):
                latest[m.from_addr] = (m.date, thread_id)
    return latest


#: Latest human contact for the given addresses, over the whole account.
ContactLookup = Callable[[set[str]], Mapping[str, tuple[datetime, str]]]


def judge_all(
    threads: Mapping[str, Sequence[Msg]],
    identity: Identity,
    now: datetime,
    *,
    contacts: ContactLookup | None = None,
) -> dict[str, Verdict]:
    """Judge every thread; a counterpart who wrote since in another thread has answered.

    Being quiet in one thread while writing in another is not ghosting: the safe
    reading is that they are in touch, so the thread is not chased and says why.
    Only the very address we wrote to counts here: a colleague of theirs writing
    about another project answers nothing of ours.

    ``threads`` is every thread of the account, unless ``contacts`` is given: then it
    answers (from the store) who wrote last in the whole account, and ``threads`` may
    be just the ones to judge again.
    """
    judged = {tid: judge_thread(msgs, identity, now) for tid, msgs in threads.items()}
    if contacts is None:
        visible = {tid: [m for m in msgs if m.date <= now] for tid, msgs in threads.items()}
        latest = latest_human_contact(visible, identity)
    else:
        wanted = {a for v in judged.values() if v.awaiting for a in v.counterparts}
        latest = dict(contacts(wanted)) if wanted else {}
    out: dict[str, Verdict] = {}
    for thread_id, judged_verdict in judged.items():
        verdict = judged_verdict
        since = verdict.awaiting_since
        if verdict.awaiting and since is not None:
            hit = next(
                (
                    (addr, latest[addr])
                    for addr in verdict.counterparts
                    if addr in latest and latest[addr][1] != thread_id and latest[addr][0] > since
                ),
                None,
            )
            if hit is not None:
                addr, (when, other) = hit
                verdict = replace(
                    verdict,
                    state=ThreadState.ANSWERED_ELSEWHERE,
                    awaiting_since=None,
                    notes=(
                        *verdict.notes,
                        f"{addr} wrote on {_fmt(when)} in another thread ({other})",
                    ),
                )
        out[thread_id] = verdict
    return out
