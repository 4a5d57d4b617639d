"""The store on both backends: SQLite (default) and PostgreSQL (by URL)."""

from __future__ import annotations

import itertools
import mailbox
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from sqlalchemy import Table, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch import analyze
from ghostwatch.analyze import analyze_account, analyze_changes
from ghostwatch.demo import DEMO_ACCOUNT, DEMO_NOW, SAMPLE, demo_policy
from ghostwatch.errors import StoreError
from ghostwatch.gather import gather
from ghostwatch.localsource import ingest
from ghostwatch.store import (
    Folder,
    MessageRow,
    ThreadRow,
    current_revision,
    head_revision,
    insert_plain,
    make_engine,
    open_store,
)

_seq = itertools.count()


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    factory = open_store(db_url)
    yield factory
    factory.kw["bind"].dispose()


def _row(folder_id: int, uid: int, when: datetime) -> MessageRow:
    return MessageRow(
        account="a",
        folder_id=folder_id,
        uid=uid,
        message_id=f"<{uid}@x>",
        date=when,
        internal_date=when,
        direction="in",
        kind="human",
    )


def test_open_store_migrates_to_the_latest_revision(db_url: str) -> None:
    open_store(db_url).kw["bind"].dispose()
    engine = make_engine(db_url)
    assert current_revision(engine) == head_revision()
    # Migrating again is a no-op, not an error.
    open_store(db_url).kw["bind"].dispose()
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_dates_come_back_aware_and_in_utc(sessions: sessionmaker[Session]) -> None:
    rome = timezone(timedelta(hours=1))
    when = datetime(2026, 11, 20, 10, 0, tzinfo=rome)
    with sessions() as db:
        folder = Folder(account="a", name="INBOX", role="inbox", last_uid=0)
        db.add(folder)
        db.flush()
        db.add(_row(folder.id, 1, when))
        db.commit()
    with sessions() as db:
        stored = db.scalars(select(MessageRow)).one()
    assert stored.date == when
    assert stored.date.utcoffset() == timedelta(0)


def test_one_row_per_folder_and_uid(sessions: sessionmaker[Session]) -> None:
    when = datetime(2026, 11, 20, tzinfo=UTC)
    with sessions() as db:
        folder = Folder(account="a", name="INBOX", role="inbox", last_uid=0)
        db.add(folder)
        db.flush()
        db.add(_row(folder.id, 7, when))
        db.commit()
        db.add(_row(folder.id, 7, when))
        with pytest.raises(IntegrityError):
            db.commit()


def test_gather_reads_the_same_facts_on_both_backends(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    # gather's queries (sender lookups, OR-ed domain matches, answered threads read in
    # batches) must mean the same to PostgreSQL as to SQLite.
    reference = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
    found = []
    for store in (sessions, reference):
        ingest(SAMPLE, DEMO_ACCOUNT, store, DEMO_NOW)
        analyze_account(store, DEMO_ACCOUNT, DEMO_NOW)
        with store() as db:
            found.append(gather(db, DEMO_ACCOUNT, demo_policy(), awaiting_only=False))
    facts, expected = found
    assert facts == expected
    assert len(facts) == 19
    assert any(f.reply_latencies for f in facts)
    assert any(len(f.known_addresses) > len(f.verdict.counterparts) for f in facts)


def test_the_sample_mailbox_is_judged_the_same_on_both_backends(
    sessions: sessionmaker[Session],
) -> None:
    assert ingest(SAMPLE, DEMO_ACCOUNT, sessions, DEMO_NOW) == 40
    assert ingest(SAMPLE, DEMO_ACCOUNT, sessions, DEMO_NOW) == 0  # re-ingest adds nothing
    analysis = analyze_account(sessions, DEMO_ACCOUNT, DEMO_NOW)
    with sessions() as db:
        rows = db.scalars(select(ThreadRow.counterpart).where(ThreadRow.awaiting))
        awaiting = sorted(c or "" for c in rows)  # a missing counterpart fails below
    assert analysis.threads == 19
    assert awaiting == [
        "amministrazione@verdi-costruzioni.example",
        "luca.ferri@ferri-arredamenti.example",
        "mark@northwind.example",
        "priya@oldco.example",
        "tom@baker-bikes.example",
    ]


def test_a_bad_database_url_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        make_engine("no-such-thing://")


def _judged_state(sessions: sessionmaker[Session]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    with sessions() as db:
        threads = sorted(db.execute(select(MessageRow.message_id, MessageRow.thread_id)).all())
        verdicts = sorted(
            (r.thread_id, r.state, r.awaiting, r.awaiting_since, r.counterpart, r.notes,
             r.message_count, r.subject_key)
            for r in db.scalars(select(ThreadRow))
        )  # fmt: skip
    return tuple(threads), tuple(verdicts)


def test_analysing_only_the_new_mail_matches_a_full_analysis_on_both_backends(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """The sample mailbox arrives in two parts; after the second, the incremental
    analysis (mentions index, subject keys, latest word per sender: queries that
    differ between SQLite and PostgreSQL) leaves what a full analysis leaves."""
    box = mailbox.mbox(SAMPLE)
    messages = [box.get_bytes(key) for key in box.iterkeys()]
    for name, part in (("first.mbox", messages[:22]), ("second.mbox", messages[22:])):
        target = mailbox.mbox(tmp_path / name)
        for raw in part:
            target.add(raw)
        target.flush()
        ingest(tmp_path / name, DEMO_ACCOUNT, sessions, DEMO_NOW)
        judged = analyze_changes(sessions, DEMO_ACCOUNT, DEMO_NOW)
        assert judged > 0
    incremental = _judged_state(sessions)
    analyze_account(sessions, DEMO_ACCOUNT, DEMO_NOW)
    assert _judged_state(sessions) == incremental
    # The analysis of a mailbox too big to hold (ids numbered by the database, threads
    # judged as read back) leaves the same again.
    with patch.object(analyze, "IN_MEMORY_LIMIT", -1):
        analyze_account(sessions, DEMO_ACCOUNT, DEMO_NOW)
    assert _judged_state(sessions) == incremental
    assert len(incremental[1]) == 19


def test_insert_plain_stores_what_sqlalchemy_stores(sessions: sessionmaker[Session]) -> None:
    # The sync and the analysis insert straight to the driver: every value must be
    # stored as an executemany through SQLAlchemy would store it (datetimes in UTC, in
    # the backend's format; booleans; NULLs), on both backends.
    table = ThreadRow.__table__
    assert isinstance(table, Table)
    rome = timezone(timedelta(hours=1))
    base = {
        "account": "a", "subject": "Quote", "state": "awaiting_reply", "awaiting": True,
        "awaiting_since": datetime(2026, 11, 20, 10, 30, 15, 123456, tzinfo=rome),
        "counterpart": "bob@client.example", "last_outgoing_message_id": "<1@x>",
        "last_activity": datetime(2026, 11, 21, 9, tzinfo=UTC), "message_count": 3,
        "notes": "one\ntwo", "updated_at": datetime(2026, 11, 22, tzinfo=UTC),
        "counterparts": "bob@client.example", "first_unanswered_at": None,
        "subject_key": None,
    }  # fmt: skip
    with sessions() as db:
        db.execute(insert(table), [{**base, "thread_id": "core"}])
        insert_plain(db.connection(), table, [{**base, "thread_id": "plain"}])
        db.commit()
        # Raw values, as the driver hands them back: no type conversion on the way.
        rows = db.execute(text("SELECT * FROM threads ORDER BY thread_id")).mappings().all()
        stored = {r["thread_id"]: {k: v for k, v in r.items() if k != "thread_id"} for r in rows}
        assert set(stored) == {"core", "plain"}
        assert stored["plain"] == stored["core"]
        loaded = db.scalars(select(ThreadRow).where(ThreadRow.thread_id == "plain")).one()
        assert loaded.awaiting_since == base["awaiting_since"]
        assert loaded.awaiting is True and loaded.first_unanswered_at is None
        with pytest.raises(ValueError, match="rows lack subject"):
            insert_plain(db.connection(), table, [{"account": "a", "thread_id": "x"}])
        with pytest.raises(ValueError, match="different columns"):
            insert_plain(
                db.connection(),
                table,
                [{**base, "thread_id": "p2"}, {**base, "thread_id": "p3", "extra": 1}],
            )
