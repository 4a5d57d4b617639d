"""Gmail's thread ids join threads that headers alone would keep apart."""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch.analyze import _unite_gmail_threads, analyze_account
from ghostwatch.config import AccountSettings
from ghostwatch.localsource import ingest
from ghostwatch.store import MessageRow, StepLog, Tracking, open_store
from mailbuilder import make_mail

ME = "alice@studio.example"
ACCOUNT = AccountSettings.model_validate(
    {"name": "t", "address": ME,
     "imap": {"host": "localhost", "username": ME, "password_env": "UNUSED"}}
)  # fmt: skip
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def test_messages_sharing_an_x_gm_thrid_end_in_one_thread() -> None:
    assigned = {1: "ta", 2: "tb", 3: "tc", 4: "td"}
    _unite_gmail_threads({1: 77, 2: 77, 3: 88}, assigned)
    assert assigned[1] == assigned[2] == "ta"
    assert assigned[3] == "tc"
    assert assigned[4] == "td"


def test_chains_of_merges_resolve_to_one_name() -> None:
    assigned = {1: "tc", 2: "tb", 3: "tb", 4: "ta"}
    _unite_gmail_threads({1: 1, 2: 1, 3: 2, 4: 2}, assigned)
    assert set(assigned.values()) == {"ta"}


def test_a_thread_sharing_two_gm_thrids_joins_both_groups() -> None:
    # tx shares X-GM-THRID 1 with ta and 2 with tb: all four messages are one thread.
    assigned = {1: "tx", 2: "ta", 3: "tx", 4: "tb"}
    _unite_gmail_threads({1: 1, 2: 1, 3: 2, 4: 2}, assigned)
    assert set(assigned.values()) == {"ta"}


def _ingest(path: Path, raws: list[bytes], sessions: sessionmaker[Session]) -> None:
    box = mailbox.mbox(path)
    for raw in raws:
        box.add(raw)
    box.flush()
    ingest(path, ACCOUNT, sessions, NOW)
    analyze_account(sessions, ACCOUNT, NOW)


def _thread_of(sessions: sessionmaker[Session], msgid: str) -> str:
    with sessions() as db:
        tid = db.scalar(select(MessageRow.thread_id).where(MessageRow.message_id == msgid))
    assert tid is not None
    return tid


def test_a_stop_and_the_steps_done_follow_a_thread_that_is_renamed(tmp_path: Path) -> None:
    """The client's "Re: Offer" (no references) is a thread of its own until our
    original "Offer" is synced later: the threads merge under a new id. The user's
    stop and the step already taken must come along, or the client would be chased."""
    sessions = open_store(f"sqlite:///{tmp_path / 'gw.db'}")
    reply = make_mail(frm="bob@client.example", to=ME, subject="Re: Offer", msgid="<r@c>",
                      date=NOW - timedelta(days=3))  # fmt: skip
    _ingest(tmp_path / "inbox.mbox", [reply], sessions)
    before = _thread_of(sessions, "<r@c>")
    with sessions() as db:
        db.add(Tracking(account="t", thread_id=before, stopped="stopped by you", updated_at=NOW))
        db.add(StepLog(account="t", thread_id=before, anchor="a", step="nudge", outcome="sent",
                       at=NOW - timedelta(days=1)))  # fmt: skip
        db.commit()
    original = make_mail(frm=ME, to="bob@client.example", subject="Offer", msgid="<o@me>",
                         date=NOW - timedelta(days=9))  # fmt: skip
    _ingest(tmp_path / "sent.mbox", [original], sessions)
    after = _thread_of(sessions, "<r@c>")
    assert after == _thread_of(sessions, "<o@me>")
    assert after != before
    with sessions() as db:
        moved = db.get(Tracking, ("t", after))
        assert moved is not None
        assert moved.stopped == "stopped by you"
        assert db.get(Tracking, ("t", before)) is None
        steps = list(db.scalars(select(StepLog.thread_id).where(StepLog.step == "nudge")))
    assert steps == [after]


def test_thread_ids_are_kept_as_numbers_and_read_back_as_they_were() -> None:
    from ghostwatch.analyze import _ThreadNumbers

    numbers = _ThreadNumbers()
    assert numbers.number(None) == -1
    ordinary = numbers.number("t0123456789ab")
    assert ordinary == 0x0123456789AB
    assert numbers.name(ordinary) == "t0123456789ab"
    # Anything threading did not write (an older version's id) round-trips too.
    for odd in ("legacy-7", "T0123456789AB", "t+0123456789a", "t0123456789abc"):
        assert numbers.name(numbers.number(odd)) == odd
    assert numbers.number("legacy-7") == numbers.number("legacy-7") < -1
