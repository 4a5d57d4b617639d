"""What kind of mail is this: a person's reply, an auto-reply, a bounce or bulk mail.

`classify` looks at header fields only (the sync never fetches bodies); `parse_bounce`
reads a whole bounce once the shell has fetched it. Both are pure and never raise.
"""

import re
import unicodedata
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from email.header import Header, decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value, getaddresses
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

# flufl.bounce 6 ships py.typed and lists its re-exports in __all__, so mypy --strict
# accepts this import as it is; no type: ignore is needed (an unused one is an error).
from flufl.bounce import all_failures

from ghostwatch.headers import HeaderMap


class Kind(StrEnum):
    """What sent a message, as far as its headers tell."""

    HUMAN = "human"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    BULK = "bulk"  # mailing list, newsletter, noreply/notification sender


@dataclass(frozen=True, slots=True)
class Classification:
    """A kind and the evidence for it, e.g. ``("auto-submitted: auto-replied",)``."""

    kind: Kind
    reasons: tuple[str, ...]

    @property
    def automated(self) -> bool:
        """True for anything a person did not write."""
        return self.kind is not Kind.HUMAN


@dataclass(frozen=True, slots=True)
class BounceReport:
    """Failed recipients of a bounce (lowercased) and the Message-ID it bounced."""

    permanent: frozenset[str]
    temporary: frozenset[str]
    original_message_id: str | None  # "<left@right>", angle brackets included


# X-Auto-Response-Suppress is deliberately absent. It is a *request* from the sender
# ("don't send me OOF/DR/RN...", MS-OXCMAIL 2.1.3.2.20), not a mark of an automatic
# message: Outlook and Exchange Online stamp it on ordinary mail people write (e.g.
# "DR, RN, NRN, OOF, AutoReply" on a hand-written reply relayed by Exchange Online).
# Projects that once read it as "auto-generated" took it out after losing real mail:
# Discourse (PR #21367, 2023), sisimai (issue #491), Redmine (#19558), osTicket
# (PR #5320), and Jitbit's helpdesk write-up; Chatwoot never used it. Zammad reads only
# the value "All", and only to decide whether to send its own auto-response. An
# Exchange OOF carries real signals (Auto-Submitted, X-MS-Exchange-*, the subject),
# so ignoring the header loses nothing, and keeps a client's answer from being taken
# for silence, which would get them nudged after they replied.
HEADER_FIELDS: tuple[str, ...] = (
    "From",
    "Sender",
    "Subject",
    "Return-Path",
    "Content-Type",
    "Auto-Submitted",
    "Precedence",
    "X-Autoreply",
    "X-Autorespond",
    "X-Autoresponse",
    "X-AutoReply-From",
    "X-Mail-Autoreply",
    "X-MS-Exchange-Inbox-Rules-Loop",
    "X-MS-Exchange-Generated-Message-Source",
    "X-Failed-Recipients",
    "List-Id",
    "List-Unsubscribe",
    "List-Post",
    "Feedback-ID",
)

# Header values longer than this are cut before any work; no real field comes close.
_MAX_VALUE = 4096


# -- header access -----------------------------------------------------------------


def _bytes_to_text(data: bytes) -> str:
    """Undeclared 8-bit header bytes: UTF-8 when they are, else Windows-1252."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _raw_text(value: object) -> str:
    """A header value as text with RFC 2047 words still encoded, unfolded and capped.

    compat32 hands back a `Header` (charset unknown-8bit) when the field holds raw 8-bit
    bytes, and a str otherwise (possibly with surrogate escapes).
    """
    if type(value) is str and value.isascii():  # the usual case: nothing to decode
        return " ".join(value[:_MAX_VALUE].split())
    try:
        if isinstance(value, Header):
            text = "".join(
                _bytes_to_text(chunk) if isinstance(chunk, bytes) else chunk
                for chunk, _charset in decode_header(value)
            )
        else:
            text = str(value)[: _MAX_VALUE * 2]
            try:
                data = text.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:  # a lone surrogate that no byte produced
                data = text.encode("utf-8", "replace")
            text = _bytes_to_text(data)
    except Exception:
        return ""
    return " ".join(text[:_MAX_VALUE].split())


@lru_cache(maxsize=16384)
def _decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words; on bad charsets or bytes, decode what can be.

    Cached: names and subjects repeat across a mailbox, and decoding is the
    costliest step of reading a header."""
    if "=?" not in text:
        return text
    # LookupError (unknown charset), UnicodeDecodeError, HeaderParseError, ...
    with suppress(Exception):
        return str(make_header(decode_header(text)))
    try:
        pieces = []
        for chunk, charset in decode_header(text):
            if isinstance(chunk, str):
                pieces.append(chunk)
                continue
            try:
                pieces.append(chunk.decode(charset or "ascii", errors="replace"))
            except LookupError:
                pieces.append(_bytes_to_text(chunk))
        return "".join(pieces)
    except Exception:
        return text


@lru_cache(maxsize=16384)
def address_pairs(value: str) -> tuple[tuple[str, str], ...]:
    """(display name, lowercased address) pairs of one address-list value; cached,
    since the same From and To values recur across a mailbox. Never raises."""
    try:
        pairs = getaddresses([value])
    except Exception:
        return ()
    return tuple((display, addr.strip().lower()) for display, addr in pairs)


def raw_header_text(value: object) -> str:
    """A header value as text (RFC 2047 words left encoded); never raises."""
    return _raw_text(value)


def header_text(value: object) -> str:
    """A header value decoded for display (RFC 2047 words decoded); never raises."""
    return _decode_words(_raw_text(value)) if value is not None else ""


def _normal(text: str) -> str:
    """Case- and form-insensitive text for matching (NFC, casefolded, spaces collapsed)."""
    if text.isascii():  # NFC leaves ASCII alone, and casefold is lower there
        return " ".join(text.lower().split())
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


class _Fields:
    """Read-only, never-raising view of the header fields classification needs."""

    def __init__(self, headers: Message | HeaderMap) -> None:
        self._headers = headers
        # The rules ask for the same few fields many times over; read each once.
        self._raw: dict[str, list[str]] = {}
        self._text: dict[str, list[str]] = {}
        self._ctype: tuple[str, str] | None = None
        # Most rules ask about fields a message does not have; answer those at once.
        self._present = headers.names() if isinstance(headers, HeaderMap) else None

    def raw(self, name: str) -> list[str]:
        """Every occurrence of a field, encoded words left as they are."""
        if self._present is not None and name.lower() not in self._present:
            return []
        if name not in self._raw:
            values = self._headers.get_all(name) or []
            self._raw[name] = [_raw_text(value) for value in values[:50]]
        return self._raw[name]

    def text(self, name: str) -> list[str]:
        """Every non-empty occurrence of a field, decoded and normalised for matching."""
        if self._present is not None and name.lower() not in self._present:
            return []
        if name not in self._text:
            self._text[name] = [t for t in (_normal(_decode_words(v)) for v in self.raw(name)) if t]
        return self._text[name]

    def first(self, name: str) -> str:
        values = self.text(name)
        return values[0] if values else ""

    def present(self, name: str) -> bool:
        return bool(self.text(name))

    def addresses(self, *names: str) -> list[tuple[str, str]]:
        """(decoded display name, lowercased address) pairs from address fields."""
        return [
            (_normal(_decode_words(display)), addr)
            for name in names
            for value in self.raw(name)
            for display, addr in address_pairs(value)
        ]

    def content_type(self) -> tuple[str, str]:
        """(content type, report-type parameter), both lowercased; "" when unknown."""
        if self._ctype is None:
            self._ctype = self._read_content_type()
        return self._ctype

    def _read_content_type(self) -> tuple[str, str]:
        try:
            ctype = self._headers.get_content_type()
            param = self._headers.get_param("report-type")
        except Exception:
            return "", ""
        report_type = collapse_rfc2231_value(param) if param else ""
        return ctype.lower(), _token(str(report_type))


def _token(value: str) -> str:
    """The leading keyword of a structured value, safe to put in a reason string."""
    word = re.split(r"[\s;(,]", value.strip().lower(), maxsplit=1)[0]
    return re.sub(r"[^a-z0-9._+-]", "", word)[:40]


def _local_part(address: str) -> str:
    # A bare "MAILER-DAEMON" (no domain) is what some MTAs put in From.
    return address.rpartition("@")[0] if "@" in address else address


# -- subject patterns ----------------------------------------------------------------

# Bracketed tags some gateways prepend ("[EXT]", "[SPAM]") are skipped; reply and
# forward prefixes are not: see _OOO_SUBJECTS.
_TAGS = r"^(?:\[[^\]]{0,40}\]\s*)*"

# What may follow a leading out-of-office phrase: the end, punctuation, a date or a
# "until/from" word. This keeps "Absent mindedness in the spec" and "Out of office
# party" human while accepting "Afwezig tot 12 mei" or "Out of office until Monday".
_OOO_TAIL = (
    r"(?=$|\s*[:\uff1a\-\u2013\u2014|/(\[,;.!]|\s+\d|\s+(?:until|till|from|through|thru"
    r"|fino|sino|dal|dall|al|bis|vom|ab|jusqu|du|au|hasta|desde|del|tot|van|t/m)\b)"
)


class _Phrases(NamedTuple):
    """Subject phrases, first match wins; ``any`` matches where one of them does."""

    table: tuple[tuple[re.Pattern[str], str], ...]
    any: re.Pattern[str]


def _phrases(table: list[tuple[str, str, str]], tail: str) -> _Phrases:
    return _Phrases(
        tuple(
            (re.compile(_TAGS + pattern + tail), f"{label} ({lang})")
            for pattern, label, lang in table
        ),
        # One pass rules out the usual subject that opens with none of them.
        re.compile(_TAGS + "(?:" + "|".join(f"(?:{p})" for p, _, _ in table) + ")" + tail),
    )


# The phrase must open the subject. Exchange ("Automatic reply:", "Risposta automatica:",
# "Abwesenheitsnotiz:"), Sieve (RFC 5230 §4.5 "Auto:") and custom responders all put it
# first. A "Re:"/"Fwd:" in front means a person replied to or forwarded an auto-reply;
# that is an answer, so those prefixes are not stripped (see _replied_to_auto_reply).
_OOO_SUBJECTS = _phrases(
    [
        (r"out[\s-]+of[\s-]+(?:the[\s-]+)?office", "out of office", "en"),
        (r"automatic[\s-]+repl(?:y|ies)", "automatic reply", "en"),
        (r"automatic[\s-]+response", "automatic reply", "en"),
        (r"auto[\s-]?repl(?:y|ies)", "auto-reply", "en"),
        (r"auto[\s-]?response", "auto-reply", "en"),
        (r"away[\s-]+from[\s-]+(?:the[\s-]+)?office", "away from the office", "en"),
        (r"on[\s-]+(?:vacation|holiday)", "on vacation", "en"),
        (r"fuori[\s-]+(?:sede|ufficio)", "out of office", "it"),
        (r"risposta[\s-]+automatica", "automatic reply", "it"),
        (r"assente", "absent", "it"),
        (r"in[\s-]+ferie", "on vacation", "it"),
        (r"abwesenheitsnotiz", "out of office", "de"),
        (r"automatische[\s-]+antwort", "automatic reply", "de"),
        (r"abwesend", "absent", "de"),
        (r"absence[\s-]+du[\s-]+bureau", "out of office", "fr"),
        (r"r[ée]ponse[\s-]+automatique", "automatic reply", "fr"),
        (r"absente?", "absent", "fr"),
        (r"fuera[\s-]+de[\s-]+la[\s-]+oficina", "out of office", "es"),
        (r"respuesta[\s-]+autom[áa]tica", "automatic reply", "es"),
        (r"afwezig", "absent", "nl"),
        (r"automatisch[\s-]+antwoord", "automatic reply", "nl"),
        (
            r"[āa]rpus[\s-]+biroja(?:[\s-]+atra[sš]an[āa]s)?(?:[\s-]+autom[āa]tisk[āa][\s-]+atbilde)?",
            "out of office",
            "lv",
        ),
    ],
    _OOO_TAIL,
)

# Non-delivery subjects of Postfix, Exim, sendmail, qmail, Gmail and localized Exchange.
# Only read together with a mailer's Return-Path (see _bounce_reasons).
_BOUNCE_SUBJECTS = _phrases(
    [
        (r"undelivered[\s-]+mail", "delivery failure", "en"),
        (r"undeliverable", "delivery failure", "en"),
        (r"delivery[\s-]+status[\s-]+notification", "delivery failure", "en"),
        (r"(?:mail[\s-]+)?delivery[\s-]+(?:failed|failure)", "delivery failure", "en"),
        (r"returned[\s-]+mail", "delivery failure", "en"),
        (r"failure[\s-]+notice", "delivery failure", "en"),
        (r"non[\s-]+recapitabile", "delivery failure", "it"),
        (r"mancato[\s-]+recapito", "delivery failure", "it"),
        (r"impossibile[\s-]+recapitare", "delivery failure", "it"),
        (r"(?:unzustellbar|nicht[\s-]+zustellbar)", "delivery failure", "de"),
        (r"non[\s-]+remis", "delivery failure", "fr"),
        (r"[ée]chec[\s-]+de[\s-]+(?:la[\s-]+)?remise", "delivery failure", "fr"),
        (r"no[\s-]+se[\s-]+puede[\s-]+entregar", "delivery failure", "es"),
        (r"onbestelbaar", "delivery failure", "nl"),
        (r"(?:mail[\s-]+)?could[\s-]+not[\s-]+be[\s-]+delivered", "delivery failure", "en"),
    ],
    r"\b",
)

_REPLY_PREFIX = re.compile(
    _TAGS + r"(?:(?:re|r|aw|sv|vs|antw|wg|fwd?|tr|rv|i|enc)\s*(?:\[\d+\])?\s*[:\uff1a]\s*)+"
)


def _match_subject(subject: str, phrases: _Phrases) -> str | None:
    if phrases.any.match(subject) is None:
        return None
    for pattern, label in phrases.table:
        if pattern.match(subject):
            return label
    return None


def _replied_to_auto_reply(subject: str) -> bool:
    prefix = _REPLY_PREFIX.match(subject)
    return prefix is not None and _match_subject(subject[prefix.end() :], _OOO_SUBJECTS) is not None


# -- rules ---------------------------------------------------------------------------

_BOUNCE_LOCAL_PARTS = frozenset({"mailer-daemon", "mailerdaemon", "postmaster", "mdaemon"})
_BOUNCE_DISPLAY = re.compile(r"\bmail delivery (?:subsystem|system)\b|^postmaster$")

# (pattern on the local part, label). Prefixes must end at a separator so "noreen@" and
# "mailerman@" stay human; "bounce" is a prefix on its own (VERP: bounces+123=x@...).
_BULK_LOCAL_PARTS = (
    (re.compile(r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply)(?:$|[-_.+])"), "noreply"),
    (re.compile(r"^notifications?(?:$|[-_.+])"), "notifications"),
    (re.compile(r"^newsletters?(?:$|[-_.+])"), "newsletter"),
    (re.compile(r"^mailer(?:$|[-_.+])"), "mailer"),
    (re.compile(r"^bounce"), "bounce"),
)

# RFC 3834 §3.3 asks responders to send with a null MAIL FROM, and RFC 5321 §4.5.5
# requires it for delivery reports; the final delivery records it as Return-Path: <>.
_NULL_RETURN_PATH = re.compile(r"^<\s*>$")

# Values of an X-Autoreply-style field that mean "not an auto-reply".
_NEGATIVE = frozenset({"no", "false", "0"})

_AUTOREPLY_FIELDS = (
    "X-Autoreply",
    "X-Autorespond",
    "X-Autoresponse",
    "X-AutoReply-From",
    "X-Mail-Autoreply",
)


def _null_return_path(fields: _Fields) -> bool:
    # The topmost Return-Path is the one the final delivery wrote.
    values = fields.raw("Return-Path")
    return bool(values) and _NULL_RETURN_PATH.match(values[0]) is not None


# BATV/SRS-style tags in front of a bounce address: prvs=1234abcd=ndr@example.com.
_TAGGED_LOCAL = re.compile(r"^(?:prvs|btv1|msprvs1)=[^=]*=", re.IGNORECASE)


def _bounce_return_path(fields: _Fields) -> bool:
    """The envelope sender of a non-delivery report: null (RFC 5321 §4.5.5), or one of
    the mailer's own addresses some gateways use instead (MAILER-DAEMON@, ndr@)."""
    values = fields.raw("Return-Path")
    if not values:
        return False
    if _NULL_RETURN_PATH.match(values[0]) is not None:
        return True
    local = _TAGGED_LOCAL.sub("", _local_part(values[0].strip().strip("<>")))
    return local in _BOUNCE_LOCAL_PARTS or local.startswith("ndr")


def _bounce_reasons(fields: _Fields) -> list[str]:
    reasons: list[str] = []
    ctype, report_type = fields.content_type()
    # RFC 3464 §2: a DSN is multipart/report (RFC 6522) with report-type=delivery-status.
    if ctype == "multipart/report" and report_type == "delivery-status":
        reasons.append("content-type: multipart/report delivery-status")
    for display, address in fields.addresses("From", "Sender"):
        local = _local_part(address)
        if local in _BOUNCE_LOCAL_PARTS:
            reasons.append(f"from: {local}")
        elif _BOUNCE_DISPLAY.search(display):
            reasons.append("from: mail delivery subsystem")
    if _bounce_return_path(fields):
        label = _match_subject(fields.first("Subject"), _BOUNCE_SUBJECTS)
        if label is not None:
            reasons.append(f"mailer return-path and subject: {label}")
    # Exim stamps its bounces with the addresses that failed.
    if fields.present("X-Failed-Recipients"):
        reasons.append("x-failed-recipients present")
    return reasons


def _auto_reply_reasons(fields: _Fields) -> list[str]:
    reasons: list[str] = []
    ctype, report_type = fields.content_type()
    # RFC 8098 §3: an MDN (read receipt) is report-type=disposition-notification. It
    # says the message was displayed, not that anyone answered it.
    if ctype == "multipart/report" and report_type == "disposition-notification":
        reasons.append("content-type: read receipt (disposition-notification)")
    # RFC 3834 §5: any Auto-Submitted value but "no" marks an automatic message
    # (auto-replied, auto-generated, auto-notified per RFC 5436, or an extension).
    for value in fields.text("Auto-Submitted"):
        keyword = _token(value)
        if keyword and keyword != "no":
            reasons.append(f"auto-submitted: {keyword}")
            break
    for name in _AUTOREPLY_FIELDS:
        values = fields.text(name)
        if values and _token(values[0]) not in _NEGATIVE:
            reasons.append(f"{name.lower()} present")
    # Exchange stamps messages its inbox rules generate or redirect (OOF included).
    if fields.present("X-MS-Exchange-Inbox-Rules-Loop"):
        reasons.append("x-ms-exchange-inbox-rules-loop present")
    if "mailbox rules agent" in fields.text("X-MS-Exchange-Generated-Message-Source"):
        reasons.append("x-ms-exchange-generated-message-source: mailbox rules agent")
    if _token(fields.first("Precedence")) == "auto_reply":
        reasons.append("precedence: auto_reply")
    if _null_return_path(fields):
        reasons.append("return-path: <> (null sender)")
    label = _match_subject(fields.first("Subject"), _OOO_SUBJECTS)
    if label is not None:
        reasons.append(f"subject: {label}")
    return reasons


def _bulk_reasons(fields: _Fields) -> list[str]:
    reasons: list[str] = []
    # RFC 2919 (List-Id) and RFC 2369 (List-Unsubscribe, List-Post). A person's answer
    # relayed by a list (a client's Google Group, say) lands here too: the reasons let
    # the judgment step weigh that against the thread.
    for name in ("List-Id", "List-Unsubscribe", "List-Post"):
        if fields.present(name):
            reasons.append(f"{name.lower()} present")
    # Precedence is not standardised, but RFC 3834 §2 names bulk/junk/list as traffic
    # not to answer. Sieve vacation replies also carry "Precedence: bulk"; the
    # auto-reply rules run first, so those stay auto-replies.
    precedence = _token(fields.first("Precedence"))
    if precedence in {"bulk", "junk", "list"}:
        reasons.append(f"precedence: {precedence}")
    for field in ("From", "Sender"):
        for _display, address in fields.addresses(field):
            local = _local_part(address)
            for pattern, label in _BULK_LOCAL_PARTS:
                if pattern.match(local):
                    reasons.append(f"{field.lower()}: {label} address")
                    break
    # Feedback-ID is the ESP campaign tag Gmail's feedback loop asks bulk senders for.
    # Amazon SES stamps it on everything it relays, so a person writing through an
    # SES-backed service would read as bulk; rare enough to accept.
    if fields.present("Feedback-ID"):
        reasons.append("feedback-id present")
    # Other machine reports (RFC 6522): abuse feedback (RFC 5965), TLS reports (RFC 8460).
    ctype, report_type = fields.content_type()
    if ctype == "multipart/report" and report_type not in {
        "delivery-status",
        "disposition-notification",
    }:
        reasons.append(f"content-type: multipart/report {report_type or 'unknown'}")
    return reasons


def _dedupe(reasons: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(reasons))


def classify(headers: Message | HeaderMap) -> Classification:
    """Classify a message from its header fields (see `HEADER_FIELDS`).

    ``headers`` comes from ``BytesHeaderParser(policy=compat32)``. Rules run in the order
    bounce > auto-reply > bulk > human, and the reasons are those of the winning kind.
    Never raises: headers that cannot be read at all classify as HUMAN, since treating
    an answer as silence (and nudging) is the costlier mistake.
    """
    try:
        fields = _Fields(headers)
        for kind, rules in (
            (Kind.BOUNCE, _bounce_reasons),
            (Kind.AUTO_REPLY, _auto_reply_reasons),
            (Kind.BULK, _bulk_reasons),
        ):
            reasons = rules(fields)
            if reasons:
                return Classification(kind, _dedupe(reasons))
        if _replied_to_auto_reply(fields.first("Subject")):
            return Classification(Kind.HUMAN, ("subject: reply to an auto-reply",))
        return Classification(Kind.HUMAN, ("no automation signal",))
    except Exception as exc:
        return Classification(Kind.HUMAN, (f"unparseable headers: {type(exc).__name__}",))


# -- bounce bodies -------------------------------------------------------------------

_MSGID = re.compile(r"<[^<>\s]{1,900}>")
# A Message-ID line in a quoted header block (Exim, qmail and others paste the original
# headers into the text part), possibly folded onto the next line.
_QUOTED_MSGID = re.compile(
    r"^[ \t>]*message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]{1,900}>)", re.IGNORECASE | re.MULTILINE
)


_BARE_MSGID = re.compile(r"[^\s<>\"@]{1,450}@[^\s<>\"@]{1,450}")


def _message_id(value: object) -> str | None:
    """A msg-id as "<left@right>", the form the store keeps; a bare one gets brackets."""
    if value is None:
        return None
    text = _raw_text(value)
    found = _MSGID.search(text)
    if found:
        return found.group(0)
    bare = _BARE_MSGID.fullmatch(text)
    return f"<{bare.group(0)}>" if bare else None


def _parts(msg: Message) -> Iterator[Message]:
    """Every part of the report, without descending into attached messages."""
    yield msg
    payload = msg.get_payload()
    if msg.get_content_maintype() == "multipart" and isinstance(payload, list):
        for part in payload[:100]:
            if isinstance(part, Message):
                yield from _parts(part)


def _original_message_id(msg: Message) -> str | None:
    """The bounced message's Message-ID.

    RFC 3464 §2 / RFC 6522 §3: the third part of a report returns the original as
    message/rfc822, or only its header as text/rfc822-headers. Reports without one often
    quote the header block in the text.
    """
    parts = list(_parts(msg))
    for part in parts[1:]:
        ctype = part.get_content_type()
        payload = part.get_payload()
        if ctype in {"message/rfc822", "message/rfc822-headers"} and isinstance(payload, list):
            for inner in payload[:1]:
                if isinstance(inner, Message) and (msgid := _message_id(inner.get("Message-ID"))):
                    return msgid
        if ctype == "text/rfc822-headers":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                inner = BytesHeaderParser(policy=compat32).parsebytes(data)
                if msgid := _message_id(inner.get("Message-ID")):
                    return msgid
    for part in parts:
        if part.get_content_maintype() != "text" or part.is_multipart():
            continue
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            found = _QUOTED_MSGID.search(_bytes_to_text(data))
            if found:
                return found.group(1)
    return None


def _failures(msg: Message) -> tuple[frozenset[str], frozenset[str]]:
    """(temporary, permanent) failed addresses found by flufl.bounce's detectors."""
    if not msg.get_all("From"):
        # flufl.bounce 6's Yale detector indexes getaddresses() of an absent From and
        # raises, which stops every detector after it; an empty address reads as "no
        # sender" to all of them. The message is parse_bounce's own, so adding is safe.
        msg["From"] = "<>"
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # flufl re-raises whatever a detector trips over
        return frozenset(), frozenset()

    def clean(found: frozenset[bytes]) -> frozenset[str]:
        addresses = (raw.decode("ascii", "replace").strip().strip("<>").lower() for raw in found)
        return frozenset(address for address in addresses if address)

    return clean(temporary), clean(permanent)


# Delay warnings: the message is still queued. Read only with the body (below).
_DELAY_SUBJECTS = _phrases(
    [
        (
            r"(?:mail[\s-]+)?delivery[\s-]+(?:status[\s-]+)?(?:warning|delayed)",
            "delivery delay",
            "en",
        ),
        (r"delayed[\s-]+mail", "delivery delay", "en"),
        (r"warning:[\s-]+could[\s-]+not[\s-]+send", "delivery delay", "en"),
    ],
    r"\b",
)


def bounce_subject(subject: str) -> str | None:
    """The non-delivery or delay phrase opening ``subject`` ("Undeliverable: ...", "Mail
    delivery failed", "Mail Delivery Warning"), whatever the sender; None for anything
    else, "Fwd:"/"Re:" ones included."""
    normal = _normal(_decode_words(subject))
    return _match_subject(normal, _BOUNCE_SUBJECTS) or _match_subject(normal, _DELAY_SUBJECTS)


def confirm_bounce_by_body(raw: bytes) -> Classification | None:
    """For a message the headers call human but whose subject reads like a delivery
    report (some gateways send them from ordinary addresses), the body decides
    (flufl.bounce): permanently failed recipients make it a BOUNCE; only delayed ones an
    automated notice (AUTO_REPLY: no address is marked as failed, and it is no answer);
    nothing found, None. The sync fetches the body of such messages only."""
    report = parse_bounce(raw)
    if report is None:
        return None
    if report.permanent:
        return Classification(Kind.BOUNCE, ("subject and body: non-delivery report",))
    if report.temporary:
        return Classification(Kind.AUTO_REPLY, ("subject and body: delivery delay warning",))
    return None


def parse_bounce(raw: bytes) -> BounceReport | None:
    """Read a full bounce: failed recipients (via flufl.bounce) and the original Message-ID.

    Returns None when neither the headers nor flufl.bounce's detectors see a bounce.
    An address both delayed and failed counts as permanent only. Never raises.
    """
    try:
        msg = BytesParser(policy=compat32).parsebytes(raw)
        headers_say_bounce = classify(msg).kind is Kind.BOUNCE
        temporary, permanent = _failures(msg)
        if not (temporary or permanent or headers_say_bounce):
            return None
        try:
            original = _original_message_id(msg)
        except Exception:
            original = None
        return BounceReport(
            permanent=permanent,
            temporary=temporary - permanent,
            original_message_id=original,
        )
    except Exception:
        return None
