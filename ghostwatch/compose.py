"""Building the follow-up: a reply in the client's thread, as an :class:`EmailMessage`.

Pure: the clock (``now``) and the Message-ID come from the caller, nothing touches the
network, and the only randomness is :func:`make_message_id`'s default token.

The message is a personal reply the user approved, so it carries no ``Auto-Submitted``
(RFC 3834 §5) or ``Precedence`` header: those make the client's filters file it with
the newsletters. It threads by ``In-Reply-To`` and ``References`` (RFC 5322 §3.6.4) and
keeps the thread's subject behind a single "Re:".

Every header value that comes from mail or config (names, subject, addresses, extra
headers, the attachment's filename) goes through :func:`safe_header_value` before it
touches the message: a client whose name is ``"Acme\\r\\nBcc: evil@x"`` raises
:class:`HeaderInjectionError`; the value is neither sent nor quietly cleaned.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import re
import secrets
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime
from typing import Final

from ghostwatch.errors import GhostwatchError

# The threader's own reply/forward markers and [tag] pattern: a subject we write must
# normalize to the same key as the thread it answers. threads.py keeps it private.
from ghostwatch.threads import _PREFIX_RE

__all__ = [
    "MAX_REFERENCES",
    "Attachment",
    "ComposeError",
    "HeaderInjectionError",
    "ThreadContext",
    "compose",
    "make_message_id",
    "reply_subject",
    "safe_header_value",
]

#: References keeps the thread's first id plus this many of the latest (parent included).
MAX_REFERENCES: Final = 20

# RFC 5322 §2.1.1: a line is at most 998 octets. An id longer than this would not fit on
# a line of its own after "In-Reply-To: " or the folding space.
_MAX_ID_LEN: Final = 900
# 7bit bodies are kept to the hard line limit; longer lines go quoted-printable.
_MAX_7BIT_LINE: Final = 998

# A msg-id as RFC 5322 §3.6.4 writes it: printable ASCII without "<", ">" or "@" on
# either side of a single "@". Ours must have this shape.
_ID_TEXT = r"[\x21-\x3b\x3d\x3f\x41-\x7e]+"
_OWN_MSGID_RE: Final = re.compile(rf"<{_ID_TEXT}@{_ID_TEXT}>")
# Ids from mail are echoed verbatim; real clients emit some without "@", so those only
# need to be one printable-ASCII token in angle brackets.
_MAIL_MSGID_RE: Final = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+>")

_DOMAIN_RE: Final = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{8,128}")

# Unquoted addr-spec (RFC 5322 §3.4.1 dot-atom local part). Quoted local parts, domain
# literals and non-ASCII (SMTPUTF8) addresses are refused rather than half-supported.
_LOCAL_RE: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
)
# Characters that would change how many recipients an address field holds, or where
# the address ends: their presence is an injection attempt, not a typo.
_ADDRESS_STRUCTURE: Final = frozenset(' \t,;:<>"()[]\\')

_HEADER_NAME_RE: Final = re.compile(r"[A-Za-z0-9-]+")
# Headers compose() owns, plus Bcc (which must never appear in a sent message).
_RESERVED_HEADERS: Final = frozenset(
    {
        "from",
        "sender",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "mime-version",
    }
)

_MIME_TYPE_RE: Final = re.compile(
    r"(?P<maintype>[a-z0-9][a-z0-9!#$&^_.+-]*)/(?P<subtype>[a-z0-9][a-z0-9!#$&^_.+-]*)"
)

# RFC 2047 encoded words, found anywhere (Python's parser also decodes some that are not
# whitespace-delimited); the payload may itself contain "?=" after "=", hence non-greedy.
_ENCODED_WORD_RE: Final = re.compile(r"=\?([^?]*)\?([^?]*)\?(.*?)\?=", re.DOTALL)
_Q_ESCAPE_RE: Final = re.compile(rb"=([0-9A-Fa-f]{2})")

# Unicode categories refused in header values: controls (C0, DEL, C1 incl. NEL), line
# and paragraph separators (str.splitlines() breaks on all of them, and so does the email
# package), and lone surrogates (undecodable bytes of a header read with surrogateescape).
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Zl", "Zp", "Cs"})


class ComposeError(GhostwatchError):
    """A follow-up cannot be built from these values (bad id, address, filename, clock)."""


class HeaderInjectionError(ComposeError):
    """A header value would add or split header lines or recipients; nothing was sent."""


@dataclass(frozen=True, slots=True)
class ThreadContext:
    """What the reply needs to know about the thread it answers.

    ``message_ids`` are the thread's Message-IDs in date order (``"<...>"``, as
    :func:`ghostwatch.threads.parse_msgid_list` returns them); ``reply_to_message_id`` is
    the message answered; ``to_address`` is chosen by the caller (where the client last
    wrote from, else the original recipient).
    """

    subject: str
    message_ids: tuple[str, ...]
    reply_to_message_id: str
    to_address: str
    to_name: str = ""
    cc: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file to attach, sent base64 with ``Content-Disposition: attachment``."""

    filename: str
    content: bytes
    mime_type: str = "application/pdf"


# --- header values -----------------------------------------------------------------------


def _refused_char(text: str) -> tuple[int, str] | None:
    for i, ch in enumerate(text):
        if ch != "\t" and unicodedata.category(ch) in _REFUSED_CATEGORIES:
            return i, ch
    return None


def _encoded_word_readings(value: str) -> Iterator[str]:
    """Every text an RFC 2047 encoded word in ``value`` could decode to.

    Deliberately generous (each base64 padding repair, the raw bytes as Latin-1 and in the
    declared charset) so that no decoder sees a control character this check missed.
    """
    for match in _ENCODED_WORD_RE.finditer(value):
        charset = match.group(1).partition("*")[0]
        payload = match.group(3).encode("utf-8", "surrogatepass")
        if match.group(2).lower() == "q":
            unescaped = _Q_ESCAPE_RE.sub(lambda m: bytes([int(m.group(1), 16)]), payload)
            candidates = [unescaped.replace(b"_", b" ")]
        else:
            candidates = []
            for pad in (b"", b"=", b"==", b"==="):
                try:
                    candidates.append(base64.b64decode(payload + pad, validate=False))
                except binascii.Error:
                    continue
            candidates.append(payload)  # what Python keeps when nothing decodes
        for raw in candidates:
            # Latin-1 keeps every ASCII control byte visible whatever the charset says;
            # only bytes below 0x20 and DEL count here, as UTF-8 continuation bytes would
            # read as harmless C1 controls.
            yield "".join(ch for ch in raw.decode("latin-1") if ch < " " or ch == "\x7f")
            try:
                yield raw.decode(charset, "replace")  # catches UTF-7, UTF-16 and friends
            except (LookupError, ValueError):
                continue


def safe_header_value(name: str, value: str) -> str:
    """Return ``value`` unchanged if it is safe in header ``name``; raise otherwise.

    Refuses CR, LF, NUL and every other control character except TAB (also NEL, U+2028,
    U+2029 and lone surrogates), whether written plainly or inside an RFC 2047 encoded
    word: Python's email package before 3.11.10/3.12.5 decodes a display name's
    ``=?utf-8?q?=0D=0A...?=`` and writes the CR LF raw (CVE-2024-6923). Nothing is
    stripped: a value that needs cleaning is a value someone crafted.
    """
    found = _refused_char(value)
    if found is not None:
        pos, ch = found
        raise HeaderInjectionError(
            f"header {name}: refusing a value with control character U+{ord(ch):04X} at "
            f"position {pos}: {value[:80]!r}"
        )
    for reading in _encoded_word_readings(value):
        found = _refused_char(reading)
        if found is not None:
            raise HeaderInjectionError(
                f"header {name}: refusing a value whose RFC 2047 encoded word decodes to "
                f"control character U+{ord(found[1]):04X}: {value[:80]!r}"
            )
    return value


def _check_address(field: str, value: str) -> str:
    safe_header_value(field, value)
    if any(ch in _ADDRESS_STRUCTURE for ch in value) or value.count("@") > 1:
        raise HeaderInjectionError(
            f"header {field}: {value!r} is not a single address (it holds spaces, commas, "
            "angle brackets, quotes or more than one @)"
        )
    local, at, domain = value.partition("@")
    if not at or not _LOCAL_RE.fullmatch(local) or not _DOMAIN_RE.fullmatch(domain):
        raise ComposeError(
            f"header {field}: {value!r} is not an ASCII address of the form local@domain"
        )
    return value


def _check_mail_msgid(field: str, value: str) -> str:
    safe_header_value(field, value)
    if len(value) > _MAX_ID_LEN or not _MAIL_MSGID_RE.fullmatch(value):
        raise ComposeError(
            f"header {field}: {value[:80]!r} is not a message id of the form <...> "
            f"(printable ASCII, at most {_MAX_ID_LEN} characters)"
        )
    return value


def _check_own_msgid(value: str) -> str:
    safe_header_value("Message-ID", value)
    if len(value) > _MAX_ID_LEN or not _OWN_MSGID_RE.fullmatch(value):
        raise ComposeError(f"header Message-ID: {value[:80]!r} is not of the form <left@right>")
    return value


class _MsgIdHeader(str):
    """A Message-ID, In-Reply-To or References value folded only between ids.

    The policy's generic folder RFC 2047-encodes any word longer than a line "so it can
    wrap it", which turns an 85-character Outlook id in In-Reply-To into ``=?utf-8?q?...``
    that no client decodes there, and the reply drops out of the thread. An object with
    a ``name`` and ``fold()`` is a header object to every ``email.policy.EmailPolicy``
    (see ``EmailPolicy.fold``), so this one is written exactly as built.
    """

    name: str
    ids: tuple[str, ...]

    def __new__(cls, name: str, ids: Sequence[str]) -> _MsgIdHeader:
        self = super().__new__(cls, " ".join(ids))
        self.name = name
        self.ids = tuple(ids)
        return self

    def __getnewargs__(self) -> tuple[str, tuple[str, ...]]:  # type: ignore[override]
        # str's own would pass the joined value alone; copy.deepcopy and pickle need both.
        return self.name, self.ids

    def fold(self, *, policy: Policy) -> str:
        """``Name: id id`` folded at the spaces between ids, lines ending with the policy's
        linesep; an id too long for a shared line gets its own (RFC 5322 §3.2.2 allows
        FWS between msg-ids)."""
        limit = policy.max_line_length or _MAX_7BIT_LINE
        lines = [f"{self.name}:"]
        for ident in self.ids:
            if lines[-1].endswith(":") or len(lines[-1]) + 1 + len(ident) <= limit:
                lines[-1] += " " + ident
            else:
                lines.append(" " + ident)
        return policy.linesep.join(lines) + policy.linesep


# --- public helpers ------------------------------------------------------------------------


def _random_token() -> str:
    return secrets.token_hex(16)


def make_message_id(domain: str, *, token: str | None = None, now: datetime | None = None) -> str:
    """A new Message-ID ``<TOKEN@domain>``, or ``<20261128T101500.TOKEN@domain>`` with ``now``.

    ``token`` defaults to 128 random bits (``secrets.token_hex(16)``); tests pass their
    own. The timestamp (UTC) is only a debugging aid: uniqueness comes from the token,
    and no clock is read here. ``domain`` must be a host name (letters, digits, dots and
    hyphens), usually the sending address's domain.
    """
    if not _DOMAIN_RE.fullmatch(domain):
        raise ComposeError(
            f"Message-ID domain {domain[:80]!r}: use a host name of letters, digits, dots "
            "and hyphens (the domain of the sending address)"
        )
    token = _random_token() if token is None else token
    if not _TOKEN_RE.fullmatch(token):
        raise ComposeError(
            f"Message-ID token {token[:80]!r}: use 8 to 128 letters, digits, '_' or '-'"
        )
    left = token
    if now is not None:
        if now.utcoffset() is None:
            raise ComposeError("make_message_id: now must be timezone-aware")
        left = f"{now.astimezone(UTC):%Y%m%dT%H%M%S}.{token}"
    return f"<{left}@{domain}>"


def reply_subject(original: str, locale: str = "en") -> str:
    """``"Re: "`` plus ``original`` without its leading reply/forward markers.

    "RE: Re: X", "R: X", "RIF: X", "AW: X", "Fwd: X" all become "Re: X" (the markers are
    the ones :func:`ghostwatch.threads.normalize_subject` strips). Bracket tags are kept
    in their order: "[Ticket #12] Re: X" becomes "Re: [Ticket #12] X". Runs of white space
    (left by header unfolding) become one space. Every locale gets "Re:": Italian clients
    write "R:", but every client understands "Re:" and threads on it.
    """
    del locale  # one prefix for all; the parameter keeps the call sites locale-aware
    pos = 0
    tags: list[str] = []
    while (m := _PREFIX_RE.match(original, pos)) is not None and m.end() > pos:
        if m.group("tag") is not None:
            tags.append(m.group("tag"))
        pos = m.end()
    return "Re: " + " ".join([*tags, *original[pos:].split()])


# --- the message -----------------------------------------------------------------------------


def _references(thread: ThreadContext, parent: str) -> list[str]:
    """RFC 5322 §3.6.4: the parent's References followed by the parent's id.

    The parent's References are approximated by the thread's ids dated before it (all of
    them if the parent is not in the list). Capped to the first id plus the last
    :data:`MAX_REFERENCES` (parent included), trimmed from the middle as netnews does
    (RFC 5537): the root anchors the thread, the recent ids link it.
    """
    ids = list(dict.fromkeys(_check_mail_msgid("References", i) for i in thread.message_ids))
    if parent in ids:
        ids = ids[: ids.index(parent)]
    chain = [*ids, parent]
    if len(chain) > MAX_REFERENCES + 1:
        chain = [chain[0], *chain[-MAX_REFERENCES:]]
    return chain


def _check_attachment(att: Attachment) -> tuple[str, str]:
    safe_header_value("Content-Disposition filename", att.filename)
    if att.filename.strip() in ("", ".", "..") or any(c in att.filename for c in "/\\"):
        raise ComposeError(
            f"attachment filename {att.filename!r}: give a plain file name, without directories"
        )
    m = _MIME_TYPE_RE.fullmatch(att.mime_type.lower())
    if m is None or m["maintype"] in ("multipart", "message"):
        raise ComposeError(
            f"attachment {att.filename!r}: MIME type {att.mime_type!r} is not a type/subtype "
            "for a file"
        )
    return m["maintype"], m["subtype"]


def _body_cte(part: str, text: str) -> str:
    """7bit for printable ASCII in lines of at most 998 bytes, else quoted-printable
    (RFC 2045 §2.7, §6.7)."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ComposeError(f"{part} body: not encodable as UTF-8 ({exc.reason})") from exc
    # Split the bytes, as set_content does: str.splitlines() would also break at NEL,
    # U+2028 or form feed and hide them from the check.
    for line in data.splitlines():
        if len(line) > _MAX_7BIT_LINE or any(not (0x20 <= b <= 0x7E or b == 0x09) for b in line):
            return "quoted-printable"
    return "7bit"


def compose(
    *,
    account_address: str,
    display_name: str | None,
    thread: ThreadContext,
    text: str,
    html: str | None,
    attachments: Sequence[Attachment] = (),
    message_id: str,
    now: datetime,
    extra_headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """The follow-up as a message ready for ``as_bytes(policy=email.policy.SMTP)``.

    Headers: From, To, Cc (if any), Subject (:func:`reply_subject`), Date (``now``, which
    must be timezone-aware), Message-ID, In-Reply-To, References, ``extra_headers`` (e.g.
    ``X-Ghostwatch-Step``; names ``[A-Za-z0-9-]+`` and not one compose sets), MIME-Version.
    Body: text/plain, with the HTML as a multipart/alternative when given, inside a
    multipart/mixed when there are attachments. Body line endings become CRLF on the
    wire and the text ends with a line break.

    Raises :class:`HeaderInjectionError` when any header value from mail or config holds
    a control character or an address smuggles in more recipients, and
    :class:`ComposeError` for other values that cannot be sent as given.
    """
    # Validate everything before building anything: a refused value must not leave a
    # half-built message behind, and the first error names the field.
    if display_name:
        safe_header_value("From", display_name)
    _check_address("From", account_address)
    safe_header_value("To", thread.to_name)
    _check_address("To", thread.to_address)
    cc = [_check_address("Cc", a) for a in thread.cc]
    subject = reply_subject(safe_header_value("Subject", thread.subject))
    if now.utcoffset() is None:
        raise ComposeError("compose: now must be timezone-aware (the daemon's clock is UTC)")
    _check_own_msgid(message_id)
    parent = _check_mail_msgid("In-Reply-To", thread.reply_to_message_id)
    references = _references(thread, parent)
    extras = list((extra_headers or {}).items())
    for name, value in extras:
        if not _HEADER_NAME_RE.fullmatch(name):
            raise HeaderInjectionError(
                f"extra header name {name[:80]!r}: use letters, digits and hyphens only"
            )
        lowered = name.lower()
        if lowered in _RESERVED_HEADERS or lowered.startswith("content-"):
            raise HeaderInjectionError(
                f"extra header {name}: compose sets this header itself; it cannot be overridden"
            )
        safe_header_value(name, value)
    parts = [_check_attachment(a) for a in attachments]
    text_cte = _body_cte("text", text)
    html_cte = _body_cte("HTML", html) if html is not None else None

    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = Address(display_name=display_name or "", addr_spec=account_address)
    msg["To"] = Address(display_name=thread.to_name, addr_spec=thread.to_address)
    if cc:
        msg["Cc"] = [Address(addr_spec=a) for a in cc]
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = _MsgIdHeader("Message-ID", [message_id])
    msg["In-Reply-To"] = _MsgIdHeader("In-Reply-To", [parent])
    msg["References"] = _MsgIdHeader("References", references)
    for name, value in extras:
        msg[name] = value
    msg["MIME-Version"] = "1.0"

    msg.set_content(text, subtype="plain", charset="utf-8", cte=text_cte)
    if html is not None and html_cte is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8", cte=html_cte)
    for att, (maintype, subtype) in zip(attachments, parts, strict=True):
        # A non-ASCII filename is written as RFC 2231 filename*=utf-8''... by the policy.
        msg.add_attachment(
            att.content,
            maintype=maintype,
            subtype=subtype,
            disposition="attachment",
            filename=att.filename,
        )
    return msg
