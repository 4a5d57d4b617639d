"""Mail from an mbox file or a Maildir, ingested like an IMAP sync.

This is what makes ``demo`` and ``replay`` possible without an account: the same
parsing, classification, threading and judgment run over local files.
"""

from __future__ import annotations

import email.utils
import mailbox
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch.classify import Kind
from ghostwatch.config import AccountSettings
from ghostwatch.errors import GhostwatchError
from ghostwatch.imap import Fetched
from ghostwatch.store import Folder
from ghostwatch.sync import Row, apply_auto_reply, apply_bounce, insert_rows, row_from

log = structlog.get_logger("ghostwatch.localsource")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SourceError(GhostwatchError):
    """The mbox or Maildir cannot be read."""


def _split(raw: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = raw.find(sep)
        if idx >= 0:
            return raw[: idx + len(sep)], raw[idx + len(sep) :]
    return raw, b""


def read_messages(path: Path) -> Iterator[bytes]:
    """Raw messages of an mbox file or a Maildir (a directory with cur/ and new/)."""
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise SourceError(f"{path}: a directory but not a Maildir (no cur/ or new/)")
        box: mailbox.Mailbox[mailbox.Message] = mailbox.Maildir(path, create=False)
        keys = sorted(box.keys())
    elif path.is_file():
        box = mailbox.mbox(path, create=False)
        keys = list(box.keys())
    else:
        raise SourceError(f"{path}: no such mbox file or Maildir")
    for key in keys:
        yield box.get_bytes(key)


def _date_of(header: bytes) -> datetime:
    for line in header.splitlines():
        if line[:5].lower() == b"date:":
            try:
                parsed = email.utils.parsedate_to_datetime(line[5:].decode("ascii", "replace"))
            except (TypeError, ValueError, IndexError):
                return EPOCH
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    return EPOCH


def ingest(
    path: Path,
    account: AccountSettings,
    sessions: sessionmaker[Session],
    now: datetime,
) -> int:
    """Store every message of ``path`` under ``account``; return how many were new.

    Re-ingesting the same source adds nothing: a message's position is its UID.
    """
    folder_name = f"local:{path.resolve()}"
    count = 0
    with sessions() as db:
        folder = db.scalars(
            select(Folder).where(Folder.account == account.name, Folder.name == folder_name)
        ).one_or_none()
        if folder is None:
            folder = Folder(account=account.name, name=folder_name, role="local", last_uid=0)
            db.add(folder)
            db.flush()
        rows: list[Row] = []
        for uid, raw in enumerate(read_messages(path), start=1):
            if uid <= folder.last_uid:
                continue
            header, body = _split(raw)
            fetched = Fetched(
                uid=uid,
                internal_date=_date_of(header),
                size=len(raw),
                header=header,
                gm_msgid=None,
                gm_thrid=None,
            )
            row, problems = row_from(fetched, account, folder.id)
            if problems:
                log.info("message_malformed", source=str(path), index=uid, problems=problems)
            if row["kind"] == Kind.BOUNCE.value:
                apply_bounce(row, raw)
            elif row["kind"] == Kind.AUTO_REPLY.value:
                apply_auto_reply(row, body)
            rows.append(row)
            folder.last_uid = uid
            count += 1
        insert_rows(db, rows)
        folder.synced_at = now
        db.commit()
    return count
