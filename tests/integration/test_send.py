"""The send path end to end, as a user runs it: `ghostwatch send`, `queue`, `approve`,
against the real Postfix and Dovecot of a MailStack.

The user (alice@example.test) wrote to a prospect at client.test ten days before
``NOW`` (a Friday, 10:00 UTC, inside the default Mon-Fri 09:00-17:00 window); the
prospect policy's first nudge is due. Postfix on loopback relays without AUTH and
delivers to the client's Dovecot mailbox, where the tests look for what arrived.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from conftest import TlsStack
from sqlalchemy import select

from ghostwatch.store import OutboxRow, StepLog
from mailenv import NOW, Env, make_env, run_cli, write_config
from mailstack import CLOSING, GREYLISTED, MailStack

pytestmark = pytest.mark.mailstack

ORIGINAL = "<quote-1@example.test>"
AT = NOW.isoformat()


@dataclass
class SendEnv:
    env: Env
    client: str
    config: Path

    def cli(self, *args: str, now: str = AT) -> Any:
        return run_cli(self.config, "--now", now, *args)

    def rows(self) -> list[OutboxRow]:
        with self.env.sessions() as db:
            return list(db.scalars(select(OutboxRow).order_by(OutboxRow.id)))

    def client_inbox(self) -> list[EmailMessage]:
        """What reached the client, once Postfix has delivered everything handed to it
        so far: a marker sent now through the same Postfix is waited for first."""
        marker = f"<marker-{time.monotonic_ns()}@example.test>"
        before = len(self.env.stack.messages(self.client, "INBOX"))
        self.env.stack.deliver(
            "postmaster@example.test",
            [self.client],
            f"From: postmaster@example.test\r\nTo: {self.client}\r\nSubject: marker\r\n"
            f"Message-ID: {marker}\r\n\r\nmarker\r\n".encode(),
        )
        got = self.env.stack.wait_for_messages(self.client, "INBOX", before + 1)
        deadline = time.monotonic() + 20
        while not any(marker.encode() in raw for raw in got) and time.monotonic() < deadline:
            time.sleep(0.1)
            got = self.env.stack.messages(self.client, "INBOX")
        msgs = [_parse(raw) for raw in got]
        assert any(m["Message-ID"] == marker for m in msgs), "the marker never arrived"
        return [m for m in msgs if m["Subject"] != "marker"]

    def sent_folder(self) -> list[EmailMessage]:
        return [_parse(raw) for raw in self.env.stack.messages(self.env.address, "Sent")]


def _parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _smtp_section(stack: MailStack, port: int | None = None) -> str:
    return f"""
[accounts.smtp]
host = "127.0.0.1"
port = {port or stack.smtp_port}
security = "none"
username = "unused"
password_command = "echo unused"
timeout = 10
"""


def make_send_env(
    mailstack: MailStack, tmp_path: Path, *, sending: str = "", smtp_port: int | None = None
) -> SendEnv:
    env = make_env(mailstack, tmp_path)
    client = f"bob-{os.getpid()}-{tmp_path.name[-12:]}@client.test".lower()
    mailstack.add_user(client, "pw-" + client)
    env.sent(client, "Quote for the new website", ORIGINAL, days_ago=10)
    config = write_config(
        env,
        tmp_path / "config.toml",
        extra=_smtp_section(mailstack, smtp_port) + f"\n[sending]\nspread_minutes = 0\n{sending}\n",
    )
    return SendEnv(env, client, config)


@pytest.fixture
def senv(mailstack: MailStack, tmp_path: Path) -> SendEnv:
    return make_send_env(mailstack, tmp_path)


def test_a_due_step_is_queued_for_approval_and_not_sent(senv: SendEnv) -> None:
    """mode "approve" (the default): `send` writes the draft down and waits for you."""
    out = senv.cli("send")
    assert out.returncode == 0, out.stderr
    assert "queued" in out.stdout and "waiting for your approval" in out.stdout
    [row] = senv.rows()
    assert (row.state, row.step, row.to_addr) == ("queued", "nudge", senv.client)
    assert row.in_reply_to == ORIGINAL
    assert senv.client_inbox() == []
    listed = json.loads(senv.cli("queue", "--json").stdout)
    assert [(r["id"], r["thread_id"], r["to"], r["step"], r["state"]) for r in listed] == [
        (row.id, row.thread_id, senv.client, "nudge", "queued")
    ]
    assert listed[0]["due_at"] == row.due_at.isoformat()


def test_an_approved_follow_up_arrives_once_threaded_and_is_copied_to_sent(senv: SendEnv) -> None:
    """approve + send: it reaches the client's INBOX under the original thread, lands in
    the user's Sent exactly once, the step is logged, and a second `send` does nothing."""
    senv.cli("send")
    [row] = senv.rows()
    approved = senv.cli("approve", str(row.id))
    assert approved.returncode == 0, approved.stderr
    out = senv.cli("send")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"#{row.id} sent" in out.stdout

    [got] = senv.env.stack.wait_for_messages(senv.client, "INBOX", 1)
    msg = _parse(got)
    assert msg["Message-ID"] == row.message_id
    assert msg["In-Reply-To"] == ORIGINAL
    assert ORIGINAL in msg["References"]
    assert msg["Subject"] == "Re: Quote for the new website"
    assert senv.env.address in msg["From"]
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content().strip()

    sent_copies = [m for m in senv.sent_folder() if m["Message-ID"] == row.message_id]
    assert len(sent_copies) == 1
    [after] = senv.rows()
    assert after.state == "sent" and after.sent_at == NOW
    with senv.env.sessions() as db:
        logged = db.scalars(select(StepLog.outcome).where(StepLog.thread_id == row.thread_id))
        assert list(logged) == ["sent"]

    again = senv.cli("send", now=(NOW + timedelta(minutes=5)).isoformat())
    assert again.returncode == 0, again.stderr
    assert " sent:" not in again.stdout
    assert len(senv.env.stack.messages(senv.client, "INBOX")) == 1
    assert [r.state for r in senv.rows()] == ["sent"]


def test_a_reply_between_queueing_and_sending_cancels_the_send(senv: SendEnv) -> None:
    """The client answers after the draft was approved: the re-sync right before SMTP
    sees it and the draft is cancelled, not sent."""
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    senv.env.received(senv.client, "Re: Quote for the new website", "<answer@client.test>",
                      days_ago=0.01, in_reply_to=ORIGINAL)  # fmt: skip
    out = senv.cli("send")
    assert out.returncode == 0, out.stderr
    assert "cancelled" in out.stdout
    [after] = senv.rows()
    assert after.state == "cancelled"
    assert senv.client_inbox() == []


def test_dry_run_shows_the_message_and_sends_nothing(senv: SendEnv) -> None:
    """--dry-run prints what would go out, full text included, and moves no row."""
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    out = senv.cli("send", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "Dry run" in out.stdout and "would-send" in out.stdout
    assert f"Message-ID: {row.message_id}" in out.stdout
    assert row.body_text.strip().splitlines()[0] in out.stdout
    assert [r.state for r in senv.rows()] == ["approved"]
    assert senv.client_inbox() == []


def test_the_global_dry_run_switch_sends_nothing(mailstack: MailStack, tmp_path: Path) -> None:
    """[sending] dry_run = true: same as --dry-run on every run."""
    senv = make_send_env(mailstack, tmp_path, sending="dry_run = true")
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    out = senv.cli("send")
    assert "would-send" in out.stdout
    assert [r.state for r in senv.rows()] == ["approved"]
    assert senv.client_inbox() == []


def test_outside_the_send_window_an_approved_draft_waits(senv: SendEnv) -> None:
    """Saturday: the draft stays approved and says when it will go."""
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    saturday = (NOW + timedelta(days=1)).isoformat()
    out = senv.cli("send", now=saturday)
    assert "held" in out.stdout and "outside the send window" in out.stdout
    assert [r.state for r in senv.rows()] == ["approved"]
    assert senv.client_inbox() == []


def test_auto_steps_go_only_when_auto_send_is_on(mailstack: MailStack, tmp_path: Path) -> None:
    """A step with mode = "auto" waits for approval unless [sending] auto_send = true."""
    policy = """
[policies.prospect]
stage = "prospect"
[[policies.prospect.steps]]
name = "nudge"
after = "5 business days"
template = "prospect_nudge"
mode = "auto"
"""
    senv = make_send_env(mailstack, tmp_path, sending=policy)
    out = senv.cli("send")
    assert "auto-send is off" in out.stdout
    assert [r.state for r in senv.rows()] == ["queued"]
    text = senv.config.read_text().replace(
        "spread_minutes = 0", "spread_minutes = 0\nauto_send = true"
    )
    senv.config.write_text(text)
    out = senv.cli("send")
    assert out.returncode == 0, out.stderr
    assert [r.state for r in senv.rows()] == ["sent"]
    assert len(senv.env.stack.wait_for_messages(senv.client, "INBOX", 1)) == 1


def test_a_refused_recipient_is_failed_with_the_servers_reason(
    mailstack: MailStack, tmp_path: Path
) -> None:
    """A 550 from Postfix: the row is failed, `queue` says why, nothing is retried."""
    senv = make_send_env(mailstack, tmp_path)
    senv.cli("send")
    [row] = senv.rows()
    with senv.env.sessions() as db:
        stored = db.get(OutboxRow, row.id)
        assert stored is not None
        stored.to_addr = "nobody@not-a-test-domain.invalid"
        db.commit()
    senv.cli("approve", str(row.id))
    out = senv.cli("send")
    assert out.returncode == 1
    [after] = senv.rows()
    assert after.state == "failed"
    assert after.last_error is not None and "550 5.1.1" in after.last_error
    assert after.attempts == 1
    listed = senv.cli("queue").stdout
    assert "not sent: " in listed and "Recipient address rejected" in listed
    senv.cli("send", now=(NOW + timedelta(hours=1)).isoformat())
    assert [(r.state, r.attempts) for r in senv.rows()] == [("failed", 1)]


def test_an_unreachable_smtp_server_is_retried_later(mailstack: MailStack, tmp_path: Path) -> None:
    """Connection refused: back to approved with a retry time; the next run before that
    time does not try again."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    senv = make_send_env(mailstack, tmp_path, smtp_port=dead_port)
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    out = senv.cli("send")
    assert "retry" in out.stdout
    [after] = senv.rows()
    assert after.state == "approved" and after.attempts == 1
    assert after.next_attempt_at == NOW + timedelta(minutes=10)
    soon = senv.cli("send", now=(NOW + timedelta(minutes=5)).isoformat())
    assert "retrying after a temporary refusal" in soon.stdout
    assert senv.rows()[0].attempts == 1


def _redirect(senv: SendEnv, row_id: int, to: str) -> None:
    """Point a queued draft at one of the stack's fixed-refusal recipients."""
    with senv.env.sessions() as db:
        stored = db.get(OutboxRow, row_id)
        assert stored is not None
        stored.to_addr = to
        db.commit()


@pytest.mark.parametrize(
    ("rcpt", "reply"),
    [(GREYLISTED, "451 4.7.1"), (CLOSING, "421 4.3.2")],
    ids=["451-greylisted", "421-closing"],
)
def test_a_temporary_refusal_is_retried_with_backoff_then_failed(
    mailstack: MailStack, tmp_path: Path, rcpt: str, reply: str
) -> None:
    """Postfix answers 451 or 421 at RCPT: approved again with a retry time that
    doubles; after max_attempts the row is failed with the server's words."""
    senv = make_send_env(mailstack, tmp_path, sending="max_attempts = 3")
    senv.cli("send")
    [row] = senv.rows()
    _redirect(senv, row.id, rcpt)
    senv.cli("approve", str(row.id))
    first = senv.cli("send")
    assert f"#{row.id} retry" in first.stdout, first.stdout
    [after] = senv.rows()
    assert (after.state, after.attempts) == ("approved", 1)
    assert after.next_attempt_at == NOW + timedelta(minutes=10)
    second_at = NOW + timedelta(minutes=11)
    senv.cli("send", now=second_at.isoformat())
    [after] = senv.rows()
    assert (after.state, after.attempts) == ("approved", 2)
    assert after.next_attempt_at == second_at + timedelta(minutes=20)
    third = senv.cli("send", now=(second_at + timedelta(minutes=21)).isoformat())
    [after] = senv.rows()
    assert (after.state, after.attempts) == ("failed", 3)
    assert after.last_error is not None and reply in after.last_error, after.last_error
    assert "gave up after 3 attempts" in third.stdout


def test_starttls_not_offered_is_failed_and_says_so(mailstack: MailStack, tmp_path: Path) -> None:
    """security = "starttls" and the server offers no STARTTLS: failed, nothing sent in
    clear text, and the reason names the problem."""
    senv = make_send_env(mailstack, tmp_path)
    senv.config.write_text(
        senv.config.read_text().replace(
            'security = "none"\nusername = "unused"', 'security = "starttls"\nusername = "unused"'
        )
    )
    assert 'security = "starttls"' in senv.config.read_text()
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    out = senv.cli("send")
    assert out.returncode == 1
    [after] = senv.rows()
    assert after.state == "failed"
    assert after.last_error is not None and "STARTTLS" in after.last_error
    assert senv.client_inbox() == []


def test_an_uncertain_row_settled_as_not_sent_goes_out_once(senv: SendEnv) -> None:
    """`settle ID --not-sent` is the user's word that it did not go out: the next run
    sends it, once; `settle` refuses rows that are not uncertain."""
    senv.cli("send")
    [row] = senv.rows()
    with senv.env.sessions() as db:
        stored = db.get(OutboxRow, row.id)
        assert stored is not None
        stored.state = "uncertain"
        db.commit()
    assert "did this go out?" in senv.cli("queue").stdout
    refused = senv.cli("settle", str(row.id))
    assert refused.returncode != 0 and "--sent or --not-sent" in refused.stderr
    settled = senv.cli("settle", str(row.id), "--not-sent")
    assert settled.returncode == 0, settled.stderr
    assert [r.state for r in senv.rows()] == ["approved"]
    senv.cli("send")
    assert [r.state for r in senv.rows()] == ["sent"]
    again = senv.cli("settle", str(row.id), "--sent")
    assert again.returncode == 1 and "is sent, not uncertain" in again.stderr
    assert len(senv.client_inbox()) == 1


def test_save_to_sent_never_leaves_sent_alone(mailstack: MailStack, tmp_path: Path) -> None:
    """save_to_sent = "never": delivered, but no copy is appended to Sent."""
    senv = make_send_env(mailstack, tmp_path, sending='save_to_sent = "never"')
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    senv.cli("send")
    assert [r.state for r in senv.rows()] == ["sent"]
    assert [m["Message-ID"] for m in senv.client_inbox()] == [row.message_id]
    assert [m for m in senv.sent_folder() if m["Message-ID"] == row.message_id] == []


PDF = (
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n"
    + bytes(range(256)) * 40
    + b"\n%%EOF\n"
)

RESEND_POLICY = """
[policies.payment]
stage = "payment"
[[policies.payment.steps]]
name = "resend"
after = "5 business days"
template = "invoice_resend"
attach_invoice = true
"""


def test_the_invoice_pdf_arrives_intact_in_the_clients_inbox_and_in_sent(
    mailstack: MailStack, tmp_path: Path
) -> None:
    """A step with attach_invoice: the file given to `track --attach` reaches the client
    byte for byte, as an application/pdf attachment with its name, and so does the
    copy in Sent."""
    senv = make_send_env(mailstack, tmp_path, sending=RESEND_POLICY)
    invoice = tmp_path / "invoice-2026-014.pdf"
    invoice.write_bytes(PDF)
    synced = senv.cli("sync", "--quiet")
    assert synced.returncode == 0, synced.stderr
    [thread] = json.loads(senv.cli("status", "--json").stdout)
    tracked = senv.cli("track", thread["thread_id"], "--stage", "payment", "--invoice", "2026-014",
                       "--amount", "1200.00", "--currency", "EUR", "--due", "2026-11-01",
                       "--attach", str(invoice))  # fmt: skip
    assert tracked.returncode == 0, tracked.stderr
    senv.cli("send")
    [row] = senv.rows()
    assert (row.step, row.attachment) == ("resend", str(invoice))
    senv.cli("approve", str(row.id))
    out = senv.cli("send")
    assert f"#{row.id} sent" in out.stdout, out.stdout + out.stderr

    [msg] = senv.client_inbox()
    [part] = list(msg.iter_attachments())
    assert part.get_content_type() == "application/pdf"
    assert part.get_filename() == "invoice-2026-014.pdf"
    assert part.get_content() == PDF
    body = msg.get_body(("plain",))
    assert body is not None and "2026-014" in body.get_content()
    [copy] = [m for m in senv.sent_folder() if m["Message-ID"] == row.message_id]
    [copied] = list(copy.iter_attachments())
    assert copied.get_content() == PDF


def test_a_missing_invoice_file_fails_the_draft_and_sends_nothing(
    mailstack: MailStack, tmp_path: Path
) -> None:
    """The PDF was moved after approval: failed with the reason, no message without
    its attachment."""
    senv = make_send_env(mailstack, tmp_path, sending=RESEND_POLICY)
    invoice = tmp_path / "invoice.pdf"
    invoice.write_bytes(PDF)
    senv.cli("sync", "--quiet")
    [thread] = json.loads(senv.cli("status", "--json").stdout)
    senv.cli("track", thread["thread_id"], "--stage", "payment", "--invoice", "7",
             "--amount", "10", "--due", "2026-11-01", "--attach", str(invoice))  # fmt: skip
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    invoice.unlink()
    out = senv.cli("send")
    assert out.returncode == 1
    [after] = senv.rows()
    assert after.state == "failed"
    assert after.last_error is not None and "invoice.pdf" in after.last_error
    assert senv.client_inbox() == []


def test_a_crlf_smuggled_into_the_subject_never_becomes_a_header(
    mailstack: MailStack, tmp_path: Path
) -> None:
    """The original subject's encoded word decodes to CR LF + "Bcc: ...": the follow-up
    carries it as one harmless Subject line; no Bcc header, no copy to the smuggled
    address."""
    env = make_env(mailstack, tmp_path)
    stamp = time.monotonic_ns()
    client, evil = f"eve{stamp}@client.test", f"evil{stamp}@client.test"
    for address in (client, evil):
        mailstack.add_user(address, "pw")
    when = NOW - timedelta(days=10)
    raw = (
        f"From: {env.address}\r\nTo: {client}\r\n"
        f"Subject: =?utf-8?q?Quote=0D=0ABcc=3A_{evil.replace('@', '=40')}?=\r\n"
        f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
        "Message-ID: <inj-1@example.test>\r\n\r\nHello\r\n"
    ).encode()
    mailstack.append(env.address, "Sent", raw, when)
    config = write_config(env, tmp_path / "config.toml",
                          extra=_smtp_section(mailstack) + "\n[sending]\nspread_minutes = 0\n")  # fmt: skip
    run_cli(config, "--now", AT, "send")
    with env.sessions() as db:
        [row] = list(db.scalars(select(OutboxRow)))
    run_cli(config, "--now", AT, "approve", str(row.id))
    out = run_cli(config, "--now", AT, "send")
    assert f"#{row.id} sent" in out.stdout, out.stdout + out.stderr
    [got] = mailstack.wait_for_messages(client, "INBOX", 1)
    msg = _parse(got)
    assert msg["Subject"] == f"Re: Quote Bcc: {evil}"
    assert msg["Bcc"] is None
    header_block = got.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in header_block.replace(b"\r\n", b"\n")
    assert mailstack.messages(evil, "INBOX") == []


def test_a_display_name_with_a_line_break_is_refused_at_config_load(
    mailstack: MailStack, tmp_path: Path
) -> None:
    """display_name = "Alice\\r\\nBcc: ..." in the config: every command refuses the
    file and names the key; nothing is queued."""
    senv = make_send_env(mailstack, tmp_path)
    text = senv.config.read_text().replace(
        'address = "', 'display_name = "Alice\\r\\nBcc: evil@client.test"\naddress = "', 1
    )
    senv.config.write_text(text)
    out = senv.cli("send")
    assert out.returncode != 0
    assert "accounts[0].display_name" in out.stderr
    assert "line break" in out.stderr or "control character" in out.stderr
    assert senv.rows() == []


def test_two_drafts_to_one_client_go_out_on_different_days(senv: SendEnv) -> None:
    """per_client_daily = 1: a second thread with the same client waits for the next
    day's window, then goes."""
    senv.env.sent(senv.client, "Logo variants", "<logo-1@example.test>", days_ago=9)
    senv.cli("send", now=(NOW + timedelta(days=3)).isoformat())  # Monday: both due
    rows = senv.rows()
    assert len(rows) == 2
    for r in rows:
        senv.cli("approve", str(r.id))
    monday = NOW + timedelta(days=3)
    out = senv.cli("send", now=monday.isoformat())
    assert "already wrote to" in out.stdout, out.stdout
    assert sorted(r.state for r in senv.rows()) == ["approved", "sent"]
    senv.cli("send", now=(monday + timedelta(days=1)).isoformat())
    assert [r.state for r in senv.rows()] == ["sent", "sent"]
    assert len(senv.client_inbox()) == 2


def test_writing_to_the_client_yourself_cancels_the_draft_and_counts_as_the_step(
    senv: SendEnv,
) -> None:
    """You nudged them by hand after the draft was queued: the draft is cancelled, the
    step is logged as done (never queued again), and the plan moves to the next step."""
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    senv.env.sent(senv.client, "Re: Quote for the new website", "<by-hand@example.test>",
                  days_ago=-0.01, in_reply_to=ORIGINAL)  # fmt: skip
    later = (NOW + timedelta(hours=1)).isoformat()
    out = senv.cli("send", now=later)
    assert "you wrote to them yourself" in out.stdout, out.stdout
    assert [r.state for r in senv.rows()] == ["cancelled"]
    with senv.env.sessions() as db:
        logged = db.scalars(select(StepLog.step).where(StepLog.outcome == "done"))
        assert list(logged) == ["nudge"]
    plan = json.loads(senv.cli("plan", "--json", now=later).stdout)
    assert [p["step"] for p in plan] == ["last_check_in"]
    assert senv.client_inbox() == []


def test_a_draft_sent_from_your_own_mail_client_is_not_sent_again(senv: SendEnv) -> None:
    """The same Message-ID shows up in Sent (you sent the draft yourself): cancelled
    and logged as sent."""
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    senv.env.sent(senv.client, "Re: Quote for the new website", row.message_id,
                  days_ago=-0.01, in_reply_to=ORIGINAL)  # fmt: skip
    out = senv.cli("send", now=(NOW + timedelta(hours=1)).isoformat())
    assert "you sent this draft yourself" in out.stdout, out.stdout
    assert [r.state for r in senv.rows()] == ["cancelled"]
    with senv.env.sessions() as db:
        assert list(db.scalars(select(StepLog.outcome))) == ["sent"]
    assert senv.client_inbox() == []


def _drafts(senv: SendEnv) -> list[EmailMessage]:
    return [_parse(raw) for raw in senv.env.stack.messages(senv.env.address, "Drafts")]


def _draft_flags(senv: SendEnv) -> list[tuple[bytes, ...]]:
    client = senv.env.stack.imap(senv.env.address)
    try:
        client.select_folder("Drafts", readonly=True)
        fetched = client.fetch(client.search("ALL"), ["FLAGS"])
        return [tuple(sorted(set(v[b"FLAGS"]) - {b"\\Recent"})) for v in fetched.values()]
    finally:
        client.logout()


def test_drafts_folder_holds_each_queued_draft_until_ghostwatch_sends_it(
    mailstack: MailStack, tmp_path: Path
) -> None:
    """drafts_folder = true: the queued draft appears in Drafts (flagged \\Draft, same
    Message-ID, threaded); when ghostwatch sends it the copy leaves Drafts, so it
    cannot be sent a second time from the mail client."""
    senv = make_send_env(mailstack, tmp_path, sending="drafts_folder = true")
    mailstack.doveadm("mailbox", "create", "-u", senv.env.address, "Drafts")
    senv.cli("send")
    [row] = senv.rows()
    [draft] = _drafts(senv)
    assert draft["Message-ID"] == row.message_id
    assert draft["In-Reply-To"] == ORIGINAL
    assert _draft_flags(senv) == [(b"\\Draft", b"\\Seen")]
    assert row.in_drafts
    senv.cli("approve", str(row.id))
    out = senv.cli("send")
    assert f"#{row.id} sent" in out.stdout, out.stdout + out.stderr
    assert _drafts(senv) == []
    assert len(senv.client_inbox()) == 1
    assert not senv.rows()[0].in_drafts


def test_a_skipped_draft_leaves_the_drafts_folder_at_the_next_pass(
    mailstack: MailStack, tmp_path: Path
) -> None:
    senv = make_send_env(mailstack, tmp_path, sending="drafts_folder = true")
    mailstack.doveadm("mailbox", "create", "-u", senv.env.address, "Drafts")
    senv.cli("send")
    [row] = senv.rows()
    assert len(_drafts(senv)) == 1
    senv.cli("skip", str(row.id))
    senv.cli("send", now=(NOW + timedelta(minutes=5)).isoformat())
    assert _drafts(senv) == []
    assert [(r.state, r.in_drafts) for r in senv.rows()] == [("skipped", False)]


def _provider_smtp(tls: TlsStack, *, port: int, security: str, password: str,
                   ca: bool = True) -> str:  # fmt: skip
    return f"""
[accounts.smtp]
host = "127.0.0.1"
port = {port}
security = "{security}"
username = "{SUBMITTER}"
password_command = "echo {password}"
timeout = 10
{f'ca_file = "{tls.ca_file}"' if ca else ""}
"""


SUBMITTER = "sender-send@example.test"


def _send_env_via(mailstack: MailStack, tmp_path: Path, smtp: str) -> SendEnv:
    senv = make_send_env(mailstack, tmp_path)
    text = senv.config.read_text()
    start = text.index("[accounts.smtp]")
    end = text.index("[sending]")
    senv.config.write_text(text[:start] + smtp.strip() + "\n\n" + text[end:])
    return senv


def test_a_wrong_smtp_password_fails_the_draft_with_the_servers_535(
    mailstack: MailStack, tls_mailstack: TlsStack, tmp_path: Path
) -> None:
    """A provider-like submission port (STARTTLS, AUTH checked by Dovecot) refuses the
    login: failed, not retried, and the message says the login was refused."""
    tls_mailstack.stack.add_user(SUBMITTER, "right-pw")
    senv = _send_env_via(mailstack, tmp_path, _provider_smtp(
        tls_mailstack, port=tls_mailstack.stack.submission_port, security="starttls",
        password="wrong-pw"))  # fmt: skip
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    out = senv.cli("send")
    assert out.returncode == 1
    [after] = senv.rows()
    assert (after.state, after.attempts) == ("failed", 1)
    assert after.last_error is not None
    assert "535" in after.last_error and "login refused" in after.last_error
    assert "wrong-pw" not in out.stdout + out.stderr + after.last_error


def test_an_untrusted_certificate_fails_the_draft_and_nothing_is_sent(
    mailstack: MailStack, tls_mailstack: TlsStack, tmp_path: Path
) -> None:
    """Implicit TLS to a server whose CA is not trusted (no ca_file): failed with a
    certificate error, never retried in clear text."""
    tls_mailstack.stack.add_user(SUBMITTER, "right-pw")
    senv = _send_env_via(mailstack, tmp_path, _provider_smtp(
        tls_mailstack, port=tls_mailstack.stack.smtps_port, security="tls",
        password="right-pw", ca=False))  # fmt: skip
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    out = senv.cli("send")
    assert out.returncode == 1
    [after] = senv.rows()
    assert after.state == "failed"
    assert after.last_error is not None and "certificate" in after.last_error.lower()
