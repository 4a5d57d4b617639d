"""Sync and judgment against the real Dovecot + Postfix on loopback."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ghostwatch.errors import AuthenticationError, ServerUnreachableError
from ghostwatch.imap import connect, connect_with_retry
from ghostwatch.store import Folder, MessageRow, ThreadRow, open_store
from ghostwatch.sync import Syncer, sync_account
from mailbuilder import make_mail
from mailenv import LONG_AGO, NOW, Env, _seq, account_for, make_env, run_cli, write_config
from mailstack import MailStack

pytestmark = pytest.mark.mailstack


@pytest.fixture
def env(mailstack: MailStack, tmp_path: Path) -> Env:
    """A fresh user (so tests never see each other's mail) and a fresh SQLite store."""
    return make_env(mailstack, tmp_path)


def test_a_reply_delivered_through_postfix_closes_the_thread(env: Env) -> None:
    env.sent("bob@client.test", "Proposal for the new site", "<p1@example.test>", 5)
    env.sync()
    thread = env.thread_of("<p1@example.test>")
    assert thread.awaiting and thread.counterpart == "bob@client.test"
    assert thread.awaiting_since == NOW - timedelta(days=5)

    reply = make_mail(
        frm="bob@client.test",
        to=env.address,
        subject="Re: Proposal for the new site",
        msgid="<r1@client.test>",
        date=NOW - timedelta(days=1),
        in_reply_to="<p1@example.test>",
        references=["<p1@example.test>"],
        body="Looks good, let's talk Monday.",
    )
    env.stack.deliver("bob@client.test", [env.address], reply)
    env.stack.wait_for_messages(env.address, "INBOX", 1)
    env.sync()
    thread = env.thread_of("<p1@example.test>")
    assert thread.state == "answered"
    assert not thread.awaiting


def test_a_reply_from_a_colleague_at_the_clients_domain_answers(env: Env) -> None:
    env.sent("bob@client.test", "Kick-off dates", "<k1@example.test>", 4)
    env.received(
        "carol@client.test",
        "Re: Kick-off dates",
        "<k2@client.test>",
        2,
        in_reply_to="<k1@example.test>",
        references=["<k1@example.test>"],
    )
    env.sync()
    thread = env.thread_of("<k1@example.test>")
    assert thread.state == "answered"
    assert "carol@client.test" in thread.notes


def test_a_real_sieve_vacation_reply_is_not_an_answer(env: Env) -> None:
    client = f"vacationer{next(_seq)}@client.test"
    env.stack.add_user(client, "pw")
    env.stack.set_vacation(client, "Out of office", "I am away until 7 December.")
    raw = make_mail(
        frm=env.address, to=client, subject="Invoice 2026-014", msgid="<v1@example.test>",
        date=LONG_AGO,
    )  # fmt: skip
    env.stack.append(env.address, "Sent", raw, LONG_AGO)
    env.stack.deliver(env.address, [client], raw)
    [auto] = env.stack.wait_for_messages(env.address, "INBOX", 1)
    assert b"Auto-Submitted: auto-replied" in auto
    env.sync_after(auto)
    thread = env.thread_of("<v1@example.test>")
    assert thread.awaiting
    assert f"auto-reply from {client}" in thread.notes
    with env.sessions() as db:
        row = db.scalars(select(MessageRow).where(MessageRow.kind == "auto_reply")).one()
        assert row.auto_reply_text is not None
        assert "7 December" in row.auto_reply_text


def test_a_real_postfix_bounce_is_not_an_answer(env: Env) -> None:
    raw = make_mail(
        frm=env.address, to="nobody@client.test", subject="Quote", msgid="<b1@example.test>",
        date=LONG_AGO,
    )  # fmt: skip
    env.stack.append(env.address, "Sent", raw, LONG_AGO)
    env.stack.deliver(env.address, ["nobody@client.test"], raw)
    [bounce] = env.stack.wait_for_messages(env.address, "INBOX", 1)
    env.sync_after(bounce)
    thread = env.thread_of("<b1@example.test>")
    assert thread.awaiting
    assert "bounce" in thread.notes and "nobody@client.test" in thread.notes
    with env.sessions() as db:
        row = db.scalars(select(MessageRow).where(MessageRow.kind == "bounce")).one()
        assert row.bounced_addrs == "nobody@client.test"
        assert row.bounced_message_id == "<b1@example.test>"
        assert row.thread_id == thread.thread_id


def test_a_gateway_bounce_from_an_ordinary_address_is_read_by_its_body(env: Env) -> None:
    """Some gateways send non-delivery notices from an ordinary address with no DSN
    markers: a "Delivery Failure" subject makes the sync read the body, and the failed
    address there makes it a bounce, not an answer. "Re: delivery failed?" from a
    person stays an answer."""
    env.sent("userx@client.example", "Proposal", "<gw1@example.test>", 5)
    raw = (
        b"From: Relay Gateway <gateway@relay.example>\r\n"
        + f"To: {env.address}\r\n".encode()
        + b"Subject: Delivery Failure\r\nMessage-ID: <g1@relay.example>\r\n"
        b"In-Reply-To: <gw1@example.test>\r\n"
        b"Date: Thu, 19 Nov 2026 10:00:00 +0000\r\n\r\n"
        b"Your message could not be delivered.\r\n\r\n"
        b"The following addresses had permanent fatal errors:\r\nuserx@client.example\r\n"
    )
    env.stack.append(env.address, "INBOX", raw, NOW - timedelta(days=1))
    env.sent("dora@client.test", "Logo", "<gw2@example.test>", 5)
    env.received("dora@client.test", "Re: delivery failed?", "<d2@client.test>", 1,
                 in_reply_to="<gw2@example.test>")  # fmt: skip
    env.sync()
    bounced = env.thread_of("<gw1@example.test>")
    assert bounced.awaiting and "bounce" in bounced.notes
    assert env.thread_of("<gw2@example.test>").state == "answered"


def test_newsletters_and_notes_to_self_are_never_awaited(env: Env) -> None:
    env.received(
        "news@client.test", "November news", "<n1@client.test>", 3,
        headers={"List-Unsubscribe": "<mailto:unsub@client.test>", "List-Id": "<news.client.test>"},
    )  # fmt: skip
    env.sent(env.address, "note to self", "<s1@example.test>", 2)
    env.sync()
    with env.sessions() as db:
        assert db.scalar(select(func.count()).where(ThreadRow.awaiting.is_(True))) == 0
        states = set(db.scalars(select(ThreadRow.state)))
    assert states == {"automated_only", "note_to_self"}


def test_no_change_resync_costs_one_command_per_folder(env: Env) -> None:
    env.sent("bob@client.test", "Hello", "<h1@example.test>", 1)
    env.received("bob@client.test", "Another", "<h2@client.test>", 1)
    env.sync()
    password = env.password
    session = connect(env.account, password)
    try:
        before = session.stats.commands
        result = Syncer(env.account, session, env.sessions, NOW).run()
        spent = session.stats.command_names[before:]
    finally:
        session.logout()
    assert [f.skipped_unchanged for f in result.folders] == [True, True]
    assert spent == ["STATUS", "STATUS"]


def test_sync_never_changes_the_mailbox(env: Env) -> None:
    env.received("bob@client.test", "Unread", "<u1@client.test>", 1)
    env.sync()
    client = env.stack.imap(env.address)
    try:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags(client.search("ALL"))
    finally:
        client.logout()
    assert all(b"\\Seen" not in f for f in flags.values())


def test_uidvalidity_change_remaps_without_loss_or_duplicates(env: Env) -> None:
    for i in range(5):
        env.received("bob@client.test", f"Msg {i}", f"<uv{i}@client.test>", 3)
    env.sent("bob@client.test", "Re: Msg 4", "<uv-out@example.test>", 2,
             in_reply_to="<uv4@client.test>", references=["<uv4@client.test>"])  # fmt: skip
    env.sync()
    assert env.count() == 6
    old = env.stack.uidvalidity(env.address, "INBOX")
    env.stack.set_uidvalidity(env.address, "INBOX", old + 1000)
    env.received("dave@agency.test", "Msg new", "<uv-new@agency.test>", 1)
    env.sync()
    assert env.count() == 7
    with env.sessions() as db:
        msgids = list(db.scalars(select(MessageRow.message_id)))
        inbox = db.scalars(select(Folder).where(Folder.role == "inbox")).one()
    assert len(msgids) == len(set(msgids)) == 7
    assert inbox.uidvalidity == old + 1000
    assert env.thread_of("<uv-out@example.test>").awaiting


BROKEN: list[bytes] = [
    b"From: bob@client.test\r\nTo: alice\r\nSubject: no message id\r\n\r\nbody\r\n",
    b"Message-ID: <d@x>\r\nMessage-ID: <d2@x>\r\nFrom: bob@client.test\r\nSubject: dup\r\n\r\nb\r\n",
    b"Message-ID: <loop1@x>\r\nReferences: <loop2@x>\r\nFrom: bob@client.test\r\n\r\nb\r\n",
    b"Message-ID: <loop2@x>\r\nReferences: <loop1@x>\r\nIn-Reply-To: <loop2@x>\r\n\r\nb\r\n",
    "Message-ID: <8bit@x>\r\nFrom: Jos\u00e9 <jose@client.test>\r\nSubject: Caf\u00e9 \u00e0 8 bit\r\n\r\nb\r\n".encode(
        "latin-1"
    ),
    b"Message-ID: <enc@x>\r\nFrom: =?utf-99?Q?bad?= <x@client.test>\r\nSubject: =?utf-8?B?!!!?=\r\nDate: yesterday-ish\r\n\r\nb\r\n",
    b"Message-ID: <self@x>\r\nReferences: <self@x>\r\nFrom: <>\r\nDate: Mon, 99 Foo 2026 99:99:99 +9999\r\n\r\nb\r\n",
    b"Subject: " + b"x" * 5000 + b"\r\nFrom: long@client.test\r\n\r\nb\r\n",
]


def test_a_mailbox_of_broken_messages_syncs_and_judges(env: Env) -> None:
    for raw in BROKEN:
        env.stack.append(env.address, "INBOX", raw, NOW - timedelta(days=1))
    env.sent("bob@client.test", "still fine", "<fine@example.test>", 1)
    env.sync()
    assert env.count() == len(BROKEN) + 1
    with env.sessions() as db:
        problems = [p for p in db.scalars(select(MessageRow.problems)) if p]
    assert len(problems) >= 5
    assert env.thread_of("<fine@example.test>").awaiting


def test_an_interrupted_first_sync_resumes_without_loss_or_duplicates(env: Env) -> None:
    for i in range(120):
        env.received("bob@client.test", f"Bulk {i}", f"<int{i}@client.test>", 2)
    account = account_for(env.stack, env.address, env.password, fetch_chunk=50)
    session = connect(account, env.password)
    calls: list[int] = []

    def stop_server_after_first_chunk(_folder: str, done: int, _total: int) -> None:
        calls.append(done)
        if len(calls) == 1:
            env.stack.stop_dovecot()

    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever the dead socket raises
            Syncer(account, session, env.sessions, NOW, stop_server_after_first_chunk).run()
    finally:
        env.stack.start_dovecot()
    assert 0 < env.count() < 120
    sync_account(account, env.sessions, NOW)
    assert env.count() == 120
    with env.sessions() as db:
        uids = list(db.scalars(select(MessageRow.uid)))
    assert len(set(uids)) == 120


def test_a_wrong_password_fails_once_naming_the_account(env: Env) -> None:
    bad = account_for(env.stack, env.address, "wrong-password")
    slept: list[float] = []
    with pytest.raises(AuthenticationError, match=rf"account '{bad.name}'.*refused"):
        connect_with_retry(bad, "wrong-password", sleep=slept.append)
    assert slept == []


def test_an_unreachable_server_is_retried_with_backoff(env: Env) -> None:
    dead = account_for(env.stack, env.address, env.password, port=1)
    slept: list[float] = []
    with pytest.raises(ServerUnreachableError, match="cannot connect"):
        connect_with_retry(dead, env.password, attempts=3, base_delay=1.5, sleep=slept.append)
    assert slept == [1.5, 3.0]


def test_cli_sync_then_status_json(env: Env, tmp_path: Path) -> None:
    env.sent("bob@client.test", "Website quote", "<cli1@example.test>", 6)
    env.sent("carol@client.test", "Logo", "<cli2@example.test>", 3)
    env.received("carol@client.test", "Re: Logo", "<cli3@client.test>", 1,
                 in_reply_to="<cli2@example.test>")  # fmt: skip
    config = write_config(env, tmp_path / "config.toml", db_url=env.db_url + "-cli", name="work")
    done = run_cli(config, "--now", NOW.isoformat(), "sync")
    assert done.returncode == 0, done.stderr
    assert "work: 3 new message(s) in 2 folder(s)" in done.stdout
    again = run_cli(config, "--now", NOW.isoformat(), "sync")
    assert "0 new message(s) in 2 folder(s), 2 unchanged" in again.stdout
    status = run_cli(config, "--now", NOW.isoformat(), "status", "--json")
    assert status.returncode == 0, status.stderr
    items = json.loads(status.stdout)
    assert [i["subject"] for i in items] == ["Website quote"]
    item = items[0]
    for key in ("thread_id", "account", "counterpart", "subject", "awaiting_since",
                "last_outgoing_message_id"):  # fmt: skip
        assert key in item
    assert item["account"] == "work"
    assert item["counterpart"] == "bob@client.test"
    assert item["last_outgoing_message_id"] == "<cli1@example.test>"
    assert datetime.fromisoformat(item["awaiting_since"]) == NOW - timedelta(days=6)
    assert item["days_silent"] == 6


def test_cli_reports_a_wrong_password_clearly(env: Env, tmp_path: Path) -> None:
    config = write_config(env, tmp_path / "config.toml", db_url=env.db_url + "-bad",
                          name="work", password_command="echo nope")  # fmt: skip
    done = run_cli(config, "sync")
    assert done.returncode == 1
    assert "account 'work'" in done.stderr and "refused" in done.stderr
    assert "nope" not in done.stderr


@pytest.mark.postgres
def test_sync_and_judgment_into_postgresql(env: Env, request: pytest.FixtureRequest) -> None:
    cluster = request.getfixturevalue("pg_cluster")
    sessions = open_store(cluster.create_database(f"gw_sync_{next(_seq)}"))
    env.sent("bob@client.test", "Offer", "<pg1@example.test>", 3)
    env.received("bob@client.test", "Re: Offer", "<pg2@client.test>", 1,
                 in_reply_to="<pg1@example.test>")  # fmt: skip
    env.sent("carol@client.test", "Draft", "<pg3@example.test>", 2)
    sync_account(env.account, sessions, NOW)
    sync_account(env.account, sessions, NOW)  # the no-change path on PostgreSQL
    with sessions() as db:
        states = {c: s for c, s in db.execute(select(ThreadRow.counterpart, ThreadRow.state))}
        assert db.scalar(select(func.count()).select_from(MessageRow)) == 3
    assert states["carol@client.test"] == "awaiting_reply"
    assert "answered" in states.values()
    sessions.kw["bind"].dispose()


def test_a_reply_whose_clock_runs_ahead_still_answers(env: Env) -> None:
    """The client's Date header says three hours from now: it has arrived all the same."""
    env.sent("bob@client.test", "Plans", "<sk1@example.test>", 2)
    env.received("bob@client.test", "Re: Plans", "<sk2@client.test>", -0.125,
                 in_reply_to="<sk1@example.test>")  # fmt: skip
    env.sync()
    assert env.thread_of("<sk1@example.test>").state == "answered"


def test_a_quiet_resync_keeps_the_judgment_without_recomputing_it(env: Env) -> None:
    env.sent("bob@client.test", "Quiet", "<q1@example.test>", 2)
    env.sync()
    with env.sessions() as db:
        before = db.scalar(select(ThreadRow.updated_at))
    env.sync(NOW + timedelta(hours=1))
    with env.sessions() as db:
        assert db.scalar(select(ThreadRow.updated_at)) == before


def test_uidvalidity_change_on_a_big_folder_remaps_every_message(env: Env) -> None:
    """3,000 messages: the re-map must scale (no per-row work over all rows)."""
    msgs = [
        (make_mail(frm="bob@client.test", to=env.address, subject=f"Note {i}",
                   msgid=f"<big{i}@client.test>", date=NOW - timedelta(minutes=3000 - i)),
         NOW - timedelta(minutes=3000 - i))
        for i in range(3000)
    ]  # fmt: skip
    env.stack.write_maildir(env.address, "INBOX", msgs)
    env.sync()
    assert env.count() == 3000
    old = env.stack.uidvalidity(env.address, "INBOX")
    env.stack.set_uidvalidity(env.address, "INBOX", old + 7)
    env.sync()
    with env.sessions() as db:
        uids = list(db.scalars(select(MessageRow.uid)))
    assert len(uids) == len(set(uids)) == 3000
    assert min(uids) > 0


def test_a_folder_deleted_on_the_server_is_reported_and_the_rest_synced(env: Env) -> None:
    env.stack.append(env.address, "Clients", make_mail(
        frm="bob@client.test", to=env.address, subject="Filed", msgid="<f1@client.test>",
        date=NOW - timedelta(days=1)), NOW - timedelta(days=1))  # fmt: skip
    account = account_for(env.stack, env.address, env.password, folders=["Clients"])
    sync_account(account, env.sessions, NOW)
    assert env.count() == 1
    client = env.stack.imap(env.address)
    try:
        client.delete_folder("Clients")
    finally:
        client.logout()
    env.received("bob@client.test", "New", "<f2@client.test>", 0.5)
    result = sync_account(account, env.sessions, NOW)
    by_name = {f.name: f for f in result.folders}
    assert by_name["Clients"].unavailable
    assert by_name["INBOX"].new == 1
    assert env.count() == 2  # what was filed there stays in the history


def test_a_server_dying_mid_sync_is_a_clear_error_and_nothing_is_lost(env: Env) -> None:
    for i in range(120):
        env.received("bob@client.test", f"Bulk {i}", f"<die{i}@client.test>", 2)
    account = account_for(env.stack, env.address, env.password, fetch_chunk=50)
    calls: list[int] = []

    def stop_server(_folder: str, done: int, _total: int) -> None:
        calls.append(done)
        if len(calls) == 1:
            env.stack.stop_dovecot()

    try:
        with pytest.raises(ServerUnreachableError, match="next sync resumes"):
            sync_account(account, env.sessions, NOW, progress=stop_server, connect_attempts=1)
    finally:
        env.stack.start_dovecot()
    sync_account(account, env.sessions, NOW)
    assert env.count() == 120
