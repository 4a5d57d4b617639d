"""Pin the behaviour of the real mail stack and PostgreSQL fixtures the other tests rely on."""

from __future__ import annotations

import email
import email.message
import email.utils
import socket
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

import mailstack as mailstack_module
from mailstack import MaildirMessage, MailStack, MailStackError
from pgcluster import PgCluster


def _fresh_user(stack: MailStack, domain: str = "client.test") -> str:
    """A new user, so that each test sees an empty INBOX in the shared stack."""
    address = f"u{uuid.uuid4().hex[:10]}@{domain}"
    stack.add_user(address, "pw-" + address)
    return address


def _message(sender: str, to: str, subject: str, when: datetime | None = None) -> tuple[bytes, str]:
    """A minimal RFC 5322 message and its Message-ID."""
    message_id = email.utils.make_msgid(domain=sender.rpartition("@")[2])
    when = when or datetime.now(UTC)
    raw = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: {email.utils.format_datetime(when)}\r\nMessage-ID: {message_id}\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Hello, this is {subject}.\r\n"
    ).encode()
    return raw, message_id


def _parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw)


# ---- MailStack --------------------------------------------------------------


@pytest.mark.mailstack
def test_fixture_users_log_in_with_their_passwords(mailstack: MailStack) -> None:
    """The session stack has alice/bob/carol/owner; a wrong password is refused."""
    users = ("alice@example.test", "bob@client.test", "carol@client.test", "owner@example.test")
    for address in users:
        client = mailstack.imap(address)
        assert client.folder_exists("INBOX")
        client.logout()
    bad = IMAPClient(mailstack.host, port=mailstack.imap_port, ssl=False)
    try:
        with pytest.raises(LoginError):
            bad.login("alice@example.test", "not-alice-pw")
    finally:
        bad.shutdown()


@pytest.mark.mailstack
def test_sent_and_drafts_are_special_use_and_subscribed(mailstack: MailStack) -> None:
    """A new user sees Sent (\\Sent) and Drafts (\\Drafts), both subscribed (RFC 6154)."""
    address = _fresh_user(mailstack)
    client = mailstack.imap(address)
    try:
        assert client.find_special_folder(b"\\Sent") == "Sent"
        assert client.find_special_folder(b"\\Drafts") == "Drafts"
        subscribed = {name for _flags, _sep, name in client.list_sub_folders()}
        assert {"Sent", "Drafts"} <= subscribed
    finally:
        client.logout()


@pytest.mark.mailstack
def test_smtp_delivery_lands_in_inbox(mailstack: MailStack) -> None:
    """Mail sent to Postfix over SMTP reaches the recipient's INBOX via LMTP, unchanged."""
    recipient = _fresh_user(mailstack, "example.test")
    raw, message_id = _message("bob@client.test", recipient, "delivery check")
    refused = mailstack.deliver("bob@client.test", [recipient], raw)
    assert refused == {}
    [got] = mailstack.wait_for_messages(recipient, "INBOX", 1)
    msg = _parse(got)
    assert msg["Message-ID"] == message_id
    assert msg["Subject"] == "delivery check"
    assert msg["Return-Path"] == "<bob@client.test>"


@pytest.mark.mailstack
def test_plus_address_is_delivered_to_the_base_mailbox(mailstack: MailStack) -> None:
    """user+tag@domain lands in user's INBOX (recipient_delimiter = + in both servers)."""
    recipient = _fresh_user(mailstack, "example.test")
    local, _, domain = recipient.partition("@")
    tagged = f"{local}+clients@{domain}"
    raw, message_id = _message("carol@client.test", tagged, "plus addressing")
    mailstack.deliver("carol@client.test", [tagged], raw)
    [got] = mailstack.wait_for_messages(recipient, "INBOX", 1)
    assert _parse(got)["Message-ID"] == message_id
    assert _parse(got)["Delivered-To"] == tagged


@pytest.mark.mailstack
def test_unknown_user_produces_rfc3464_bounce(mailstack: MailStack) -> None:
    """Mail to a non-existent user at a test domain comes back to the sender as an RFC 3464
    delivery status notification, marked Auto-Submitted (RFC 3834), quoting the original."""
    sender = _fresh_user(mailstack)
    nobody = f"nobody-{uuid.uuid4().hex[:8]}@example.test"
    raw, message_id = _message(sender, nobody, "to nobody")
    # Accepted at SMTP time: the rejection comes later, from Dovecot's LMTP.
    assert mailstack.deliver(sender, [nobody], raw) == {}
    [got] = mailstack.wait_for_messages(sender, "INBOX", 1)
    bounce = _parse(got)
    assert bounce.get_content_type() == "multipart/report"
    assert bounce.get_param("report-type") == "delivery-status"
    assert str(bounce["Auto-Submitted"]).startswith("auto-replied")
    assert bounce["Return-Path"] == "<>"
    parts = {part.get_content_type(): part for part in bounce.walk()}
    assert "message/delivery-status" in parts
    status = parts["message/delivery-status"].as_string()
    assert f"Final-Recipient: rfc822; {nobody}" in status
    assert "Action: failed" in status
    assert "Status: 5.1.1" in status
    assert message_id.encode() in got  # the text/rfc822-headers part


@pytest.mark.mailstack
def test_vacation_reply_is_auto_replied_and_threads_to_the_original(
    mailstack: MailStack,
) -> None:
    """A Sieve vacation reply (RFC 5230) reaches the sender with Auto-Submitted:
    auto-replied and In-Reply-To of the original: a reply that is not an answer."""
    owner = _fresh_user(mailstack, "example.test")
    client = _fresh_user(mailstack, "client.test")
    mailstack.set_vacation(owner, "Out of office", "Back on Monday.")
    raw, message_id = _message(client, owner, "a question")
    mailstack.deliver(client, [owner], raw)

    [original] = mailstack.wait_for_messages(owner, "INBOX", 1)
    assert _parse(original)["Message-ID"] == message_id
    [got] = mailstack.wait_for_messages(client, "INBOX", 1)
    reply = _parse(got)
    assert reply["Subject"] == "Out of office"
    assert str(reply["Auto-Submitted"]).startswith("auto-replied")
    assert reply["In-Reply-To"] == message_id
    assert email.utils.parseaddr(reply["From"])[1] == owner
    assert "Back on Monday." in reply.get_payload()


@pytest.mark.mailstack
def test_clear_vacation_stops_replies(mailstack: MailStack) -> None:
    """After clear_vacation, new mail to the user gets no automatic reply."""
    owner = _fresh_user(mailstack, "example.test")
    client = _fresh_user(mailstack, "client.test")
    mailstack.set_vacation(owner, "Away", "Away.")
    mailstack.deliver(client, [owner], _message(client, owner, "first")[0])
    mailstack.wait_for_messages(client, "INBOX", 1)

    mailstack.clear_vacation(owner)
    mailstack.deliver(client, [owner], _message(client, owner, "second")[0])
    mailstack.wait_for_messages(owner, "INBOX", 2)
    # A reply is submitted during the LMTP delivery just awaited and reaches the
    # client's INBOX within tens of milliseconds; one second is a wide margin.
    time.sleep(1)
    assert len(mailstack.wait_for_messages(client, "INBOX", 1)) == 1


@pytest.mark.mailstack
def test_append_keeps_an_old_internal_date_and_returns_the_uid(mailstack: MailStack) -> None:
    """APPEND with an explicit date in the past sets INTERNALDATE (RFC 3501 6.3.11) to it,
    creates the folder, and returns the APPENDUID UID (RFC 4315)."""
    address = _fresh_user(mailstack)
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    raw, message_id = _message("x@agency.test", address, "old news", when)
    uid = mailstack.append(address, "Clients/Acme", raw, when, flags=["\\Seen"])
    client = mailstack.imap(address)
    try:
        client.normalise_times = False  # keep the server's offset: aware datetimes
        client.select_folder("Clients/Acme", readonly=True)
        fetched = client.fetch([uid], ["INTERNALDATE", "FLAGS", "BODY.PEEK[]"])
    finally:
        client.logout()
    assert fetched[uid][b"INTERNALDATE"] == when
    assert b"\\Seen" in fetched[uid][b"FLAGS"]
    assert _parse(fetched[uid][b"BODY[]"])["Message-ID"] == message_id


@pytest.mark.mailstack
def test_set_uidvalidity_changes_uidvalidity_and_keeps_the_mail(mailstack: MailStack) -> None:
    """set_uidvalidity gives the folder a new UIDVALIDITY (RFC 3501 2.3.1.1) and the
    message stays; a session that had the folder selected is disconnected."""
    address = _fresh_user(mailstack)
    raw, message_id = _message("x@agency.test", address, "uidvalidity")
    mailstack.append(address, "INBOX", raw, datetime.now(UTC))
    watcher = mailstack.imap(address)
    before = watcher.select_folder("INBOX")[b"UIDVALIDITY"]
    assert mailstack.uidvalidity(address, "INBOX") == before

    new_value = before - 1000
    mailstack.set_uidvalidity(address, "INBOX", new_value)

    client = mailstack.imap(address)
    try:
        assert client.select_folder("INBOX")[b"UIDVALIDITY"] == new_value
        [uid] = client.search("ALL")
        body = client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
        assert _parse(body)["Message-ID"] == message_id
    finally:
        client.logout()
    with pytest.raises((OSError, watcher.AbortError)):
        watcher.noop()
    watcher.shutdown()


@pytest.mark.mailstack
def test_write_maildir_sets_dates_flags_and_uid_order(mailstack: MailStack) -> None:
    """Messages written straight to Maildir show up on first SELECT with INTERNALDATE =
    the given time, a matching Date header, their flags, and UIDs in date order."""
    address = _fresh_user(mailstack)
    base = datetime(2023, 5, 1, 9, 0, tzinfo=UTC)
    messages = [
        MaildirMessage(
            f"From: c{i}@client.test\r\nSubject: m{i}\r\n\r\nbody {i}\r\n".encode(),
            base + timedelta(hours=i),
            ("\\Seen",) if i % 2 else (),
        )
        for i in range(200)
    ]
    assert mailstack.write_maildir(address, "Archive/2023", reversed(messages)) == 200
    client = mailstack.imap(address)
    try:
        client.normalise_times = False
        assert client.select_folder("Archive/2023", readonly=True)[b"EXISTS"] == 200
        uids = client.search("ALL")
        fetched = client.fetch(uids, ["INTERNALDATE", "FLAGS", "BODY.PEEK[HEADER]"])
    finally:
        client.logout()
    for i, uid in enumerate(sorted(uids)):
        item = fetched[uid]
        headers = _parse(item[b"BODY[HEADER]"])
        assert headers["Subject"] == f"m{i}"
        assert item[b"INTERNALDATE"] == messages[i].when
        assert email.utils.parsedate_to_datetime(headers["Date"]) == messages[i].when
        assert (b"\\Seen" in item[b"FLAGS"]) == bool(i % 2)
    with pytest.raises(MailStackError, match="already opened"):
        mailstack.write_maildir(address, "Archive/2023", messages[:1])


@pytest.mark.mailstack
def test_dovecot_restart_drops_connections_and_mail_waits_in_the_queue(
    mailstack: MailStack,
) -> None:
    """stop_dovecot refuses IMAP; mail sent meanwhile is queued by Postfix and delivered
    after start_dovecot, with the mailbox's earlier content intact."""
    address = _fresh_user(mailstack)
    mailstack.append(
        address, "INBOX", _message("x@agency.test", address, "before")[0], datetime.now(UTC)
    )
    mailstack.stop_dovecot()
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((mailstack.host, mailstack.imap_port), timeout=2).close()
        raw, message_id = _message("bob@client.test", address, "during restart")
        assert mailstack.deliver("bob@client.test", [address], raw) == {}
    finally:
        mailstack.start_dovecot()
    got = mailstack.wait_for_messages(address, "INBOX", 2)
    assert [_parse(m)["Subject"] for m in got] == ["before", "during restart"]
    assert _parse(got[1])["Message-ID"] == message_id


@pytest.mark.mailstack
def test_second_stack_runs_alongside_and_leaves_nothing_behind(mailstack: MailStack) -> None:
    """Two stacks run at once on distinct ports and delivery works in both; stop() ends
    every process of the second one, frees its ports, and is idempotent."""
    root = Path(tempfile.mkdtemp(prefix="ghostwatch-mail2-"))
    other = MailStack(root, domains=("other.test",))
    other.add_user("zed@other.test", "zed-pw")
    started = time.monotonic()
    with other:
        elapsed = time.monotonic() - started
        assert elapsed < 5, f"start-up took {elapsed:.1f} s"
        ports = {other.imap_port, other.smtp_port, other.lmtp_port}
        assert len(ports) == 3
        assert not ports & {mailstack.imap_port, mailstack.smtp_port, mailstack.lmtp_port}
        raw, message_id = _message("a@other.test", "zed@other.test", "second stack")
        other.deliver("a@other.test", ["zed@other.test"], raw)
        [got] = other.wait_for_messages("zed@other.test", "INBOX", 1)
        assert _parse(got)["Message-ID"] == message_id
        assert other.processes()
    assert other.processes() == []
    leftover = subprocess.run(
        ["pgrep", "-f", str(root)], capture_output=True, text=True, check=False
    )
    assert leftover.stdout == ""
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    other.stop()  # again: a no-op
    subprocess.run(["rm", "-rf", str(root)], check=True)


@pytest.mark.mailstack
def test_start_failure_raises_with_the_log_tail(
    mailstack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a server cannot start (here: its IMAP port is taken), start() raises
    MailStackError quoting the logs, and leaves no process behind."""
    # `mailstack` is requested only to skip or fail like the other tests when the
    # servers are missing; this test builds its own stack.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    real_reserve = mailstack_module._reserve_ports
    monkeypatch.setattr(mailstack_module, "_reserve_ports", lambda n: [taken, *real_reserve(n - 1)])
    root = Path(tempfile.mkdtemp(prefix="ghostwatch-mailfail-"))
    stack = MailStack(root)
    try:
        with pytest.raises(MailStackError, match="Dovecot did not start") as excinfo:
            stack.start()
        assert "Address already in use" in str(excinfo.value)
        assert stack.processes() == []
    finally:
        blocker.close()
        subprocess.run(["rm", "-rf", str(root)], check=True)


# ---- PgCluster --------------------------------------------------------------


@pytest.mark.postgres
def test_pg_cluster_accepts_connections_without_fsync(pg_cluster: PgCluster) -> None:
    """The throwaway cluster answers on loopback as PostgreSQL 15, with fsync off."""
    with psycopg.connect(pg_cluster.conninfo()) as conn:
        version, fsync = conn.execute(
            "SELECT current_setting('server_version_num')::int, current_setting('fsync')"
        ).fetchone() or (0, "")
    assert 150000 <= version < 160000
    assert fsync == "off"
    assert pg_cluster.url.startswith(
        f"postgresql+psycopg://ghostwatch@127.0.0.1:{pg_cluster.port}/"
    )


@pytest.mark.postgres
def test_create_database_returns_a_working_sqlalchemy_url(pg_cluster: PgCluster) -> None:
    """create_database makes a new database and returns a URL SQLAlchemy can connect to."""
    import sqlalchemy

    name = f"gw_{uuid.uuid4().hex[:8]}"
    url = pg_cluster.create_database(name)
    assert url == f"postgresql+psycopg://ghostwatch@127.0.0.1:{pg_cluster.port}/{name}"
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT current_database()")).scalar() == name
    finally:
        engine.dispose()
