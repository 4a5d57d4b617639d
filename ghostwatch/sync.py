"""Incremental IMAP sync into the store, then re-threading and re-judging.

Per folder, a sync with nothing new costs one STATUS command: UIDVALIDITY, UIDNEXT,
MESSAGES and, with CONDSTORE (RFC 7162), HIGHESTMODSEQ are compared with what the
store holds. New messages are fetched by UID range in chunks, each chunk committed
with the folder's ``last_uid``, so an interrupted sync resumes where it stopped
with nothing lost or doubled. A UIDVALIDITY change (RFC 3501 §2.3.1.1) re-maps the
stored rows by Message-ID.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import structlog
from imapclient.exceptions import IMAPClientError
from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch.classify import Kind, bounce_subject, confirm_bounce_by_body, parse_bounce
from ghostwatch.config import AccountSettings
from ghostwatch.errors import ServerUnreachableError
from ghostwatch.imap import Fetched, FolderStatus, ImapSession
from ghostwatch.message import FETCH_HEADERS, Direction, parse_headers
from ghostwatch.store import Folder, MessageRow, ThreadRow, in_chunks, insert_plain
from ghostwatch.threads import parse_msgid_list

log = structlog.get_logger("ghostwatch.sync")

Progress = Callable[[str, int, int], None]  # folder, done, total
BOUNCE_FETCH_LIMIT = 65536
AUTO_REPLY_FETCH_LIMIT = 4096


@dataclass
class FolderResult:
    name: str
    role: str
    new: int = 0
    skipped_unchanged: bool = False
    uidvalidity_changed: bool = False
    remapped: int = 0
    dropped: int = 0
    malformed: int = 0
    unavailable: bool = False


@dataclass
class SyncResult:
    account: str
    folders: list[FolderResult] = field(default_factory=list)

    @property
    def new(self) -> int:
        return sum(f.new for f in self.folders)

    @property
    def changed(self) -> bool:
        return any(f.new or f.uidvalidity_changed for f in self.folders)


Row = dict[str, Any]
MESSAGES = cast(Table, MessageRow.__table__)


def insert_rows(db: Session, rows: list[Row]) -> None:
    """One executemany INSERT straight to the driver (see store.insert_plain): far
    cheaper than ORM objects, or SQLAlchemy's per-row parameters, for a first sync."""
    insert_plain(db.connection(), MESSAGES, rows)


def row_from(fetched: Fetched, account: AccountSettings, folder_id: int) -> tuple[Row, list[str]]:
    meta = parse_headers(
        fetched.header,
        internal_date=fetched.internal_date,
        own_addresses=account.own_addresses(),
    )
    row: dict[str, Any] = dict(
        account=account.name,
        folder_id=folder_id,
        uid=fetched.uid,
        message_id=meta.message_id,
        in_reply_to=meta.in_reply_to,
        references=" ".join(meta.references),
        subject=meta.subject,
        from_addr=meta.from_addr,
        from_name=meta.from_name,
        to_addrs=" ".join(meta.to_addrs),
        cc_addrs=" ".join(meta.cc_addrs),
        reply_to=" ".join(meta.reply_to),
        date=meta.date,
        internal_date=fetched.internal_date,
        size=fetched.size,
        direction=meta.direction.value,
        kind=meta.kind.value,
        reasons="; ".join(meta.reasons),
        content_type=meta.content_type,
        problems="; ".join(meta.problems),
        gm_msgid=fetched.gm_msgid,
        gm_thrid=fetched.gm_thrid,
        bounced_addrs="",
        bounced_message_id=None,
        auto_reply_text=None,
        thread_id=None,
    )
    return row, list(meta.problems)


def apply_bounce(row: Row, raw: bytes) -> None:
    """Record which addresses a bounce reports as failed, and for which message."""
    report = parse_bounce(raw)
    if report is None:
        return
    row["bounced_addrs"] = " ".join(sorted(report.permanent | report.temporary))
    row["bounced_message_id"] = report.original_message_id
    # The bounced message is what this bounce is about: thread it there.
    if report.original_message_id and not row["in_reply_to"]:
        row["in_reply_to"] = report.original_message_id


def apply_auto_reply(row: Row, text: bytes | None) -> None:
    """Keep the start of an auto-reply's text: it may say until when they are away."""
    if text is not None:
        row["auto_reply_text"] = text[:AUTO_REPLY_FETCH_LIMIT].decode("utf-8", "replace")


class Syncer:
    """Syncs one account's folders into the store over an open IMAP session."""

    def __init__(
        self,
        account: AccountSettings,
        session: ImapSession,
        sessions: sessionmaker[Session],
        now: datetime,
        progress: Progress | None = None,
    ) -> None:
        self.account = account
        self.imap = session
        self.sessions = sessions
        self.now = now
        self.progress = progress
        self.log = log.bind(account=account.name)

    # -- folders -----------------------------------------------------------
    def _folders(self, db: Session) -> list[Folder]:
        """Stored folders, discovered with LIST only on the first sync (or on demand)."""
        rows = list(db.scalars(select(Folder).where(Folder.account == self.account.name)))
        wanted_extra = set(self.account.imap.folders)
        have = {r.name for r in rows}
        if rows and wanted_extra <= have:
            return rows
        roles = self.imap.discover_folders()
        plan = [("inbox", roles["inbox"])]
        if "sent" in roles:
            plan.append(("sent", roles["sent"]))
        else:
            self.log.warning("no_sent_folder", hint="add it to accounts.imap.folders")
        plan += [("extra", name) for name in self.account.imap.folders]
        for role, name in plan:
            if name not in have:
                row = Folder(account=self.account.name, name=name, role=role, last_uid=0)
                db.add(row)
                rows.append(row)
                have.add(name)
        db.commit()
        return rows

    def run(self) -> SyncResult:
        result = SyncResult(self.account.name)
        with self.sessions() as db:
            folders = self._folders(db)
            for folder in folders:
                result.folders.append(self._sync_folder(db, folder))
        return result

    # -- one folder --------------------------------------------------------
    def _sync_folder(self, db: Session, folder: Folder) -> FolderResult:
        res = FolderResult(folder.name, folder.role)
        flog = self.log.bind(folder=folder.name)
        try:
            status = self.imap.status(folder.name)
        except IMAPClientError as exc:
            # Renamed or deleted on the server: say so, sync the other folders.
            flog.warning("folder_unavailable", error=str(exc)[:200])
            res.unavailable = True
            return res
        unchanged = (
            folder.uidvalidity == status.uidvalidity
            and folder.uidnext == status.uidnext
            and folder.messages == status.messages
            and (status.highestmodseq is None or folder.highestmodseq == status.highestmodseq)
        )
        if unchanged:
            res.skipped_unchanged = True
            return res

        opened = self.imap.examine(folder.name)
        if folder.uidvalidity is not None and folder.uidvalidity != opened.uidvalidity:
            res.uidvalidity_changed = True
            self._remap(db, folder, opened, res)
            flog.warning(
                "uidvalidity_changed",
                old=folder.uidvalidity,
                new=opened.uidvalidity,
                remapped=res.remapped,
                dropped=res.dropped,
            )
        folder.uidvalidity = opened.uidvalidity
        db.commit()

        self._fetch_new(db, folder, opened, res)

        # Record the status seen *before* fetching: anything that arrived since is
        # picked up by the next sync rather than hidden by a newer UIDNEXT.
        folder.uidnext = max(status.uidnext, folder.last_uid + 1)
        folder.messages = status.messages
        folder.highestmodseq = status.highestmodseq
        folder.synced_at = self.now
        db.commit()
        if res.new:
            flog.info("folder_synced", new=res.new, malformed=res.malformed)
        return res

    def _fetch_new(
        self, db: Session, folder: Folder, opened: FolderStatus, res: FolderResult
    ) -> None:
        chunk = self.account.imap.fetch_chunk
        start = folder.last_uid + 1
        end_hint = max(opened.uidnext - 1, start)
        total = max(opened.uidnext - start, 0)
        done = 0
        while start <= end_hint:
            end = start + chunk - 1
            last_chunk = end >= end_hint
            fetched = list(
                self.imap.fetch_headers(start, None if last_chunk else end, FETCH_HEADERS)
            )
            self._store(db, folder, fetched, res)
            if fetched:
                folder.last_uid = max(f.uid for f in fetched)
            db.commit()
            done += len(fetched)
            if self.progress and total:
                self.progress(folder.name, min(done, total), total)
            if last_chunk:
                break
            start = end + 1

    def _store(
        self, db: Session, folder: Folder, fetched: list[Fetched], res: FolderResult
    ) -> None:
        """Parse, classify, enrich and insert one chunk of fetched headers."""
        rows: list[Row] = []
        for item in fetched:
            row, problems = row_from(item, self.account, folder.id)
            if problems:
                res.malformed += 1
                self.log.info(
                    "message_malformed",
                    folder=folder.name,
                    uid=item.uid,
                    problems="; ".join(problems),
                )
            rows.append(row)
        if self.imap.gmail:
            rows = self._drop_gmail_duplicates(db, rows)
        self._fetch_bodies(rows)
        insert_rows(db, rows)
        res.new += len(rows)

    def _drop_gmail_duplicates(self, db: Session, rows: list[Row]) -> list[Row]:
        """On Gmail one message shows in several folders (labels): keep one row."""
        ids = [r["gm_msgid"] for r in rows if r["gm_msgid"] is not None]
        if not ids:
            return rows
        known = set(
            db.scalars(
                select(MessageRow.gm_msgid).where(
                    MessageRow.account == self.account.name, MessageRow.gm_msgid.in_(ids)
                )
            )
        )
        out = []
        for r in rows:
            gm_msgid = r["gm_msgid"]
            if gm_msgid is not None and gm_msgid in known:
                continue
            if gm_msgid is not None:
                known.add(gm_msgid)
            out.append(r)
        return out

    def _fetch_bodies(self, rows: list[Row]) -> None:
        """Bounces and auto-replies are rare; their bodies say which address failed
        and until when someone is away, so those alone are fetched (with PEEK)."""
        suspects = [
            r for r in rows
            if r["kind"] == Kind.HUMAN.value and r["direction"] == Direction.INCOMING.value
            and bounce_subject(r["subject"]) is not None
        ]  # fmt: skip
        if suspects:
            bodies = self.imap.fetch_partial([r["uid"] for r in suspects], "", BOUNCE_FETCH_LIMIT)
            for r in suspects:
                confirmed = confirm_bounce_by_body(bodies.get(r["uid"], b""))
                if confirmed is not None:
                    r["kind"] = confirmed.kind.value
                    r["reasons"] = "; ".join(confirmed.reasons)
        bounces = [r for r in rows if r["kind"] == Kind.BOUNCE.value]
        autos = [r for r in rows if r["kind"] == Kind.AUTO_REPLY.value]
        if bounces:
            uids = [r["uid"] for r in bounces]
            bodies = self.imap.fetch_partial(uids, "", BOUNCE_FETCH_LIMIT)
            for r in bounces:
                apply_bounce(r, bodies.get(r["uid"], b""))
        if autos:
            uids = [r["uid"] for r in autos]
            texts = self.imap.fetch_partial(uids, "TEXT", AUTO_REPLY_FETCH_LIMIT)
            for r in autos:
                apply_auto_reply(r, texts.get(r["uid"]))

    def _remap(self, db: Session, folder: Folder, opened: FolderStatus, res: FolderResult) -> None:
        """UIDVALIDITY changed: every stored UID of this folder is void. Re-map rows
        by Message-ID; rows whose message is gone are dropped, messages not yet
        stored are fetched as new (last_uid is reset to the highest re-mapped UID
        only when all UIDs below it are accounted for)."""
        server = self.imap.fetch_message_ids()
        by_msgid: dict[str, list[int]] = {}
        for uid, header in sorted(server.items()):
            ids = parse_msgid_list(header.split(b":", 1)[-1].decode("ascii", "replace"))
            if ids:
                by_msgid.setdefault(ids[0], []).append(uid)
        # Plain rows and Core statements: ORM-level bulk updates would re-check every
        # loaded object per statement, which is quadratic on a big folder.
        table = MESSAGES
        rows = db.execute(
            select(table.c.id, table.c.message_id).where(table.c.folder_id == folder.id)
        ).all()
        # Park old UIDs out of the way so re-mapping cannot collide on (folder, uid).
        db.execute(update(table).where(table.c.folder_id == folder.id).values(uid=-table.c.id))
        claimed: set[int] = set()
        moves: list[dict[str, int]] = []
        gone: list[int] = []
        for row_id, message_id in rows:
            uids = by_msgid.get(message_id or "", [])
            new_uid = next((u for u in uids if u not in claimed), None)
            if new_uid is None:
                gone.append(row_id)
            else:
                claimed.add(new_uid)
                moves.append({"rid": row_id, "new_uid": new_uid})
        for part in in_chunks(gone):
            db.execute(delete(table).where(table.c.id.in_(part)))
        if moves:
            db.execute(
                update(table)
                .where(table.c.id == bindparam("rid"))
                .values(uid=bindparam("new_uid")),
                moves,
            )
        res.dropped, res.remapped = len(gone), len(moves)
        # Fetch every server UID not claimed: resume from the lowest such UID and
        # skip already-claimed ones via the unique constraint check below.
        unclaimed = sorted(set(server) - claimed)
        folder.last_uid = (unclaimed[0] - 1) if unclaimed else max(server, default=0)
        db.flush()
        if unclaimed:
            self._fetch_uids(db, folder, unclaimed, res)
            folder.last_uid = max(server)

    def _fetch_uids(self, db: Session, folder: Folder, uids: list[int], res: FolderResult) -> None:
        chunk = self.account.imap.fetch_chunk
        for i in range(0, len(uids), chunk):
            part = uids[i : i + chunk]
            wanted = set(part)
            fetched = [
                item
                for item in self.imap.fetch_headers(part[0], part[-1], FETCH_HEADERS)
                if item.uid in wanted
            ]
            self._store(db, folder, fetched, res)


def _judged(sessions: sessionmaker[Session], account: str) -> bool:
    with sessions() as db:
        return (
            db.scalar(select(ThreadRow.thread_id).where(ThreadRow.account == account).limit(1))
            is not None
        )


def sync_account(
    account: AccountSettings,
    sessions: sessionmaker[Session],
    now: datetime,
    *,
    progress: Progress | None = None,
    connect_attempts: int = 4,
) -> SyncResult:
    """Log in, sync every folder, log out; re-judge the account's threads."""
    from ghostwatch.analyze import analyze_account, analyze_changes
    from ghostwatch.credentials import resolve_password
    from ghostwatch.imap import connect_with_retry

    password = resolve_password(account.imap, f"{account.name}/imap")
    session = connect_with_retry(account, password, attempts=connect_attempts)
    try:
        result = Syncer(account, session, sessions, now, progress).run()
    except (IMAPClientError, OSError) as exc:
        # Whatever was committed stays: the next sync resumes after the last chunk.
        raise ServerUnreachableError(
            f"account {account.name!r}: the IMAP connection failed during the sync ({exc}); "
            "what was fetched is kept and the next sync resumes from there"
        ) from exc
    finally:
        session.logout()
    if any(f.uidvalidity_changed for f in result.folders) or not _judged(sessions, account.name):
        # Rows were re-mapped or dropped: thread and judge the whole account again.
        analyze_account(sessions, account, now)
    elif result.changed:
        # Only what the new messages can affect; with nothing new the stored judgment
        # stands (it depends on the mail, not on the clock), so a quiet poll costs
        # neither IMAP traffic nor CPU.
        analyze_changes(sessions, account, now)
    log.info(
        "account_synced",
        account=account.name,
        new=result.new,
        commands=session.stats.commands,
        unchanged_folders=sum(f.skipped_unchanged for f in result.folders),
    )
    return result
