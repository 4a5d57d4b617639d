"""``ghostwatch doctor``: is everything in place for the daemon to do its job?

Each check logs in, looks, and logs out; nothing is sent and the mailbox is not
changed (folders are listed, not opened for writing). The result is a list of
:class:`Check` values; the CLI prints them as a table and fails on any FAIL.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url

from ghostwatch.config import AccountSettings, Settings
from ghostwatch.credentials import resolve_password
from ghostwatch.errors import GhostwatchError

__all__ = ["Check", "Verdict", "run_checks"]


class Verdict(StrEnum):
    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    what: str
    verdict: Verdict
    detail: str


def _config_checks(path: Path | None) -> Iterator[Check]:
    if path is None:
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        yield Check(
            "config permissions",
            Verdict.WARN,
            f"{path} is {stat.filemode(mode)}: others can read it; chmod 600 {path}",
        )
    else:
        yield Check("config permissions", Verdict.PASS, f"{path} is {stat.filemode(mode)}")


def _database_checks(settings: Settings) -> Iterator[Check]:
    from ghostwatch.store import current_revision, head_revision, make_engine, upgrade

    url = settings.database.url
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        engine = make_engine(url)
        upgrade(engine)
        current, head = current_revision(engine), head_revision()
    except (GhostwatchError, Exception) as exc:
        yield Check("database", Verdict.FAIL, f"{shown}: {exc}")
        return
    if current != head:
        yield Check("database", Verdict.FAIL, f"{shown}: at revision {current}, expected {head}")
    else:
        yield Check("database", Verdict.PASS, f"{shown}: reachable, schema at {head}")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        db_path = Path(parsed.database).expanduser()
        directory = db_path.parent
        dmode = directory.stat().st_mode
        if dmode & stat.S_IWOTH:
            yield Check("state directory", Verdict.FAIL, f"{directory} is writable by anyone")
        elif dmode & (stat.S_IRWXG | stat.S_IRWXO):
            yield Check(
                "state directory",
                Verdict.WARN,
                f"{directory} is {stat.filemode(dmode)}; the store holds mail headers: "
                f"chmod 700 {directory}",
            )
        else:
            yield Check("state directory", Verdict.PASS, f"{directory} is {stat.filemode(dmode)}")


def _clock_checks(settings: Settings, now: datetime) -> Iterator[Check]:
    zone = settings.policy.defaults.time_zone
    local = now.astimezone(ZoneInfo(zone))
    yield Check("time zone", Verdict.PASS, f"{zone}: it is {local:%a %d %b %Y %H:%M %Z} there")


def _imap_checks(account: AccountSettings, drafts_wanted: bool) -> Iterator[Check]:
    from ghostwatch.imap import connect

    what = f"{account.name}: IMAP"
    try:
        password = resolve_password(account.imap, f"{account.name}/imap")
        session = connect(account, password)
    except GhostwatchError as exc:
        yield Check(what, Verdict.FAIL, str(exc))
        return
    try:
        security = account.imap.security.value
        where = f"{account.imap.host}:{account.imap.effective_port()}"
        yield Check(what, Verdict.PASS, f"{where} ({security}), login OK")
        roles = session.discover_folders()
        sent = roles.get("sent")
        if sent is None:
            hint = "no Sent folder found: add its name to [accounts.imap] folders"
            yield Check(f"{account.name}: folders", Verdict.FAIL, hint)
        else:
            yield Check(f"{account.name}: folders", Verdict.PASS, f"INBOX and {sent!r}")
        if drafts_wanted and "drafts" not in roles:
            hint = "[sending] drafts_folder = true but no Drafts folder was found"
            yield Check(f"{account.name}: Drafts", Verdict.FAIL, hint)
        idle = session.client.has_capability("IDLE")
        yield Check(
            f"{account.name}: IDLE",
            Verdict.PASS if idle else Verdict.WARN,
            "offered: replies are noticed within seconds"
            if idle
            else "not offered: replies are noticed at the next poll ([daemon] poll_minutes)",
        )
    except Exception as exc:
        yield Check(f"{account.name}: folders", Verdict.FAIL, str(exc))
    finally:
        session.logout()


def _smtp_checks(account: AccountSettings) -> Iterator[Check]:
    from ghostwatch.smtp import check_login

    what = f"{account.name}: SMTP"
    smtp = account.smtp
    if smtp is None:
        yield Check(what, Verdict.WARN, "no [accounts.smtp]: ghostwatch can queue but not send")
        return
    try:
        password = "" if smtp.token_command else resolve_password(smtp, f"{account.name}/smtp")
    except GhostwatchError as exc:
        yield Check(what, Verdict.FAIL, str(exc))
        return
    ok, message = check_login(account, password, token_command=smtp.token_command)
    yield Check(what, Verdict.PASS if ok else Verdict.FAIL, message)


def _digest_route(settings: Settings, account: AccountSettings, smtp: list[Check]) -> Check:
    """Can ghostwatch mail the owner the digest, and where do replies go?"""
    approval = settings.approval
    to = approval.digest_to or account.address
    replies = to.replace("@", "+gw-TOKEN@", 1) if approval.plus_addressing else approval.reply_alias
    what = f"{account.name}: digest route"
    if not smtp or smtp[0].verdict is not Verdict.PASS:
        return Check(what, Verdict.FAIL, f"digests to {to} need a working SMTP login (above)")
    return Check(what, Verdict.PASS, f"digests to {to}; replies to {replies}")


def run_checks(settings: Settings, config_path: Path | None, now: datetime) -> list[Check]:
    """Every check, in the order a user would fix things."""
    checks: list[Check] = []
    checks += _config_checks(config_path)
    checks += _database_checks(settings)
    checks += _clock_checks(settings, now)
    if not settings.accounts:
        checks.append(Check("accounts", Verdict.FAIL, "no [[accounts]] in the config"))
    for account in settings.accounts:
        checks += _imap_checks(account, settings.sending.drafts_folder)
        smtp = list(_smtp_checks(account))
        checks += smtp
        checks.append(_digest_route(settings, account, smtp))
    if os.environ.get("NOTIFY_SOCKET"):
        checks.append(Check("systemd", Verdict.PASS, "running under systemd (NOTIFY_SOCKET set)"))
    return checks
