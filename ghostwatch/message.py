"""From a fetched header block to the facts ghostwatch keeps about a message.

Only header fields are fetched (see :data:`FETCH_HEADERS`); bodies never are, except
for bounces and auto-replies (see ``sync``). Parsing is total: malformed input
yields a :class:`MessageMeta` with what could be read, never an exception.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import Header
from enum import StrEnum
from functools import lru_cache

from ghostwatch.classify import HEADER_FIELDS as CLASSIFY_FIELDS
from ghostwatch.classify import Kind, address_pairs, classify, header_text, raw_header_text
from ghostwatch.headers import HeaderMap
from ghostwatch.records import builder
from ghostwatch.threads import parse_msgid_list

_BASE_FIELDS = (
    "Message-ID",
    "In-Reply-To",
    "References",
    "Subject",
    "From",
    "Sender",
    "To",
    "Cc",
    "Reply-To",
    "Date",
    "Content-Type",
)
FETCH_HEADERS: tuple[str, ...] = tuple(
    dict.fromkeys(f.upper() for f in (*_BASE_FIELDS, *CLASSIFY_FIELDS))
)
_MAX_HEADER = 4000  # a single header value longer than this is junk or an attack


class Direction(StrEnum):
    OUTGOING = "out"  # from one of the account's addresses to someone else
    INCOMING = "in"
    SELF = "self"  # from us, to nobody but us: a note to self


@dataclass(frozen=True, slots=True)
class MessageMeta:
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    from_addr: str
    from_name: str
    to_addrs: tuple[str, ...]
    cc_addrs: tuple[str, ...]
    reply_to: tuple[str, ...]
    date: datetime
    direction: Direction
    kind: Kind
    reasons: tuple[str, ...]
    content_type: str
    problems: tuple[str, ...] = field(default=())


_new_meta = builder(MessageMeta)  # once per message synced: see ghostwatch.records


def decode_text(value: object) -> str:
    """Decode RFC 2047 words; tolerate any garbage (bad charsets, raw 8-bit)."""
    return " ".join(header_text(value).split())


def parse_addresses(values: list[str]) -> list[tuple[str, str]]:
    """(display name, lowercased address) pairs; entries without '@' are dropped."""
    return [pair for value in values for pair in _address_list(value[:_MAX_HEADER])]


@lru_cache(maxsize=16384)
def _address_list(value: str) -> tuple[tuple[str, str], ...]:
    # Cached: the same From values recur across a mailbox.
    return tuple(
        (decode_text(name), addr)
        for name, addr in address_pairs(value)
        if "@" in addr and " " not in addr
    )


def parse_date(value: str | None, fallback: datetime) -> tuple[datetime, bool]:
    """Parse a Date header into UTC; returns (date, ok)."""
    if not value:
        return fallback, False
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return fallback, False
    if parsed.tzinfo is None:  # RFC 5322 "-0000": zone unknown; treat as UTC
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC), True
    except (OverflowError, ValueError):
        return fallback, False


def _first_msgid(value: str | None) -> str | None:
    ids = parse_msgid_list(value)
    return ids[-1] if ids else None


def _all(msg: HeaderMap, name: str) -> list[str]:
    return [raw_header_text(v) for v in (msg.get_all(name) or [])]


def _references_text(msg: HeaderMap) -> str:
    """References, uncapped at the end: its last id is the parent (RFC 5322 §3.6.4),
    so an overlong header loses its oldest ids, never its newest."""
    parts = [raw_header_text(v) if isinstance(v, Header) else str(v) for v in
             (msg.get_all("References") or [])]  # fmt: skip
    return " ".join(parts)[-_MAX_HEADER * 4 :]


def _one(msg: HeaderMap, name: str) -> str | None:
    value = msg.get(name)
    return None if value is None else raw_header_text(value)


def parse_headers(
    raw: bytes, *, internal_date: datetime, own_addresses: frozenset[str]
) -> MessageMeta:
    """Build a :class:`MessageMeta` from a raw header block."""
    problems: list[str] = []
    msg = HeaderMap(raw)
    if msg.defects:
        problems.append("defects: " + ", ".join(msg.defects[:3]))

    ids = _all(msg, "Message-ID")
    message_id = None
    if ids:
        found = parse_msgid_list(ids[0])
        message_id = found[0] if found else None
        if len(ids) > 1:
            problems.append("duplicate Message-ID header")
    if message_id is None:
        problems.append("missing Message-ID")

    in_reply_to = _first_msgid(_one(msg, "In-Reply-To"))
    references = parse_msgid_list(_references_text(msg))
    if message_id is not None and message_id in references:
        problems.append("references itself")
        references = tuple(r for r in references if r != message_id)
    if in_reply_to == message_id:
        in_reply_to = None

    senders = parse_addresses(_all(msg, "From")) or parse_addresses(_all(msg, "Sender"))
    from_name, from_addr = senders[0] if senders else ("", "")
    if not from_addr:
        problems.append("no usable From")
    to_addrs = tuple(dict.fromkeys(a for _, a in parse_addresses(_all(msg, "To"))))
    cc_addrs = tuple(dict.fromkeys(a for _, a in parse_addresses(_all(msg, "Cc"))))
    reply_to = tuple(a for _, a in parse_addresses(_all(msg, "Reply-To")))

    date, ok = parse_date(_one(msg, "Date"), internal_date)
    if not ok:
        problems.append("bad or missing Date; using the server's internal date")

    if from_addr in own_addresses:
        recipients = set(to_addrs) | set(cc_addrs)
        direction = (
            Direction.SELF if recipients and recipients <= own_addresses else Direction.OUTGOING
        )
        if not recipients:
            direction = Direction.SELF
    else:
        direction = Direction.INCOMING
    # Outgoing mail is classified too: the user's own vacation responder or a
    # newsletter they send is not a message that awaits an answer.
    classification = classify(msg)

    return _new_meta(
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        subject=decode_text(msg.get("Subject")),
        from_addr=from_addr,
        from_name=from_name,
        to_addrs=to_addrs,
        cc_addrs=cc_addrs,
        reply_to=reply_to,
        date=date,
        direction=direction,
        kind=classification.kind,
        reasons=classification.reasons,
        content_type=(msg.get_content_type() or "text/plain")[:100],
        problems=tuple(problems),
    )
