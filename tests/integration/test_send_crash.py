"""Crash injection on the send path: SIGKILL at each point, restart, never twice.

Each test approves the due nudge, runs ``ghostwatch send`` in a subprocess that
kills itself at one failpoint (:mod:`ghostwatch.failpoints`), then runs
``ghostwatch send`` again as the restarted service would, and once more later. The
client's mailbox must hold at most one copy, and the row must end ``sent`` (when
the mailbox proves it went out) or ``uncertain`` (when nothing proves it either
way), never be sent a second time.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from test_send import make_send_env

from ghostwatch.failpoints import POINTS
from ghostwatch.store import MessageRow
from mailenv import NOW
from mailstack import MailStack

pytestmark = pytest.mark.mailstack

CRASHRUN = Path(__file__).resolve().parents[1] / "crashrun.py"

#: Point -> (copies the client ends up with, final state of the row).
#: before_smtp: claimed, nothing sent; nothing proves it did not go out either, so
#: the row stays uncertain for the user to settle. after_data/after_250: the server
#: has it; the Sent copy was never made, so uncertain. after_append/before_commit:
#: the copy in Sent proves it went out: settled as sent at restart.
EXPECTED = {
    "before_smtp": (0, "uncertain"),
    "after_data": (1, "uncertain"),
    "after_250": (1, "uncertain"),
    "after_append": (1, "sent"),
    "before_commit": (1, "sent"),
}


def test_every_failpoint_has_an_expectation() -> None:
    assert set(EXPECTED) == set(POINTS)


@pytest.mark.parametrize("point", POINTS)
def test_a_kill_at_each_point_never_sends_twice(
    mailstack: MailStack, tmp_path: Path, point: str
) -> None:
    senv = make_send_env(mailstack, tmp_path)
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))

    crashed = subprocess.run(
        [sys.executable, str(CRASHRUN), point, "--config", str(senv.config),
         "--now", NOW.isoformat(), "send"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert [r.state for r in senv.rows()] == ["sending"]

    later = NOW + timedelta(minutes=30)
    restarted = senv.cli("send", now=later.isoformat())
    copies, state = EXPECTED[point]
    assert [r.state for r in senv.rows()] == [state], restarted.stdout + restarted.stderr
    if state == "uncertain":
        assert "uncertain" in restarted.stdout
        assert "did this go out?" in senv.cli("queue").stdout
    # And the day after, the service still does not send it again.
    senv.cli("send", now=(NOW + timedelta(days=1, hours=1)).isoformat())
    assert [r.state for r in senv.rows()] == [state]
    inbox = senv.client_inbox()
    assert len([m for m in inbox if m["Message-ID"] == row.message_id]) == copies
    assert len(inbox) == copies
    in_sent = [m for m in senv.sent_folder() if m["Message-ID"] == row.message_id]
    assert len(in_sent) == (1 if point in ("after_append", "before_commit") else 0)


def test_an_uncertain_send_is_settled_by_the_clients_reply_quoting_it(
    mailstack: MailStack, tmp_path: Path
) -> None:
    """Killed after the 250, no copy in Sent: the client's answer, whose In-Reply-To is
    our Message-ID, proves it went out; the row is settled as sent and nothing is
    resent."""
    senv = make_send_env(mailstack, tmp_path)
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    crashed = subprocess.run(
        [sys.executable, str(CRASHRUN), "after_250", "--config", str(senv.config),
         "--now", NOW.isoformat(), "send"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL
    senv.env.received(senv.client, "Re: Re: Quote for the new website", "<thanks@client.test>",
                      days_ago=-0.1, in_reply_to=row.message_id)  # fmt: skip
    out = senv.cli("send", now=(NOW + timedelta(hours=4)).isoformat())
    assert "settled" in out.stdout, out.stdout
    [after] = senv.rows()
    assert after.state == "sent"
    assert len(senv.client_inbox()) == 1


def test_a_copy_only_in_drafts_does_not_settle_an_uncertain_send(
    mailstack: MailStack, tmp_path: Path
) -> None:
    """Only Sent (or a reply) proves a message went out: the same Message-ID in a
    synced Drafts folder leaves the row uncertain."""
    senv = make_send_env(mailstack, tmp_path)
    senv.config.write_text(
        senv.config.read_text().replace(
            'password_command = "echo pw-', 'folders = ["Drafts"]\npassword_command = "echo pw-', 1
        )
    )
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    crashed = subprocess.run(
        [sys.executable, str(CRASHRUN), "before_smtp", "--config", str(senv.config),
         "--now", NOW.isoformat(), "send"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL
    draft = (
        f"From: {senv.env.address}\r\nTo: {senv.client}\r\nSubject: Re: Quote\r\n"
        f"Message-ID: {row.message_id}\r\nDate: Fri, 20 Nov 2026 10:00:00 +0000\r\n\r\ndraft\r\n"
    ).encode()
    senv.env.stack.append(senv.env.address, "Drafts", draft, NOW)
    out = senv.cli("send", now=(NOW + timedelta(hours=1)).isoformat())
    assert "Drafts" in senv.config.read_text()
    assert "settled" not in out.stdout
    with senv.env.sessions() as db:
        synced = db.scalars(select(MessageRow.id).where(MessageRow.message_id == row.message_id))
        assert len(list(synced)) == 1, "the Drafts copy was synced, so it could have misled"
    assert [r.state for r in senv.rows()] == ["uncertain"]
    assert senv.client_inbox() == []
