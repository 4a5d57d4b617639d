"""Approve by replying, against the real Postfix and Dovecot.

The owner (the account's own address) gets the digest through Postfix; replies are
delivered through Postfix to the Reply-To plus-address (``recipient_delimiter = +``
files them in the owner's INBOX); `ghostwatch run --once` reads them and acts.
"""

from __future__ import annotations

import email
import email.policy
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from test_send import AT, ORIGINAL, SendEnv, make_send_env

from ghostwatch.store import HandledReply
from mailenv import NOW
from mailstack import MailStack

pytestmark = pytest.mark.mailstack


@dataclass
class Digest:
    msg: EmailMessage
    subject: str
    message_id: str
    reply_to: str
    text: str


def _parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _owner_inbox(senv: SendEnv) -> list[EmailMessage]:
    return [_parse(r) for r in senv.env.stack.messages(senv.env.address, "INBOX")]


def _send_digest(senv: SendEnv, now: str = AT) -> Digest:
    """`digest --send`, then wait for it in the owner's INBOX."""
    before = {m["Message-ID"] for m in _owner_inbox(senv)}
    out = senv.cli("digest", "--send", now=now)
    assert out.returncode == 0 and "digest sent" in out.stdout, out.stdout + out.stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        new = [m for m in _owner_inbox(senv)
               if m["Message-ID"] not in before and m["X-Ghostwatch"] == "digest"]  # fmt: skip
        if new:
            msg = new[0]
            body = msg.get_body(("plain",))
            assert body is not None
            return Digest(msg, str(msg["Subject"]), str(msg["Message-ID"]),
                          str(msg["Reply-To"]), body.get_content())  # fmt: skip
        time.sleep(0.1)
    raise AssertionError("the digest never reached the owner's INBOX")


def _reply(
    senv: SendEnv,
    digest: Digest,
    text: str,
    *,
    frm: str | None = None,
    subject: str | None = None,
    in_reply_to: str | None = None,
    to: str | None = None,
    headers: dict[str, str] | None = None,
    quote: bool = True,
) -> str:
    """The owner (or ``frm``) answers the digest through Postfix; returns its Message-ID."""
    msg = EmailMessage()
    msg["From"] = frm or senv.env.address
    msg["To"] = to or digest.reply_to
    msg["Subject"] = subject if subject is not None else "Re: " + digest.subject
    msg["Date"] = format_datetime(NOW + timedelta(minutes=5))
    msg["Message-ID"] = make_msgid(domain="example.test")
    msg["In-Reply-To"] = in_reply_to if in_reply_to is not None else digest.message_id
    msg["References"] = msg["In-Reply-To"]
    for name, value in (headers or {}).items():
        msg[name] = value
    quoted = "\n".join("> " + line for line in digest.text.splitlines())
    body = text + (
        f"\n\nOn Fri, 20 Nov 2026 at 10:00, ghostwatch wrote:\n{quoted}\n" if quote else ""
    )
    msg.set_content(body)
    before = len(senv.env.stack.messages(senv.env.address, "INBOX"))
    senv.env.stack.deliver(str(msg["From"]), [senv.env.address], msg.as_bytes())
    senv.env.stack.wait_for_messages(senv.env.address, "INBOX", before + 1)
    return str(msg["Message-ID"])


def _handled(senv: SendEnv, message_id: str) -> str:
    with senv.env.sessions() as db:
        row = db.get(HandledReply, (senv.env.account.name, message_id))
        assert row is not None, f"reply {message_id} was never looked at"
        return row.outcome


@pytest.fixture
def queued(mailstack: MailStack, tmp_path: Path) -> SendEnv:
    """An account with one nudge queued for approval."""
    senv = make_send_env(mailstack, tmp_path)
    out = senv.cli("send")
    assert out.returncode == 0, out.stderr
    assert [r.state for r in senv.rows()] == ["queued"]
    return senv


def test_the_digest_reaches_the_owner_with_the_draft_and_how_to_answer(queued: SendEnv) -> None:
    digest = _send_digest(queued)
    [row] = queued.rows()
    assert "[gw:" in digest.subject
    token = digest.subject.split("[gw:")[1].rstrip("]")
    assert digest.reply_to == queued.env.address.replace("@", f"+gw-{token}@")
    assert digest.msg["Auto-Submitted"] == "auto-generated"
    assert "1." in digest.text and queued.client in digest.text
    assert row.body_text.splitlines()[2][:40] in digest.text
    assert "send 1" in digest.text
    assert digest.msg.get_body(("html",)) is not None


def test_send_1_in_a_reply_sends_the_draft_threaded_and_confirms(queued: SendEnv) -> None:
    """The owner answers "send 1" from their mail client: the draft reaches the client
    under the original thread, and a confirmation (automated) comes back."""
    digest = _send_digest(queued)
    reply_id = _reply(queued, digest, "send 1\n\nThanks,\nAlice")
    out = queued.cli("run", "--once")
    assert out.returncode == 0, out.stdout + out.stderr
    assert _handled(queued, reply_id) == "accepted"
    [row] = queued.rows()
    assert row.state == "sent"
    [got] = queued.client_inbox()
    assert got["In-Reply-To"] == ORIGINAL and got["Message-ID"] == row.message_id
    deadline = time.monotonic() + 20
    confirmations: list[EmailMessage] = []
    while time.monotonic() < deadline and not confirmations:
        confirmations = [m for m in _owner_inbox(queued) if m["X-Ghostwatch"] == "confirmation"]
        time.sleep(0.1)
    [confirmation] = confirmations
    assert confirmation["Auto-Submitted"] == "auto-replied"
    body = confirmation.get_body(("plain",))
    assert body is not None and "send 1: approved" in body.get_content()
    # The confirmation itself is never taken as a command.
    again = queued.cli("run", "--once", now=(NOW + timedelta(minutes=30)).isoformat())
    assert again.returncode == 0
    assert len(queued.client_inbox()) == 1


def _refused(senv: SendEnv, reply_id: str, reason: str, now: str = AT) -> None:
    out = senv.cli("run", "--once", now=now)
    assert out.returncode == 0, out.stdout + out.stderr
    outcome = _handled(senv, reply_id)
    assert outcome.startswith("refused") and reason in outcome, outcome
    assert "digest_reply_refused" in out.stderr and reason in out.stderr
    assert [r.state for r in senv.rows()] == ["queued"]
    assert senv.client_inbox() == []


def test_a_forged_reply_without_the_token_is_refused(queued: SendEnv) -> None:
    digest = _send_digest(queued)
    reply_id = _reply(queued, digest, "send 1", subject="Re: your drafts", to=queued.env.address)
    _refused(queued, reply_id, "no digest token")


def test_a_wrong_token_is_refused(queued: SendEnv) -> None:
    digest = _send_digest(queued)
    wrong = "a" * 26
    reply_id = _reply(queued, digest, "send 1", subject=f"Re: drafts [gw:{wrong}]",
                      to=queued.env.address.replace("@", f"+gw-{wrong}@"))  # fmt: skip
    _refused(queued, reply_id, "belongs to no digest")


def test_an_expired_token_is_refused(queued: SendEnv) -> None:
    digest = _send_digest(queued)
    reply_id = _reply(queued, digest, "send 1")
    _refused(queued, reply_id, "token expired", now=(NOW + timedelta(hours=73)).isoformat())


def test_a_reply_dated_a_month_past_the_token_is_not_read(queued: SendEnv) -> None:
    # Replies are looked for among recent mail only (through the date index): one dated
    # more than token_hours (72) + 30 days before now answers long-expired commands.
    digest = _send_digest(queued)
    reply_id = _reply(queued, digest, "send 1")  # dated NOW + 5 minutes
    later = NOW + timedelta(hours=72, days=30, minutes=10)
    out = queued.cli("run", "--once", now=later.isoformat())
    assert out.returncode == 0, out.stdout + out.stderr
    with queued.env.sessions() as db:
        assert db.get(HandledReply, (queued.env.account.name, reply_id)) is None
    assert queued.client_inbox() == []


def test_a_replayed_command_acts_once(queued: SendEnv) -> None:
    """The same "send 1" again (a new message with the same token): refused for the
    item, and the client still has one copy."""
    digest = _send_digest(queued)
    _reply(queued, digest, "send 1")
    assert queued.cli("run", "--once").returncode == 0
    assert [r.state for r in queued.rows()] == ["sent"]
    replay_id = _reply(queued, digest, "send 1")
    later = (NOW + timedelta(minutes=20)).isoformat()
    assert queued.cli("run", "--once", now=later).returncode == 0
    assert _handled(queued, replay_id) == "accepted"  # the token is good; the item is spent
    assert len(queued.client_inbox()) == 1
    with queued.env.sessions() as db:
        assert db.scalar(select(HandledReply.outcome).where(HandledReply.message_id == replay_id))


def test_a_token_from_another_digest_is_refused(queued: SendEnv) -> None:
    """Reply to digest A carrying digest B's token: refused."""
    first = _send_digest(queued)
    second = _send_digest(queued, now=(NOW + timedelta(minutes=1)).isoformat())
    reply_id = _reply(queued, first, "send 1", subject="Re: " + second.subject,
                      to=second.reply_to, in_reply_to=first.message_id)  # fmt: skip
    _refused(queued, reply_id, "not a reply to the digest the token belongs to")


def test_a_third_party_answering_a_forwarded_digest_is_refused(queued: SendEnv) -> None:
    digest = _send_digest(queued)
    reply_id = _reply(queued, digest, "send 1", frm="mallory@elsewhere.test")
    _refused(queued, reply_id, "not from one of your addresses")


def test_a_sieve_vacation_reply_to_the_digest_is_refused(
    queued: SendEnv, mailstack: MailStack
) -> None:
    """A real Sieve vacation responder answers a copy of the digest: the auto-reply
    carries the digest's token and references, and is refused as automated."""
    digest = _send_digest(queued)
    away = f"away{time.monotonic_ns()}@example.test"
    mailstack.add_user(away, "pw")
    mailstack.set_vacation(away, "Out of office", "Back on Monday.")
    copy = _parse(digest.msg.as_bytes())
    del copy[
        "Auto-Submitted"
    ]  # a responder never answers automated mail: send it as a person would
    del copy["To"]
    copy["To"] = away
    mailstack.deliver(queued.env.address, [away], copy.as_bytes())
    deadline = time.monotonic() + 20
    vacation: list[EmailMessage] = []
    while time.monotonic() < deadline and not vacation:
        vacation = [m for m in _owner_inbox(queued)
                    if str(m["Auto-Submitted"] or "").startswith("auto-replied")
                    and m["In-Reply-To"] == digest.message_id]  # fmt: skip
        time.sleep(0.1)
    assert vacation, "no vacation reply arrived"
    _refused(queued, str(vacation[0]["Message-ID"]), "automated")


def test_a_command_only_in_the_quoted_digest_does_nothing(queued: SendEnv) -> None:
    """The owner hits reply and sends without writing: "send 1" appears only in the
    quoted digest; nothing is approved."""
    digest = _send_digest(queued)
    assert "send 1" in digest.text
    reply_id = _reply(queued, digest, "")
    assert queued.cli("run", "--once").returncode == 0
    assert _handled(queued, reply_id) == "accepted"
    assert [r.state for r in queued.rows()] == ["queued"]
    assert queued.client_inbox() == []


def test_an_authentication_pass_below_a_real_fail_is_not_trusted(
    mailstack: MailStack, tmp_path: Path
) -> None:
    """require_auth = ["dkim"] with authserv_id: the topmost header of that authserv-id
    says fail; a pass added below it (by the sender) does not count."""
    senv = make_send_env(mailstack, tmp_path, sending="\n[approval]\n"
                         'authserv_id = "mx.example.test"\nrequire_auth = ["dkim"]\n')  # fmt: skip
    senv.cli("send")
    digest = _send_digest(senv)
    reply_id = _reply(senv, digest, "send 1", headers={
        "Authentication-Results": "mx.example.test; dkim=fail header.d=example.test",
    })  # fmt: skip
    # The forged pass sits below the real fail (headers are prepended in transit, so
    # anything the sender wrote is further down).
    _add_header_below(senv, reply_id)
    _refused(senv, reply_id, "authentication")


def _add_header_below(senv: SendEnv, reply_id: str) -> None:
    """Rewrite the delivered reply with a forged A-R pass at the bottom of its header."""
    client = senv.env.stack.imap(senv.env.address)
    try:
        client.select_folder("INBOX")
        [uid] = client.search(["HEADER", "Message-ID", reply_id])
        raw: Any = client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
        head, _, body = bytes(raw).partition(b"\r\n\r\n")
        forged = (
            head + b"\r\nAuthentication-Results: mx.example.test; dkim=pass header.d=example.test"
        )
        client.delete_messages([uid])
        client.expunge()
        client.append("INBOX", forged + b"\r\n\r\n" + body)
    finally:
        client.logout()


def test_edit_then_send_in_one_reply_sends_the_new_text_to_the_same_recipient(
    queued: SendEnv,
) -> None:
    digest = _send_digest(queued)
    _reply(queued, digest, "edit 1\nHi Bob,\n\nany news on the quote?\n\nAlice\nend\nsend 1")
    assert queued.cli("run", "--once").returncode == 0
    [row] = queued.rows()
    assert row.state == "sent" and row.to_addr == queued.client
    [got] = queued.client_inbox()
    body = got.get_body(("plain",))
    assert body is not None and "any news on the quote?" in body.get_content()
    assert "slipped down your inbox" not in body.get_content()


def test_send_after_the_client_answered_cancels_and_says_so(queued: SendEnv) -> None:
    """The client answers between the digest and the owner's "send 1": the draft is
    cancelled at approval, and the confirmation says why."""
    digest = _send_digest(queued)
    queued.env.received(queued.client, "Re: Quote for the new website", "<ok@client.test>",
                        days_ago=-0.001, in_reply_to=ORIGINAL)  # fmt: skip
    _reply(queued, digest, "send 1")
    assert queued.cli("run", "--once").returncode == 0
    assert [r.state for r in queued.rows()] == ["cancelled"]
    assert queued.client_inbox() == []
    deadline = time.monotonic() + 20
    texts: list[str] = []
    while time.monotonic() < deadline and not texts:
        texts = [m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                 for m in _owner_inbox(queued) if m["X-Ghostwatch"] == "confirmation"]  # fmt: skip
        time.sleep(0.1)
    assert texts and "send 1: cancelled" in texts[0]


def test_the_daemon_pass_sends_one_digest_per_scheduled_time(queued: SendEnv) -> None:
    """run --once at 08:31 on a Monday (UTC zone): the digest goes; at 09:00 it is not
    sent again; nothing goes on Saturday."""
    monday = datetime(2026, 11, 23, 8, 31, tzinfo=UTC)
    assert queued.cli("run", "--once", now=monday.isoformat()).returncode == 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not _digests(queued):
        time.sleep(0.1)
    assert len(_digests(queued)) == 1
    assert (
        queued.cli("run", "--once", now=(monday + timedelta(minutes=29)).isoformat()).returncode
        == 0
    )
    saturday = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    assert queued.cli("run", "--once", now=saturday.isoformat()).returncode == 0
    queued.client_inbox()  # lets Postfix deliver anything handed to it so far
    assert len(_digests(queued)) == 1


def _digests(senv: SendEnv) -> list[EmailMessage]:
    return [m for m in _owner_inbox(senv) if m["X-Ghostwatch"] == "digest"]


def test_snooze_from_the_command_line(queued: SendEnv) -> None:
    [row] = queued.rows()
    out = queued.cli("snooze", str(row.id), "3d")
    assert out.returncode == 0, out.stderr
    assert "snoozed until Mon 23 Nov 2026" in out.stdout
    [after] = queued.rows()
    assert after.state == "queued" and after.due_at.date().isoformat() == "2026-11-23"
    bad = queued.cli("snooze", str(row.id), "whenever")
    assert bad.returncode == 2 and "say how long" in bad.stderr
