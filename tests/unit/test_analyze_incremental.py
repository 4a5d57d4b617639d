"""Re-threading only what new mail can affect gives exactly what re-threading the whole
account gives: the same thread of every message and the same stored verdicts.

Random mailboxes arrive in random batches; after each batch one store runs
``analyze_changes`` and the other, at the end, one full ``analyze_account``.
"""

from __future__ import annotations

import itertools
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch import analyze
from ghostwatch.analyze import analyze_account, analyze_changes
from ghostwatch.config import AccountSettings
from ghostwatch.store import Folder, Mention, MessageRow, ThreadRow, open_store
from ghostwatch.sync import insert_rows

ME = "alice@studio.example"
ACCOUNT = AccountSettings.model_validate(
    {"name": "t", "address": ME, "colleague_domains": ["studio.example"],
     "imap": {"host": "localhost", "username": ME, "password_env": "UNUSED"}}
)  # fmt: skip
START = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
PEOPLE = ["bob@client.example", "carol@client.example", "dan@other.example", "eve@studio.example"]
SUBJECTS = ["Offer", "Re: Offer", "Invoice 12", "RE: Invoice 12", "hello", "Fwd: Logo", "Logo"]
IDS = [f"<m{i}@x>" for i in range(14)]
KINDS = ["human", "human", "human", "auto_reply", "bounce", "bulk"]


@st.composite
def message(draw: st.DrawFn, *, orphans: bool = False, gmail: bool = False) -> dict[str, Any]:
    outgoing = draw(st.booleans())
    other = draw(st.sampled_from(PEOPLE))
    # Orphan-heavy mailboxes (few References) exercise the subject fallback.
    refs = [] if orphans else draw(st.lists(st.sampled_from(IDS), max_size=3))
    no_link = st.none() if orphans else st.one_of(st.none(), st.sampled_from(IDS))
    # Mostly in the past; now and then a date still ahead of the clock (hidden for now).
    minutes = draw(st.integers(min_value=0, max_value=60 * 24 * 40))
    return {
        "message_id": draw(st.one_of(st.none(), st.sampled_from(IDS))),
        "in_reply_to": draw(no_link),
        "references": " ".join(refs),
        "subject": draw(st.sampled_from(SUBJECTS)),
        "from_addr": ME if outgoing else other,
        "to_addrs": other if outgoing else ME,
        "direction": "out" if outgoing else "in",
        "kind": "human" if outgoing else draw(st.sampled_from(KINDS)),
        "date": START + timedelta(minutes=minutes),
        # Gmail's X-GM-THRID (on every message of a Gmail account), from a small pool:
        # it joins threads nothing else links.
        "gm_thrid": draw(st.integers(1, 4)) if gmail else None,
    }


@st.composite
def mailbox_in_batches(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    kind = message(orphans=draw(st.booleans()), gmail=draw(st.booleans()))
    messages = draw(st.lists(kind, min_size=1, max_size=24))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(messages) - 1)), max_size=5)))
    bounds = [0, *cuts, len(messages)]
    return [messages[a:b] for a, b in itertools.pairwise(bounds) if a < b]


def _row(folder_id: int, uid: int, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "account": "t", "folder_id": folder_id, "uid": uid, "cc_addrs": "", "reply_to": "",
        "from_name": "", "internal_date": spec["date"], "size": 1, "reasons": "",
        "content_type": "text/plain", "problems": "", "gm_msgid": None, "gm_thrid": None,
        "bounced_addrs": "", "bounced_message_id": None, "auto_reply_text": None,
        "thread_id": None, **spec,
    }  # fmt: skip


class Store:
    def __init__(self, path: Path, template: Path | None = None) -> None:
        for leftover in path.parent.glob(path.name + "*"):  # and its -wal, -shm
            leftover.unlink()
        if template is not None:  # an empty store already migrated: copying it is quick
            shutil.copyfile(template, path)
        self.sessions: sessionmaker[Session] = open_store(f"sqlite:///{path}", migrate=False)
        if template is None:
            self.sessions = open_store(f"sqlite:///{path}")
        with self.sessions() as db:
            folder = Folder(account="t", name="INBOX", role="inbox", last_uid=0)
            db.add(folder)
            db.commit()
            self.folder_id = folder.id
        self.uid = 0

    def add(self, specs: list[dict[str, Any]]) -> None:
        rows = []
        for spec in specs:
            self.uid += 1
            rows.append(_row(self.folder_id, self.uid, spec))
        with self.sessions() as db:
            insert_rows(db, rows)
            db.commit()

    def state(self) -> tuple[dict[int, str | None], set[tuple[Any, ...]]]:
        with self.sessions() as db:
            threads: dict[int, str | None] = {
                r.id: r.thread_id for r in db.execute(select(MessageRow.id, MessageRow.thread_id))
            }
            verdicts = {
                (r.thread_id, r.subject, r.state, r.awaiting, r.awaiting_since, r.counterpart,
                 r.last_outgoing_message_id, r.last_activity, r.message_count, r.notes,
                 r.counterparts, r.first_unanswered_at, r.subject_key)
                for r in db.scalars(select(ThreadRow))
            }  # fmt: skip
        return threads, verdicts


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "empty.db"
    open_store(f"sqlite:///{path}").kw["bind"].dispose()
    return path


@pytest.fixture
def stores(tmp_path: Path, template: Path) -> tuple[Path, Path, Path]:
    return tmp_path / "incremental.db", tmp_path / "full.db", template


def _gmail_mail(msgid: str | None, frm: str, to: str, subject: str, thrid: int) -> dict[str, Any]:
    return {"message_id": msgid, "in_reply_to": None, "references": "", "subject": subject,
            "from_addr": frm, "to_addrs": to, "direction": "out" if frm == ME else "in",
            "kind": "human", "date": START, "gm_thrid": thrid}  # fmt: skip


BOB = "bob@client.example"


@example(  # Gmail joined "RE: Invoice 12" to an "Offer" thread; "Invoice 12" comes later
    batches=[
        [_gmail_mail(None, BOB, ME, "Offer", 1), _gmail_mail("<m0@x>", ME, BOB, "RE: Invoice 12", 1),
         _gmail_mail(None, ME, BOB, "Offer", 1)],
        [_gmail_mail(None, ME, BOB, "Invoice 12", 2)],
    ],
    step_days=0,
)  # fmt: skip
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=mailbox_in_batches(), step_days=st.integers(min_value=0, max_value=15))
def test_incremental_analysis_equals_a_full_one(
    stores: tuple[Path, Path, Path], batches: list[list[dict[str, Any]]], step_days: int
) -> None:
    inc_path, full_path, template = stores
    incremental, full = Store(inc_path, template), Store(full_path, template)
    now = START + timedelta(days=20)
    for batch in batches:
        incremental.add(batch)
        full.add(batch)
        analyze_changes(incremental.sessions, ACCOUNT, now)
        now += timedelta(days=step_days)
    analyze_changes(incremental.sessions, ACCOUNT, now)  # nothing new: a no-op
    full_now = now - timedelta(days=step_days)  # the clock of the last analysis
    # A first analysis streamed (as for a big mailbox), then one in memory over it.
    with patch.object(analyze, "IN_MEMORY_LIMIT", -1):
        analyze_account(full.sessions, ACCOUNT, full_now)
    streamed = full.state()
    analyze_account(full.sessions, ACCOUNT, full_now)
    got, want = incremental.state(), full.state()
    assert streamed[0] == want[0]
    assert sorted(streamed[1] - want[1], key=str) == sorted(want[1] - streamed[1], key=str)
    assert got[0] == want[0]
    assert sorted(got[1] - want[1], key=str) == sorted(want[1] - got[1], key=str)
    for store in (incremental, full):
        store.sessions.kw["bind"].dispose()


def _projects(count: int, *, gmail: bool = False) -> list[dict[str, Any]]:
    """One message you sent to each of ``count`` clients, an hour apart (on Gmail, each
    its own X-GM-THRID)."""
    return [
        {"message_id": f"<old{i}@x>", "in_reply_to": None, "references": "",
         "subject": f"Project {i}", "from_addr": ME, "to_addrs": f"c{i}@client.example",
         "direction": "out", "kind": "human", "date": START + timedelta(hours=i),
         "gm_thrid": 1000 + i if gmail else None}
        for i in range(count)
    ]  # fmt: skip


def test_new_mail_re_threads_only_the_threads_it_can_affect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "gw.db")
    store.add(_projects(200))
    assert analyze_changes(store.sessions, ACCOUNT, START + timedelta(days=20)) == 200
    with store.sessions() as db:
        assert db.scalar(select(Mention.msgid).where(Mention.message_pk == 1)) == "<old0@x>"
    reply = {"message_id": "<r@c>", "in_reply_to": "<old7@x>", "references": "<old7@x>",
             "subject": "Re: Project 7", "from_addr": "c7@client.example", "to_addrs": ME,
             "direction": "in", "kind": "human", "date": START + timedelta(days=3)}  # fmt: skip
    store.add([reply])
    seen: list[int] = []
    real = analyze._rethread

    def spy(db: Session, account: AccountSettings, rows: Any, *args: Any, **kw: Any) -> Any:
        rows = list(rows)
        seen.append(len(rows))
        return real(db, account, rows, *args, **kw)

    monkeypatch.setattr(analyze, "_rethread", spy)
    judged = analyze_changes(store.sessions, ACCOUNT, START + timedelta(days=20))
    assert (judged, seen) == (1, [2])  # the reply and the message it answers
    with store.sessions() as db:
        row = db.get(ThreadRow, ("t", db.scalar(select(MessageRow.thread_id).where(
            MessageRow.message_id == "<r@c>"))))  # fmt: skip
        assert row is not None
        assert (row.state, row.message_count) == ("answered", 2)
        assert db.scalar(select(ThreadRow.state).where(ThreadRow.subject == "Project 8")) == (
            "awaiting_reply"
        )


def test_new_gmail_mail_joins_its_gmail_thread_without_a_full_analysis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "gw.db")
    store.add(_projects(50, gmail=True))
    now = START + timedelta(days=20)
    assert analyze_changes(store.sessions, ACCOUNT, now) == 50
    # Gmail threads the client's answer with Project 7 though nothing in it says so.
    reply = {"message_id": "<r@c>", "in_reply_to": None, "references": "",
             "subject": "Tomorrow?", "from_addr": "c7@client.example", "to_addrs": ME,
             "direction": "in", "kind": "human", "date": START + timedelta(days=3),
             "gm_thrid": 1007}  # fmt: skip
    store.add([reply])

    def no_full_analysis(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a full analysis for one new Gmail message")

    monkeypatch.setattr(analyze, "analyze_account", no_full_analysis)
    assert analyze_changes(store.sessions, ACCOUNT, now) == 1
    with store.sessions() as db:
        row = db.get(ThreadRow, ("t", db.scalar(select(MessageRow.thread_id).where(
            MessageRow.message_id == "<r@c>"))))  # fmt: skip
        assert row is not None
        assert (row.subject, row.state, row.message_count) == ("Project 7", "answered", 2)


def _mail(msgid: str, frm: str, to: str, subject: str, at: datetime) -> dict[str, Any]:
    return {"message_id": msgid, "in_reply_to": None, "references": "", "subject": subject,
            "from_addr": frm, "to_addrs": to, "direction": "out" if frm == ME else "in",
            "kind": "human", "date": at}  # fmt: skip


def test_a_reply_elsewhere_that_comes_into_view_answers_an_untouched_thread(
    tmp_path: Path,
) -> None:
    """Bob's message is dated ahead of the clock (hidden) when first synced; by the next
    analysis it is in view, and the thread awaiting Bob, untouched by the new mail, is
    answered elsewhere, as a full analysis says."""
    store = Store(tmp_path / "gw.db")
    first = START + timedelta(days=20)
    store.add([
        _mail("<a@x>", ME, "bob@client.example", "Offer", START + timedelta(days=1)),
        _mail("<c@x>", "bob@client.example", ME, "Lunch", first + timedelta(days=5)),
    ])  # fmt: skip
    analyze_changes(store.sessions, ACCOUNT, first)
    with store.sessions() as db:
        assert db.scalar(select(ThreadRow.state).where(ThreadRow.subject == "Offer")) == (
            "awaiting_reply"
        )
    store.add([_mail("<d@x>", ME, "dan@other.example", "Logo", first + timedelta(days=9))])
    analyze_changes(store.sessions, ACCOUNT, first + timedelta(days=10))
    with store.sessions() as db:
        assert db.scalar(select(ThreadRow.state).where(ThreadRow.subject == "Offer")) == (
            "answered_elsewhere"
        )
