"""A fresh mailbox user and store per test, on the session's real mail stack."""

from __future__ import annotations

import email.utils
import itertools
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch.config import AccountSettings
from ghostwatch.store import MessageRow, ThreadRow, open_store
from ghostwatch.sync import sync_account
from mailbuilder import make_mail
from mailstack import MailStack

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
# Mail that Dovecot or Postfix generate carries the machine's date; what provokes it
# is dated well before any plausible machine clock so the order is always right.
LONG_AGO = datetime(2021, 3, 1, 10, 0, tzinfo=UTC)
_seq = itertools.count()


@dataclass
class Env:
    stack: MailStack
    address: str
    password: str
    account: AccountSettings
    sessions: sessionmaker[Session]
    db_url: str

    def sent(self, to: str, subject: str, msgid: str, days_ago: float, **kw: object) -> None:
        when = NOW - timedelta(days=days_ago)
        raw = make_mail(frm=self.address, to=to, subject=subject, msgid=msgid, date=when, **kw)  # type: ignore[arg-type]
        self.stack.append(self.address, "Sent", raw, when)

    def received(self, frm: str, subject: str, msgid: str, days_ago: float, **kw: object) -> None:
        when = NOW - timedelta(days=days_ago)
        raw = make_mail(frm=frm, to=self.address, subject=subject, msgid=msgid, date=when, **kw)  # type: ignore[arg-type]
        self.stack.append(self.address, "INBOX", raw, when)

    def sync(self, now: datetime = NOW) -> None:
        sync_account(self.account, self.sessions, now)

    def sync_after(self, generated: bytes) -> None:
        """Sync with the clock one day after a message the servers generated (a
        vacation reply, a bounce), whose Date is the machine's, not the test's."""
        header = BytesHeaderParser().parsebytes(generated)
        self.sync(email.utils.parsedate_to_datetime(header["Date"]) + timedelta(days=1))

    def thread_of(self, msgid: str) -> ThreadRow:
        with self.sessions() as db:
            tid = db.scalar(select(MessageRow.thread_id).where(MessageRow.message_id == msgid))
            row = db.get(ThreadRow, (self.account.name, tid))
            assert row is not None, f"no thread for {msgid}"
            return row

    def count(self) -> int:
        with self.sessions() as db:
            return int(db.scalar(select(func.count()).select_from(MessageRow)) or 0)


def account_for(stack: MailStack, address: str, password: str, **imap: object) -> AccountSettings:
    return AccountSettings.model_validate(
        {
            "name": address.split("@", maxsplit=1)[0].replace("+", "-"),
            "address": address,
            "imap": {
                "host": stack.host,
                "port": stack.imap_port,
                "security": "none",
                "username": address,
                "password": password,
                **imap,
            },
        }
    )


def make_env(mailstack: MailStack, tmp_path: Path) -> Env:
    """A fresh user (so tests never see each other's mail) and a fresh SQLite store."""
    address = f"alice{next(_seq)}-{os.getpid()}@example.test"
    password = "pw-" + address
    mailstack.add_user(address, password)
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    account = account_for(mailstack, address, password)
    return Env(mailstack, address, password, account, open_store(url), url)


def write_config(env: Env, path: Path, *, db_url: str | None = None, name: str | None = None,
                 password_command: str | None = None, extra: str = "") -> Path:  # fmt: skip
    """A config file for ``env``'s account, as a user would write it."""
    path.write_text(
        f"""
[database]
url = "{db_url or env.db_url}"

[[accounts]]
name = "{name or env.account.name}"
address = "{env.address}"
[accounts.imap]
host = "127.0.0.1"
port = {env.stack.imap_port}
security = "none"
username = "{env.address}"
password_command = "{password_command or "echo " + env.password}"
{extra}
"""
    )
    return path


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``ghostwatch --config CONFIG ARGS`` in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ghostwatch.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
