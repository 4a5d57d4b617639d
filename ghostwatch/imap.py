"""The IMAP side of the shell: connecting safely and fetching only what is needed.

ghostwatch never changes a mailbox while syncing: folders are opened with EXAMINE
(read-only, RFC 3501 §6.3.2) and bodies, when needed at all, are fetched with
BODY.PEEK so no \\Seen flag is set.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import imapclient
import structlog
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.response_parser import parse_fetch_response

from ghostwatch.config import AccountSettings, ImapSettings, Security
from ghostwatch.errors import AuthenticationError, ServerUnreachableError, TLSError
from ghostwatch.records import builder

log = structlog.get_logger("ghostwatch.imap")

# RFC 6154 special-use attributes, with names seen in the wild as a fallback for
# servers that do not announce them.
_ROLE_FLAGS = {b"\\Sent": "sent", b"\\All": "all", b"\\Drafts": "drafts"}
_DRAFTS_NAMES = ("Drafts", "INBOX.Drafts", "INBOX/Drafts", "Bozze", "INBOX.Bozze")
_SENT_NAMES = (
    "Sent",
    "Sent Items",
    "Sent Messages",
    "Sent Mail",
    "INBOX.Sent",
    "INBOX/Sent",
    "Posta inviata",
    "Inviata",
    "Gesendet",
    "Gesendete Elemente",
    "Envoyés",
    "Enviados",
)


_MAX_NAMES = 20_000


@dataclass
class IoStats:
    """Commands and bytes on the wire, for benchmarks and the no-change check."""

    commands: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    command_names: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int
    messages: int
    highestmodseq: int | None


@dataclass(frozen=True, slots=True)
class Fetched:
    uid: int
    internal_date: datetime
    size: int
    header: bytes
    gm_msgid: int | None
    gm_thrid: int | None


def _tls_context(settings: ImapSettings) -> ssl.SSLContext:
    # Always verify: a bad certificate is an error, never a silent downgrade.
    ctx = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class ImapSession:
    """A logged-in connection to one account's IMAP server."""

    def __init__(self, client: imapclient.IMAPClient, account: str) -> None:
        self.client = client
        self.account = account
        self.stats = IoStats()
        self._instrument()
        self.capabilities = {c.upper() for c in client.capabilities()}

    # -- instrumentation ---------------------------------------------------
    def _instrument(self) -> None:
        imap = self.client._imap
        # imapclient routes every protocol line through a debug logger; that costs
        # more CPU than the parsing on a big first sync, and we log our own events.
        imap.debug = 0
        stats = self.stats
        orig_command = imap._command
        orig_send = imap.send
        orig_readline = imap.readline
        orig_read = imap.read

        def _command(name: str, *args: Any) -> Any:
            stats.commands += 1
            stats.command_names.append(name)
            if len(stats.command_names) > _MAX_NAMES:
                # A long-lived IDLE connection must not grow this without end.
                del stats.command_names[: _MAX_NAMES // 2]
            return orig_command(name, *args)

        def send(data: bytes) -> None:
            stats.bytes_out += len(data)
            orig_send(data)

        def readline() -> bytes:
            line: bytes = orig_readline()
            stats.bytes_in += len(line)
            return line

        def read(size: int) -> bytes:
            data: bytes = orig_read(size)
            stats.bytes_in += len(data)
            return data

        imap._command = _command
        imap.send = send
        imap.readline = readline
        imap.read = read

    # -- capabilities ------------------------------------------------------
    @property
    def condstore(self) -> bool:
        return b"CONDSTORE" in self.capabilities or b"QRESYNC" in self.capabilities

    @property
    def gmail(self) -> bool:
        return b"X-GM-EXT-1" in self.capabilities

    # -- folders -----------------------------------------------------------
    def discover_folders(self) -> dict[str, str]:
        """Map roles (inbox, sent, all, drafts) to folder names with one LIST."""
        roles: dict[str, str] = {"inbox": "INBOX"}
        names: list[str] = []
        for flags, _delim, name in self.client.list_folders():
            names.append(name)
            for flag in flags:
                role = _ROLE_FLAGS.get(flag if isinstance(flag, bytes) else flag.encode())
                if role and role not in roles:
                    roles[role] = name
        lowered = {n.lower(): n for n in names}
        for role, candidates in (("sent", _SENT_NAMES), ("drafts", _DRAFTS_NAMES)):
            if role in roles:
                continue
            for candidate in candidates:
                if candidate.lower() in lowered:
                    roles[role] = lowered[candidate.lower()]
                    break
        return roles

    def status(self, folder: str) -> FolderStatus:
        items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
        if self.condstore:
            items.append("HIGHESTMODSEQ")
        data = self.client.folder_status(folder, items)
        modseq = data.get(b"HIGHESTMODSEQ")
        return FolderStatus(
            uidvalidity=int(data[b"UIDVALIDITY"]),
            uidnext=int(data[b"UIDNEXT"]),
            messages=int(data[b"MESSAGES"]),
            highestmodseq=int(modseq) if modseq is not None else None,
        )

    def examine(self, folder: str) -> FolderStatus:
        """Open ``folder`` read-only (EXAMINE) and return what the server said."""
        data = self.client.select_folder(folder, readonly=True)
        modseq = data.get(b"HIGHESTMODSEQ")
        return FolderStatus(
            uidvalidity=int(data[b"UIDVALIDITY"]),
            uidnext=int(data.get(b"UIDNEXT", 0)),
            messages=int(data.get(b"EXISTS", 0)),
            highestmodseq=int(modseq) if modseq is not None else None,
        )

    # -- fetching ----------------------------------------------------------
    def _raw_uid_fetch(self, uid_set: str, items: list[str]) -> list[Any]:
        """``UID FETCH`` over a UID set string ("1:1000"), returning imaplib's raw
        untagged data; imapclient's ``fetch`` only takes lists of UIDs, which would
        need a SEARCH first."""
        imap = self.client._imap
        tag = imap._command("UID", "FETCH", uid_set, "(" + " ".join(items) + ")")
        typ, data = imap._command_complete("FETCH", tag)
        if typ != "OK":
            raise IMAPClientError(f"UID FETCH failed: {data!r}")
        typ, data = imap._untagged_response(typ, data, "FETCH")
        return list(data or [])

    def _uid_fetch(self, uid_set: str, items: list[str]) -> dict[int, dict[bytes, Any]]:
        parsed: dict[int, dict[bytes, Any]] = parse_fetch_response(
            self._raw_uid_fetch(uid_set, items), False, True
        )
        return parsed

    def fetch_headers(
        self, start_uid: int, end_uid: int | None, fields: tuple[str, ...]
    ) -> Iterator[Fetched]:
        """Fetch header fields of UIDs in [start_uid, end_uid] (``None``: to the end)."""
        items = [
            "UID",
            "INTERNALDATE",
            "RFC822.SIZE",
            f"BODY.PEEK[HEADER.FIELDS ({' '.join(fields)})]",
        ]
        if self.gmail:
            items += ["X-GM-MSGID", "X-GM-THRID"]
        uid_set = f"{start_uid}:{end_uid if end_uid is not None else '*'}"
        fetched = parse_header_fetch(self._raw_uid_fetch(uid_set, items))
        for item in sorted(fetched, key=lambda f: f.uid):
            # "N:*" returns the last message even when its UID is below N (RFC 3501
            # §6.4.8): drop anything outside the range asked for.
            if item.uid < start_uid or (end_uid is not None and item.uid > end_uid):
                continue
            yield item

    def fetch_message_ids(self) -> dict[int, bytes]:
        """UID -> raw Message-ID header of every message in the selected folder."""
        response = self._uid_fetch("1:*", ["UID", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        out: dict[int, bytes] = {}
        for uid, data in response.items():
            for key, value in data.items():
                if key.startswith(b"BODY[HEADER") and isinstance(value, bytes):
                    out[uid] = value
        return out

    def fetch_partial(self, uids: list[int], section: str, limit: int) -> dict[int, bytes]:
        """First ``limit`` bytes of ``section`` ("" for the whole message, "TEXT")."""
        if not uids:
            return {}
        response = self._uid_fetch(
            ",".join(str(u) for u in uids), ["UID", f"BODY.PEEK[{section}]<0.{limit}>"]
        )
        out: dict[int, bytes] = {}
        for uid, data in response.items():
            for key, value in data.items():
                if key.startswith(b"BODY[") and isinstance(value, bytes):
                    out[uid] = value
        return out

    # -- writing (the outbox only) -----------------------------------------
    def append(self, folder: str, raw: bytes, when: datetime) -> None:
        """APPEND ``raw`` to ``folder`` flagged \\Seen: the copy of a message we sent."""
        self.client.append(folder, raw, flags=(b"\\Seen",), msg_time=when)

    def append_draft(self, folder: str, raw: bytes, when: datetime) -> None:
        """APPEND ``raw`` to ``folder`` flagged \\Draft \\Seen (RFC 3501 section 2.3.2)."""
        self.client.append(folder, raw, flags=(b"\\Draft", b"\\Seen"), msg_time=when)

    def delete_by_message_id(self, folder: str, message_ids: list[str]) -> int:
        """Remove the messages of ``folder`` with these Message-IDs; returns how many.

        SELECT (read-write), ``SEARCH HEADER Message-ID`` for each id, flag them
        \\Deleted and expunge only those (UID EXPUNGE, RFC 4315) where the server
        has UIDPLUS; without it a plain EXPUNGE would also remove what the user had
        flagged \\Deleted, so they are left flagged for the mail client to expunge.
        """
        self.client.select_folder(folder)
        try:
            uids: list[int] = []
            for message_id in message_ids:
                uids += self.client.search(["HEADER", "Message-ID", message_id])
            if uids:
                self.client.add_flags(uids, [b"\\Deleted"])
                if self.client.has_capability("UIDPLUS"):
                    self.client.uid_expunge(uids)
            return len(uids)
        finally:
            self.client.close_folder()

    def logout(self) -> None:
        try:
            self.client.logout()
        except (IMAPClientError, OSError):
            # The connection is going away either way.
            log.debug("logout_failed", account=self.account)


_UID_RE = re.compile(rb"\bUID (\d+)")
_DATE_RE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_SIZE_RE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_GM_MSGID_RE = re.compile(rb"\bX-GM-MSGID (\d+)")
_GM_THRID_RE = re.compile(rb"\bX-GM-THRID (\d+)")
_MONTHS = {
    m: i
    for i, m in enumerate(
        (b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct",
         b"nov", b"dec"),
        start=1,
    )
}  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_new_fetched = builder(Fetched)  # once per message fetched: see ghostwatch.records


def parse_internaldate(value: bytes) -> datetime:
    """RFC 3501 date-time ("17-Jul-1996 02:44:25 -0700") to UTC; epoch if garbled."""
    try:
        day_s, mon_s, rest = value.strip().split(b"-", 2)
        year_s, clock, zone = rest.split(b" ")
        hh, mm, ss = clock.split(b":")
        offset = int(zone[1:3]) * 60 + int(zone[3:5])
        tz = timezone(timedelta(minutes=-offset if zone[:1] == b"-" else offset))
        local = datetime(
            int(year_s), _MONTHS[mon_s.lower()], int(day_s), int(hh), int(mm), int(ss),
            tzinfo=tz,
        )  # fmt: skip
        return local.astimezone(UTC)
    except (ValueError, KeyError, IndexError, OverflowError):
        return _EPOCH


def _grab(pattern: re.Pattern[bytes], *texts: bytes) -> int | None:
    for text in texts:
        match = pattern.search(text)
        if match:
            return int(match.group(1))
    return None


def parse_header_fetch(data: list[Any]) -> list[Fetched]:
    """Turn imaplib's raw FETCH data into :class:`Fetched` items, fast.

    Each message with a header literal arrives as ``(prefix, literal)`` followed by
    the bytes that close it (which may carry items such as X-GM-THRID). Messages
    whose header section came back empty or as a quoted string arrive as plain
    bytes; those, and anything the fast path cannot read, go through imapclient's
    full parser. Unsolicited FETCH responses without a UID are ignored.
    """
    out: list[Fetched] = []
    i = 0
    n = len(data)
    while i < n:
        item = data[i]
        i += 1
        if isinstance(item, tuple) and len(item) == 2:
            prefix, literal = item
            trailer = data[i] if i < n and isinstance(data[i], bytes) else b""
            if trailer:
                i += 1
            if b"BODY[HEADER" not in prefix.upper():
                continue
            uid = _grab(_UID_RE, prefix, trailer)
            if uid is None:
                continue
            date = _DATE_RE.search(prefix) or _DATE_RE.search(trailer)
            out.append(
                _new_fetched(
                    uid=uid,
                    internal_date=parse_internaldate(date.group(1)) if date else _EPOCH,
                    size=_grab(_SIZE_RE, prefix, trailer) or 0,
                    header=bytes(literal),
                    gm_msgid=_grab(_GM_MSGID_RE, prefix, trailer),
                    gm_thrid=_grab(_GM_THRID_RE, prefix, trailer),
                )
            )
        elif isinstance(item, bytes) and b"BODY[HEADER" in item.upper():
            out.extend(_slow_parse([item]))
    return out


def _slow_parse(data: list[Any]) -> list[Fetched]:
    out = []
    for uid, values in parse_fetch_response(data, False, True).items():
        header = b""
        for key, value in values.items():
            if key.startswith(b"BODY[HEADER") and isinstance(value, bytes):
                header = value
        internal = values.get(b"INTERNALDATE")
        if not isinstance(internal, datetime):
            internal = _EPOCH
        elif internal.tzinfo is None:
            internal = internal.replace(tzinfo=UTC)
        out.append(
            Fetched(
                uid=uid,
                internal_date=internal.astimezone(UTC),
                size=int(values.get(b"RFC822.SIZE") or 0),
                header=header,
                gm_msgid=_int_or_none(values.get(b"X-GM-MSGID")),
                gm_thrid=_int_or_none(values.get(b"X-GM-THRID")),
            )
        )
    return out


def _int_or_none(value: object) -> int | None:
    try:
        return int(value) if value is not None else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def connect(account: AccountSettings, password: str) -> ImapSession:
    """Connect and log in once; raise a typed error naming the account on failure."""
    cfg = account.imap
    port = cfg.effective_port()
    where = f"account {account.name!r}: IMAP {cfg.host}:{port}"
    try:
        if cfg.security is Security.TLS:
            client = imapclient.IMAPClient(
                cfg.host, port=port, ssl=True, ssl_context=_tls_context(cfg), timeout=cfg.timeout
            )
        else:
            client = imapclient.IMAPClient(cfg.host, port=port, ssl=False, timeout=cfg.timeout)
            if cfg.security is Security.STARTTLS:
                if not client.has_capability("STARTTLS"):
                    raise TLSError(
                        f"{where}: server does not offer STARTTLS; refusing to log in in clear text"
                    )
                client.starttls(_tls_context(cfg))
        client.normalise_times = False
    except ssl.SSLError as exc:
        raise TLSError(f"{where}: TLS failed: {exc.reason or exc}") from exc
    except (socket.gaierror, ConnectionError, TimeoutError, OSError) as exc:
        raise ServerUnreachableError(f"{where}: cannot connect: {exc}") from exc
    try:
        client.login(cfg.username, password)
    except LoginError as exc:
        raise AuthenticationError(
            f"{where}: login as {cfg.username!r} was refused (wrong password, or the "
            "provider needs an app password). Not retrying."
        ) from exc
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise ServerUnreachableError(f"{where}: connection lost during login: {exc}") from exc
    return ImapSession(client, account.name)


def connect_with_retry(
    account: AccountSettings,
    password: str,
    *,
    attempts: int = 4,
    base_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ImapSession:
    """Retry unreachable servers with exponential backoff; never retry a bad login."""
    delay = base_delay
    for attempt in range(1, attempts + 1):
        try:
            return connect(account, password)
        except ServerUnreachableError as exc:
            if attempt == attempts:
                raise
            log.warning(
                "imap_unreachable_retrying",
                account=account.name,
                attempt=attempt,
                retry_in_s=delay,
                error=str(exc),
            )
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover
