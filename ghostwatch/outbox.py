"""The outbox: every follow-up is written down before anything is sent.

One row per (account, thread, silence, step), enforced by a unique constraint: a
step cannot be queued twice. A row moves through

    queued -> approved -> sending -> sent | failed | uncertain
       \\-> cancelled / skipped (before sending)

and every move is a compare-and-set in the database (``UPDATE ... WHERE state IN
(...)``), so two processes, or a retry racing a crash, cannot both send. The row
is set to ``sending`` and committed *before* SMTP starts (durable before acting);
a process killed between ``sending`` and ``sent`` leaves it ``sending``, which
:func:`recover` turns into ``uncertain`` at the next start. An uncertain row is
never sent again on ghostwatch's own initiative: only the Sent folder or the user
can settle it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ghostwatch.errors import GhostwatchError
from ghostwatch.store import OutboxRow


class State(StrEnum):
    QUEUED = "queued"  # waiting for approval (mode "approve") or its time (mode "auto")
    APPROVED = "approved"  # may be sent when due
    SENDING = "sending"  # committed just before SMTP starts
    SENT = "sent"
    FAILED = "failed"  # refused for good (5xx, bad address): shown to the user
    UNCERTAIN = "uncertain"  # may or may not have gone out: never resent on its own
    CANCELLED = "cancelled"  # the client answered, or the user stopped the thread
    SKIPPED = "skipped"  # the user skipped this step


#: Which state may follow which. Nothing leaves sent, cancelled or skipped; an
#: uncertain or failed row goes back to approved only by the user's explicit word.
TRANSITIONS: dict[State, frozenset[State]] = {
    # Failed straight from queued or approved: the draft cannot be built any more
    # (its invoice file is gone, a header value is refused); nothing went out.
    State.QUEUED: frozenset({State.APPROVED, State.CANCELLED, State.SKIPPED, State.FAILED}),
    State.APPROVED: frozenset(
        {State.SENDING, State.QUEUED, State.CANCELLED, State.SKIPPED, State.FAILED}
    ),
    # Back to approved only when nothing went out (a 4xx, a refused connection).
    State.SENDING: frozenset({State.SENT, State.FAILED, State.UNCERTAIN, State.APPROVED}),
    State.UNCERTAIN: frozenset({State.SENT, State.APPROVED, State.CANCELLED}),
    State.FAILED: frozenset({State.APPROVED, State.CANCELLED}),
    State.SENT: frozenset(),
    State.CANCELLED: frozenset(),
    State.SKIPPED: frozenset(),
}
FINAL = frozenset(s for s, nexts in TRANSITIONS.items() if not nexts)


class OutboxError(GhostwatchError):
    """A move the outbox does not allow, or a row that is not where it was expected."""


def allowed(current: State, target: State) -> bool:
    """Whether ``target`` may follow ``current`` (pure)."""
    return target in TRANSITIONS[current]


@dataclass(frozen=True, slots=True)
class Draft:
    """A rendered follow-up, ready to be written down."""

    account: str
    thread_id: str
    anchor: str
    step: str
    mode: str
    to_addr: str
    subject: str
    message_id: str
    body_text: str
    due_at: datetime
    body_html: str | None = None
    attachment: str | None = None
    client: str = ""
    to_name: str = ""
    in_reply_to: str = ""
    references: str = ""  # space-separated Message-IDs, oldest first
    locale: str = "en"
    reason: str = ""


_TABLE = cast(Table, OutboxRow.__table__)


def enqueue(db: Session, draft: Draft, now: datetime) -> tuple[OutboxRow, bool]:
    """Write ``draft`` down as queued; (row, created). If that step of that silence is
    already in the outbox, whatever its state, the existing row comes back and
    nothing is added: a step is never queued twice."""
    existing = _find(db, draft)
    if existing is not None:
        return existing, False
    row = OutboxRow(
        account=draft.account,
        thread_id=draft.thread_id,
        anchor=draft.anchor,
        step=draft.step,
        state=State.QUEUED.value,
        mode=draft.mode,
        to_addr=draft.to_addr,
        subject=draft.subject,
        message_id=draft.message_id,
        body_text=draft.body_text,
        body_html=draft.body_html,
        attachment=draft.attachment,
        due_at=draft.due_at,
        client=draft.client,
        to_name=draft.to_name,
        in_reply_to=draft.in_reply_to,
        references=draft.references,
        locale=draft.locale,
        reason=draft.reason,
        created_at=now,
        updated_at=now,
        attempts=0,
    )
    try:
        with db.begin_nested():
            db.add(row)
    except IntegrityError:
        # Another process queued the same step between our look and our insert.
        found = _find(db, draft)
        if found is None:
            raise
        return found, False
    return row, True


def _find(db: Session, draft: Draft) -> OutboxRow | None:
    return db.scalars(
        select(OutboxRow).where(
            OutboxRow.account == draft.account,
            OutboxRow.thread_id == draft.thread_id,
            OutboxRow.anchor == draft.anchor,
            OutboxRow.step == draft.step,
        )
    ).one_or_none()


def move(
    db: Session,
    row_id: int,
    target: State,
    now: datetime,
    *,
    expect: State | frozenset[State],
    error: str | None = None,
    retry_at: datetime | None = None,
) -> None:
    """Compare-and-set: move row ``row_id`` to ``target`` only if it is in ``expect``.

    Raises :class:`OutboxError` when the move is not allowed or the row is not in
    the expected state (someone else moved it first). The caller commits.
    """
    expected = frozenset({expect}) if isinstance(expect, State) else expect
    for state in expected:
        if not allowed(state, target):
            raise OutboxError(f"outbox: {state.value} -> {target.value} is not allowed")
    values: dict[str, object] = {"state": target.value, "updated_at": now}
    if error is not None:
        values["last_error"] = error[:2000]
    # A retry time only means something for a row going back to wait.
    values["next_attempt_at"] = retry_at if target is State.APPROVED else None
    if target is State.SENDING:
        values["attempts"] = _TABLE.c.attempts + 1
    if target is State.SENT:
        values["sent_at"] = now
    result = db.execute(
        update(_TABLE)
        .where(_TABLE.c.id == row_id, _TABLE.c.state.in_([s.value for s in expected]))
        .values(**values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        current = db.scalar(select(OutboxRow.state).where(OutboxRow.id == row_id))
        raise OutboxError(
            f"outbox row {row_id} is {current or 'missing'}, not "
            f"{'/'.join(sorted(s.value for s in expected))}: not moved to {target.value}"
        )
    db.expire_all()


def claim(db: Session, row_id: int, now: datetime) -> None:
    """Approved -> sending, committed before any byte goes to the SMTP server."""
    move(db, row_id, State.SENDING, now, expect=State.APPROVED)
    db.commit()


def recover(db: Session, account: str, now: datetime) -> list[OutboxRow]:
    """At start: rows left ``sending`` by a crash become ``uncertain`` (they may have
    gone out). Returns them so the shell can look for their Message-ID in Sent."""
    stuck = list(
        db.scalars(
            select(OutboxRow).where(
                OutboxRow.account == account, OutboxRow.state == State.SENDING.value
            )
        )
    )
    for row in stuck:
        move(db, row.id, State.UNCERTAIN, now, expect=State.SENDING,
             error="interrupted while sending; not resent until settled")  # fmt: skip
    db.commit()
    return stuck


def snooze(db: Session, row_id: int, until: datetime, now: datetime) -> None:
    """Put a waiting draft back until ``until``: it waits for approval again (an
    approved one goes back to queued) and comes back in the digest then. The caller
    commits; raises :class:`OutboxError` for a row that is not waiting."""
    row = db.get(OutboxRow, row_id)
    if row is None or row.state not in (State.QUEUED.value, State.APPROVED.value):
        state = row.state if row is not None else "missing"
        raise OutboxError(f"outbox row #{row_id} is {state}: only a waiting draft snoozes")
    if row.state == State.APPROVED.value:
        move(db, row_id, State.QUEUED, now, expect=State.APPROVED)
        row = db.get(OutboxRow, row_id)
        assert row is not None  # noqa: S101 - moved just above
    row.due_at = until
