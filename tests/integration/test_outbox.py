"""The outbox keeps every follow-up to one send, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch.outbox import (
    FINAL,
    TRANSITIONS,
    Draft,
    OutboxError,
    State,
    allowed,
    claim,
    enqueue,
    move,
    recover,
)
from ghostwatch.store import OutboxRow, open_store

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    factory = open_store(db_url)
    yield factory
    factory.kw["bind"].dispose()


def draft(step: str = "nudge", msgid: str = "<f1@studio.example>") -> Draft:
    return Draft(
        account="work", thread_id="t1", anchor="2026-11-17T10:00:00+00:00", step=step,
        mode="approve", to_addr="bob@client.example", subject="Re: Offer", message_id=msgid,
        body_text="Hello Bob", due_at=NOW,
    )  # fmt: skip


def test_a_step_is_queued_once_whatever_is_asked(sessions: sessionmaker[Session]) -> None:
    with sessions() as db:
        row, created = enqueue(db, draft(), NOW)
        db.commit()
        again, created_again = enqueue(db, draft(msgid="<other@studio.example>"), NOW)
        db.commit()
        assert created
        assert not created_again
        assert again.id == row.id
        assert db.scalar(select(func.count()).select_from(OutboxRow)) == 1


def test_the_database_itself_refuses_a_second_row_for_the_same_step(
    sessions: sessionmaker[Session],
) -> None:
    """Even code that skips enqueue() cannot write a duplicate: the constraint holds."""
    with sessions() as db:
        enqueue(db, draft(), NOW)
        db.commit()
    with sessions() as db:
        db.add(
            OutboxRow(account="work", thread_id="t1", anchor="2026-11-17T10:00:00+00:00",
                      step="nudge", state="queued", mode="approve", to_addr="x@y.example",
                      subject="s", message_id="<dup@studio.example>", body_text="b",
                      due_at=NOW, created_at=NOW, updated_at=NOW, attempts=0)
        )  # fmt: skip
        with pytest.raises(IntegrityError):
            db.commit()


def test_a_claim_wins_once(sessions: sessionmaker[Session]) -> None:
    """Two senders (a retry racing another process) claim the same row: one wins."""
    with sessions() as db:
        row, _ = enqueue(db, draft(), NOW)
        move(db, row.id, State.APPROVED, NOW, expect=State.QUEUED)
        db.commit()
        row_id = row.id
    with sessions() as first, sessions() as second:
        claim(first, row_id, NOW)
        with pytest.raises(OutboxError, match="is sending, not approved"):
            claim(second, row_id, NOW)
    with sessions() as db:
        stored = db.get(OutboxRow, row_id)
        assert stored is not None
        assert stored.state == "sending"
        assert stored.attempts == 1


def test_a_crash_while_sending_leaves_it_uncertain_and_never_resent(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as db:
        row, _ = enqueue(db, draft(), NOW)
        move(db, row.id, State.APPROVED, NOW, expect=State.QUEUED)
        db.commit()
        claim(db, row.id, NOW)
        row_id = row.id
    # ...the process dies here; at the next start:
    with sessions() as db:
        stuck = recover(db, "work", NOW + timedelta(minutes=5))
        assert [r.id for r in stuck] == [row_id]
        stored = db.get(OutboxRow, row_id)
        assert stored is not None
        assert stored.state == "uncertain"
        with pytest.raises(OutboxError):
            claim(db, row_id, NOW)


def test_sent_is_final_and_records_when(sessions: sessionmaker[Session]) -> None:
    with sessions() as db:
        row, _ = enqueue(db, draft(), NOW)
        move(db, row.id, State.APPROVED, NOW, expect=State.QUEUED)
        claim(db, row.id, NOW)
        move(db, row.id, State.SENT, NOW, expect=State.SENDING)
        db.commit()
        stored = db.get(OutboxRow, row.id)
        assert stored is not None
        assert stored.sent_at == NOW
        for target in State:
            with pytest.raises(OutboxError):
                move(db, row.id, target, NOW, expect=State.SENT)


@pytest.mark.parametrize(
    ("current", "target", "ok"),
    [
        (State.QUEUED, State.SENDING, False),
        (State.APPROVED, State.SENDING, True),
        (State.SENDING, State.APPROVED, True),
        (State.SENDING, State.QUEUED, False),
        (State.UNCERTAIN, State.SENDING, False),
        (State.UNCERTAIN, State.SENT, True),
        (State.FAILED, State.SENDING, False),
        (State.CANCELLED, State.APPROVED, False),
    ],
    ids=[
        "unapproved-never-sends",
        "approved-may-send",
        "nothing-went-out-back-to-approved",
        "sending-cannot-requeue",
        "uncertain-is-never-resent-directly",
        "uncertain-settled-as-sent",
        "failed-needs-reapproval",
        "cancelled-is-final",
    ],
)
def test_transitions(current: State, target: State, ok: bool) -> None:
    assert allowed(current, target) is ok


def test_only_sent_cancelled_and_skipped_are_final() -> None:
    assert {State.SENT, State.CANCELLED, State.SKIPPED} == FINAL
    assert all(State.SENDING not in TRANSITIONS[s] for s in State if s is not State.APPROVED)
