"""ghostwatch.smtp: one message handed over exactly once, and an honest outcome.

Success, refusals, login and TLS are tested against the real Postfix of a
MailStack (SMTP AUTH checked by Dovecot, STARTTLS and implicit TLS with a
throwaway trustme CA). What Postfix cannot be made to do on demand (a 421
greeting, 4yz replies, a connection dropped after the body, a dead QUIT, an
XOAUTH2 dialogue) is played by ``FaultPeer`` at the bottom of this file: a
scripted fault-injection peer, not an SMTP server.

Replies pinned from Postfix 3.7 / Dovecot 2.3:

* wrong password:   ``535 5.7.8 Error: authentication failed: (reason unavailable)``
* foreign domain:   ``554 5.7.1 <rcpt@not-a-test-domain.invalid>: Relay access denied``
* accepted:         ``250 2.0.0 Ok: queued as <queue id>``
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import email.utils
import re
import socket
import time
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from conftest import TlsStack
from structlog.testing import capture_logs

from ghostwatch.config import AccountSettings
from ghostwatch.smtp import SendOutcome, SendResult, send_message, send_message_sync
from mailstack import MailStack

SENDER = "alice@example.test"
SENDER_PW = "alice-s3cret-pw"
RCPT = "bob@client.test"
FOREIGN = "rcpt@not-a-test-domain.invalid"
# Binary on purpose: every byte value must survive base64, SMTP and delivery.
PDF = (
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n"
    + bytes(range(256))
    + b"\n%%EOF\n"
)


def _account(port: int, security: str = "none", **smtp: Any) -> AccountSettings:
    return AccountSettings.model_validate(
        {
            "name": "work",
            "address": SENDER,
            "imap": {"host": "127.0.0.1", "port": 1, "security": "none", "username": SENDER,
                     "password": "unused"},
            "smtp": {"host": "127.0.0.1", "port": port, "security": security,
                     "username": SENDER, "password": "unused", "timeout": 5, **smtp},
        }
    )  # fmt: skip


def _follow_up(to: str = RCPT, subject: str = "Following up on the quote") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Alice Freelance <{SENDER}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(email.utils.localtime())
    msg["Message-ID"] = email.utils.make_msgid(domain="example.test")
    msg["In-Reply-To"] = "<quote-1@example.test>"
    msg.set_content(
        "Hi Bob,\n\njust checking you got the quote (attached again).\n"
        ".this line starts with a dot and must arrive unchanged\n.\n\nAlice\n"
    )
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="quote-42.pdf")
    return msg


def _wire(msg: EmailMessage) -> bytes:
    """The bytes that must arrive. Flattening picks the MIME boundary and stores it in
    ``msg``, so call this before sending for the sent copy to use the same one."""
    return msg.as_bytes(policy=email.policy.SMTP)


def _send(account: AccountSettings, msg: EmailMessage, rcpts: Sequence[str] = (RCPT,),
          password: str = SENDER_PW, token_command: str | None = None) -> SendResult:  # fmt: skip
    return send_message_sync(
        account, password, msg, mail_from=SENDER, rcpts=rcpts, token_command=token_command
    )


def _postfix_log_line(stack: MailStack, pattern: str, timeout: float = 5) -> str:
    """The first maillog line matching ``pattern``, waiting for postlogd to write it."""
    deadline = time.monotonic() + timeout
    while True:
        text = stack.postfix_log.read_text(errors="replace") if stack.postfix_log.exists() else ""
        match = re.search(pattern, text, re.MULTILINE)
        if match:
            return match.group(0)
        if time.monotonic() > deadline:
            raise AssertionError(f"no maillog line matching {pattern!r}\n{stack.log_tails()}")
        time.sleep(0.05)


# ---- a Postfix with authenticated submission, STARTTLS and implicit TLS ------------


class Submission:
    def __init__(self, stack: MailStack, ca_file: Path) -> None:
        self.stack = stack
        self.ca_file = ca_file

    def starttls(self, **smtp: Any) -> AccountSettings:
        return _account(self.stack.submission_port, "starttls", ca_file=str(self.ca_file), **smtp)

    def implicit_tls(self, **smtp: Any) -> AccountSettings:
        return _account(self.stack.smtps_port, "tls", ca_file=str(self.ca_file), **smtp)


@pytest.fixture(scope="module")
def submission(tls_mailstack: TlsStack) -> Submission:
    """The session's provider-like stack (conftest ``tls_mailstack``) with this
    module's users."""
    stack = tls_mailstack.stack
    for address in (SENDER, RCPT, "carol@client.test", "dan@client.test"):
        stack.add_user(address, SENDER_PW if address == SENDER else "pw-" + address)
    return Submission(stack, tls_mailstack.ca_file)


@pytest.mark.mailstack
def test_starttls_and_login_deliver_the_message_byte_for_byte(submission: Submission) -> None:
    """STARTTLS with the configured CA, AUTH against Dovecot, 250 -> SENT; the INBOX copy
    ends with exactly the bytes sent (headers, dot-stuffed lines, the PDF), and the log
    has host, port, outcome and code but never the password."""
    msg = _follow_up()
    wire = _wire(msg)
    with capture_logs() as logs:
        result = _send(submission.starttls(), msg)
    assert result.outcome is SendOutcome.SENT, result
    assert result.code == 250
    assert re.fullmatch(r"accepted by 127\.0\.0\.1: 250 2\.0\.0 Ok: queued as \w+", result.message)

    [got] = submission.stack.wait_for_messages(RCPT, "INBOX", 1)
    assert got.endswith(wire)
    # Only trace fields were added in front (Return-Path, Delivered-To, Received).
    added = email.message_from_bytes(got[: -len(wire)] + b"\r\n").keys()
    assert set(added) <= {"Return-Path", "Delivered-To", "Received"}, added
    parsed = email.message_from_bytes(got, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    for name in ("From", "To", "Subject", "Message-ID", "In-Reply-To", "Date"):
        assert parsed[name] == msg[name]
    [pdf] = list(parsed.iter_attachments())
    assert pdf.get_filename() == "quote-42.pdf"
    assert pdf.get_content() == PDF
    body = parsed.get_body(("plain",))
    assert body is not None
    assert ".this line starts with a dot" in body.get_content()

    assert logs == [
        {"event": "smtp_send", "log_level": "info", "account": "work", "host": "127.0.0.1",
         "port": submission.stack.submission_port, "security": "starttls", "outcome": "sent",
         "code": 250, "step": "end of data"}
    ]  # fmt: skip
    assert SENDER_PW not in repr(logs)


@pytest.mark.mailstack
def test_implicit_tls_delivers(submission: Submission) -> None:
    """security = "tls" speaks TLS from the first byte (RFC 8314) and delivers."""
    msg = _follow_up(to="carol@client.test")
    wire = _wire(msg)
    result = _send(submission.implicit_tls(), msg, rcpts=["carol@client.test"])
    assert (result.outcome, result.code) == (SendOutcome.SENT, 250), result
    [got] = submission.stack.wait_for_messages("carol@client.test", "INBOX", 1)
    assert got.endswith(wire)


@pytest.mark.mailstack
@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_a_certificate_from_an_unknown_ca_is_failed_not_retried(
    submission: Submission, security: str
) -> None:
    """Without ca_file the trustme CA is unknown: FAILED with "not trusted", no code,
    and no second, unencrypted attempt."""
    port = submission.stack.smtps_port if security == "tls" else submission.stack.submission_port
    result = _send(_account(port, security), _follow_up())
    assert result.outcome is SendOutcome.FAILED
    assert result.code is None
    assert result.message.startswith(
        "TLS certificate for 127.0.0.1 not trusted: unable to get local issuer certificate"
    ), result.message


@pytest.mark.mailstack
def test_a_wrong_password_is_failed_with_postfix_535(submission: Submission) -> None:
    """Dovecot refuses the login, Postfix answers 535 5.7.8: FAILED with a message that
    says what to do and does not contain the password that was tried."""
    wrong = "not-the-password-42"
    result = _send(submission.starttls(), _follow_up(), password=wrong)
    assert result.outcome is SendOutcome.FAILED
    assert result.code == 535
    assert result.message == (
        "login refused for alice@example.test (wrong password or an app password is needed): "
        "535 5.7.8 Error: authentication failed: (reason unavailable)"
    )
    assert wrong not in result.message


@pytest.mark.mailstack
def test_a_foreign_domain_is_refused_at_rcpt_with_554(submission: Submission) -> None:
    """Postfix refuses to relay outside its domains even after AUTH: 554 at RCPT is FAILED."""
    result = _send(submission.starttls(), _follow_up(to=FOREIGN), rcpts=[FOREIGN])
    assert result.outcome is SendOutcome.FAILED
    assert result.code == 554
    assert result.message == (
        "127.0.0.1 refused 1 of 1 recipient (rcpt@not-a-test-domain.invalid: 554 5.7.1 "
        "<rcpt@not-a-test-domain.invalid>: Relay access denied); nothing was sent to anyone"
    )


@pytest.mark.mailstack
def test_one_refused_recipient_of_two_means_no_data_at_all(submission: Submission) -> None:
    """dan is accepted, the foreign address refused: FAILED, and Postfix's own session
    summary shows RCPT 1 of 2 and no DATA command, so dan gets nothing."""
    result = _send(submission.starttls(), _follow_up(), rcpts=["dan@client.test", FOREIGN])
    assert result.outcome is SendOutcome.FAILED
    assert result.code == 554
    assert "refused 1 of 2 recipients" in result.message
    line = _postfix_log_line(
        submission.stack, r"^.*submission/smtpd.*disconnect from .* rcpt=1/2 .*$"
    )
    assert " data=" not in line, line


@pytest.mark.mailstack
def test_starttls_required_but_not_offered_is_failed(mailstack: MailStack) -> None:
    """The session stack's plain port offers no STARTTLS: refuse before AUTH and MAIL."""
    result = _send(_account(mailstack.smtp_port, "starttls"), _follow_up())
    assert result.outcome is SendOutcome.FAILED
    assert result.code is None
    assert "does not offer STARTTLS" in result.message
    assert "nothing was sent" in result.message


@pytest.mark.mailstack
def test_a_loopback_relay_without_auth_is_used_without_logging_in(mailstack: MailStack) -> None:
    """security = "none" on loopback and no AUTH offered (a local relay): send anyway."""
    address = f"relay-{time.monotonic_ns()}@client.test"
    mailstack.add_user(address, "pw")
    msg = _follow_up(to=address)
    wire = _wire(msg)
    result = _send(_account(mailstack.smtp_port, "none"), msg, rcpts=[address])
    assert (result.outcome, result.code) == (SendOutcome.SENT, 250), result
    [got] = mailstack.wait_for_messages(address, "INBOX", 1)
    assert got.endswith(wire)


def test_a_closed_port_is_retry() -> None:
    """Connection refused: nothing went out, so RETRY, with no reply code."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _send(_account(port), _follow_up())
    assert result == SendResult(
        SendOutcome.RETRY,
        None,
        f"cannot connect to 127.0.0.1:{port} (Connection refused) at connect; "
        "nothing was sent, try again later",
    )


# ---- fault injection ------------------------------------------------------------

DROP = b"<drop the connection>"
HANG = b"<never answer>"
_SCRIPT: dict[str, bytes | list[bytes]] = {
    "CONNECT": b"220 fault.test ESMTP fault-injection peer",
    "EHLO": b"250-fault.test\r\n250-AUTH PLAIN LOGIN XOAUTH2\r\n250-8BITMIME\r\n250 SIZE 10000000",
    "AUTH": b"235 2.7.0 Authentication successful",
    "MAIL": b"250 2.1.0 Ok",
    "RCPT": b"250 2.1.5 Ok",
    "DATA": b"354 End data with <CR><LF>.<CR><LF>",
    "END": b"250 2.0.0 Ok: queued as FAULT1",
    "QUIT": b"221 2.0.0 Bye",
    "": b"535 5.7.8 Username and Password not accepted",
}


class FaultPeer:
    """FAULT-INJECTION PEER, not an SMTP server: a loopback listener that answers each
    command line with a fixed reply from a script keyed by verb ("CONNECT" is the
    greeting, "END" the reply to the end of data, "" an empty line). A list is replied
    in turn; DROP closes the connection instead of replying, HANG never replies."""

    def __init__(self, **script: bytes | list[bytes]) -> None:
        self.script = {**_SCRIPT, **script}
        self.commands: list[bytes] = []
        self.body = b""
        self.connections = 0
        self._handlers: list[asyncio.Task[Any]] = []

    def verbs(self) -> list[str]:
        return [line.split(b" ")[0].strip().decode().upper() for line in self.commands]

    def _reply(self, key: str) -> bytes:
        reply = self.script[key]
        if isinstance(reply, list):
            return reply.pop(0) if len(reply) > 1 else reply[0]
        return reply

    async def _answer(self, writer: asyncio.StreamWriter, reply: bytes) -> bool:
        if reply == DROP:
            return False
        if reply == HANG:
            await asyncio.sleep(3600)
        writer.write(reply + b"\r\n")
        await writer.drain()
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.append(task)
        try:
            if not await self._answer(writer, self._reply("CONNECT")):
                return
            while line := await reader.readline():
                self.commands.append(line)
                verb = line.split(b" ")[0].strip().decode().upper()
                reply = self._reply(verb)
                if not await self._answer(writer, reply):
                    return
                if verb == "DATA" and reply.startswith(b"354"):
                    self.body = await reader.readuntil(b"\r\n.\r\n")
                    if not await self._answer(writer, self._reply("END")):
                        return
                if verb == "QUIT":
                    return
        finally:
            writer.close()

    def send(self, security: str = "none", password: str = SENDER_PW,
             rcpts: Sequence[str] = (RCPT,), token_command: str | None = None,
             **smtp: Any) -> SendResult:  # fmt: skip
        """Run one send_message against this peer, in a fresh event loop."""

        async def run() -> SendResult:
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            try:
                return await send_message(
                    _account(port, security, **smtp), password, _follow_up(),
                    mail_from=SENDER, rcpts=rcpts, token_command=token_command,
                )  # fmt: skip
            finally:
                server.close()
                for handler in self._handlers:
                    handler.cancel()

        return asyncio.run(run())


def test_421_at_greeting_is_retry() -> None:
    """421 (service not available, RFC 5321 section 3.8) before anything: RETRY."""
    peer = FaultPeer(CONNECT=b"421 4.3.2 fault.test busy, try later")
    result = peer.send()
    assert (result.outcome, result.code) == (SendOutcome.RETRY, 421)
    assert "421 4.3.2 fault.test busy, try later" in result.message
    assert peer.verbs() == []


@pytest.mark.parametrize(
    ("script", "reply"),
    [
        ({"MAIL": b"452 4.3.1 Insufficient system storage"}, 452),
        ({"RCPT": b"451 4.7.1 Greylisted, try again in 5 minutes"}, 451),
        ({"RCPT": b"450 4.2.0 Mailbox busy"}, 450),
        ({"DATA": b"421 4.4.2 Timeout, closing"}, 421),
        ({"END": b"451 4.3.0 Temporary queue failure"}, 451),
    ],
)
def test_any_4yz_is_retry_with_the_servers_text(script: dict[str, bytes], reply: int) -> None:
    """A transient reply at MAIL, RCPT, DATA or the end of data: RETRY, server text kept."""
    result = FaultPeer(**script).send()
    assert (result.outcome, result.code) == (SendOutcome.RETRY, reply), result
    assert next(iter(script.values())).decode() in result.message
    assert result.message.endswith("try again later")


@pytest.mark.parametrize(
    ("script", "reply"),
    [
        ({"MAIL": b"553 5.7.1 Sender address rejected: not owned by user"}, 553),
        ({"RCPT": b"550 5.1.1 <bob@client.test>: Recipient address rejected: User unknown"}, 550),
        ({"END": b"554 5.7.1 Message rejected as spam"}, 554),
    ],
)
def test_any_5yz_is_failed_with_the_servers_text(script: dict[str, bytes], reply: int) -> None:
    result = FaultPeer(**script).send()
    assert (result.outcome, result.code) == (SendOutcome.FAILED, reply), result
    assert next(iter(script.values())).decode() in result.message


def test_a_drop_after_the_body_is_uncertain() -> None:
    """The whole message reached the peer, then the line went dead before the 250:
    it may have been delivered, so UNCERTAIN, never RETRY."""
    peer = FaultPeer(END=DROP)
    result = peer.send()
    assert (result.outcome, result.code) == (SendOutcome.UNCERTAIN, None), result
    assert "may have been delivered" in result.message
    assert peer.body.endswith(b"\r\n.\r\n")
    assert b"quote-42.pdf" in peer.body


def test_no_reply_after_the_body_within_the_timeout_is_uncertain() -> None:
    peer = FaultPeer(END=HANG)
    started = time.monotonic()
    result = peer.send(timeout=0.3)
    assert time.monotonic() - started < 3
    assert result.outcome is SendOutcome.UNCERTAIN, result
    assert "no reply from 127.0.0.1 within 0.3s" in result.message


@pytest.mark.parametrize("verb", ["EHLO", "AUTH", "MAIL", "RCPT", "DATA"])
def test_no_reply_before_the_body_within_the_timeout_is_retry(verb: str) -> None:
    """Every step has a timeout; one that expires before the body was sent is RETRY."""
    peer = FaultPeer(**{verb: HANG})
    started = time.monotonic()
    result = peer.send(timeout=0.3)
    assert time.monotonic() - started < 3
    assert (result.outcome, result.code) == (SendOutcome.RETRY, None), result
    assert "no reply from 127.0.0.1 within 0.3s" in result.message
    assert peer.body == b""


def test_a_drop_at_the_data_command_is_retry() -> None:
    """DATA was sent but no 354 came back: the body never left, so nothing can arrive."""
    peer = FaultPeer(DATA=DROP)
    result = peer.send()
    assert (result.outcome, result.code) == (SendOutcome.RETRY, None), result
    assert "connection to 127.0.0.1 lost at DATA" in result.message


@pytest.mark.parametrize("quit_reply", [DROP, HANG, b"500 5.5.1 what?"])
def test_the_250_makes_it_sent_whatever_quit_does(quit_reply: bytes) -> None:
    """After the final 250 the message is the server's: QUIT dropped, unanswered or
    refused changes nothing."""
    peer = FaultPeer(QUIT=quit_reply)
    result = peer.send(timeout=0.3)
    assert result == SendResult(
        SendOutcome.SENT, 250, "accepted by 127.0.0.1: 250 2.0.0 Ok: queued as FAULT1"
    )
    assert peer.verbs()[-1] == "QUIT"


def test_starttls_not_offered_means_no_auth_and_no_mail() -> None:
    """The peer offers AUTH but not STARTTLS: nothing after EHLO but QUIT is sent."""
    peer = FaultPeer()
    result = peer.send("starttls")
    assert result.outcome is SendOutcome.FAILED
    assert "does not offer STARTTLS" in result.message
    assert peer.verbs() == ["EHLO", "QUIT"]
    assert not any(SENDER_PW.encode() in line or b"AUTH" in line for line in peer.commands)


def test_password_login_uses_auth_plain() -> None:
    peer = FaultPeer()
    assert peer.send().outcome is SendOutcome.SENT
    [auth] = [line for line in peer.commands if line.startswith(b"AUTH")]
    verb, mech, blob = auth.split()
    assert (verb, mech) == (b"AUTH", b"PLAIN")
    assert base64.b64decode(blob) == f"\0{SENDER}\0{SENDER_PW}".encode()


def test_xoauth2_sends_the_sasl_string_with_the_first_line_of_token_command() -> None:
    peer = FaultPeer()
    result = peer.send(token_command="printf 'ya29.tok-xyz\\nignored second line\\n'")
    assert result.outcome is SendOutcome.SENT, result
    [auth] = [line for line in peer.commands if line.startswith(b"AUTH")]
    verb, mech, blob = auth.split()
    assert (verb, mech) == (b"AUTH", b"XOAUTH2")
    assert base64.b64decode(blob) == b"user=alice@example.test\x01auth=Bearer ya29.tok-xyz\x01\x01"


def test_a_rejected_access_token_is_failed_after_the_error_challenge() -> None:
    """Gmail answers a bad token with 334 and a base64 JSON error; the client sends an
    empty line and gets 535 (RFC 7628 section 3.2.3)."""
    challenge = base64.b64encode(b'{"status":"401","schemes":"bearer"}')
    peer = FaultPeer(AUTH=b"334 " + challenge)
    with capture_logs() as logs:
        result = peer.send(token_command="echo expired-token-123")
    assert result.outcome is SendOutcome.FAILED
    assert result.code == 535
    assert result.message.startswith(
        "login refused for alice@example.test (the access token from token_command was rejected)"
    )
    assert peer.verbs() == ["EHLO", "AUTH", "", "QUIT"]
    assert "expired-token-123" not in result.message + repr(logs)


def test_a_failing_token_command_is_failed_without_connecting() -> None:
    peer = FaultPeer()
    result = peer.send(
        token_command="echo secret-on-stdout; echo 'refresh token expired' >&2; exit 3"
    )
    assert result == SendResult(
        SendOutcome.FAILED,
        None,
        "work/smtp: token_command exited with 3: refresh token expired; nothing was sent",
    )
    assert peer.connections == 0


def test_xoauth2_not_offered_is_failed() -> None:
    peer = FaultPeer(EHLO=b"250-fault.test\r\n250 AUTH PLAIN LOGIN")
    result = peer.send(token_command="echo tok")
    assert result.outcome is SendOutcome.FAILED
    assert "does not offer AUTH XOAUTH2" in result.message
    assert "AUTH" not in peer.verbs()


def test_the_password_never_reaches_the_message_or_the_log() -> None:
    """Even a server that echoes it back in its refusal."""
    peer = FaultPeer(AUTH=b"535 5.7.8 bad credentials: " + SENDER_PW.encode())
    with capture_logs() as logs:
        result = peer.send()
    assert result.outcome is SendOutcome.FAILED
    assert SENDER_PW not in result.message
    assert "***" in result.message
    assert SENDER_PW not in repr(logs)
    assert logs[-1]["outcome"] == "failed"
    assert logs[-1]["code"] == 535


def test_454_at_auth_is_retry() -> None:
    result = FaultPeer(AUTH=b"454 4.7.0 Temporary authentication failure").send()
    assert (result.outcome, result.code) == (SendOutcome.RETRY, 454)


@pytest.mark.parametrize(
    ("rcpt_replies", "outcome", "code"),
    [
        ([b"250 2.1.5 Ok", b"550 5.1.1 User unknown"], SendOutcome.FAILED, 550),
        ([b"250 2.1.5 Ok", b"452 4.5.3 Too many recipients"], SendOutcome.FAILED, 452),
        ([b"451 4.7.1 Greylisted", b"452 4.5.3 Too many recipients"], SendOutcome.RETRY, 451),
    ],
)
def test_partial_refusal_sends_no_data(
    rcpt_replies: list[bytes], outcome: SendOutcome, code: int
) -> None:
    """One refused recipient of two: FAILED (a human decides), all refused with 4yz:
    RETRY; either way DATA is never sent."""
    peer = FaultPeer(RCPT=rcpt_replies)
    result = peer.send(rcpts=[RCPT, "carol@client.test"])
    assert (result.outcome, result.code) == (outcome, code), result
    assert "DATA" not in peer.verbs()
    assert peer.verbs().count("RCPT") == 2
