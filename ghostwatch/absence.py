"""Return dates stated in out-of-office auto-replies.

Two pure steps, both total: they never raise, whatever the bytes.

* `extract_text` turns the first few KB of an auto-reply's ``BODY[TEXT]`` (RFC 3501
  §6.4.5) into plain text. MIME parts are split and decoded when the snippet shows their
  structure (RFC 2046 §5.1.1 boundaries, RFC 2045 §6.7 quoted-printable and §6.8 base64),
  a lone body is sniffed for either encoding, and HTML is reduced to its text.
* `find_return_date` looks for a cue ("until", "fino al", "bis", "jusqu'au", "hasta",
  "back on", "rientrerò", "ab ... wieder", ...) in the subject and the body, reads the
  date right after it and says on which calendar day the person is back. The caller
  moves that day to the first business day on or after it.

Reading rules, each chosen so that a doubtful case gives ``None``, never a wrong date:

* "until X", "fino al X", "bis X", "jusqu'au X", "hasta el X", "from A to B" (B is X):
  X is the last day away, so the day back is X + 1. "back on X", "rientro il X",
  "ab X wieder", "de retour le X", "vuelvo el X": X is the day back. An explicit
  "back" beats an "until"; among cues of one strength the latest day wins, which is
  what "dal 1 al 7 dicembre" needs.
* Numeric dates are day first in every language ("12/07" is 12 July). Only in English,
  and only with slashes, is a date read month first: when day first is impossible
  ("12/13" is 13 December) or when only month first agrees with a weekday written
  next to it ("Tuesday, 12/8" in 2026). Other ambiguous US dates are misread, and
  usually then dropped by the next rule (12 July is far off in November).
* A date without a year is the occurrence of that day and month nearest to the
  auto-reply's own Date, so "5 January" written on 20 December is next January. When
  the nearest occurrence is already past ("until 18 November" sent on 20 November, a
  stale responder), the date is ignored: the next year's would be a wrong date.
* A weekday alone is the next such weekday after the sent day ("back on Monday" sent
  on a Monday is a week later); "lunedì 7" is the next Monday that is a 7th; "tomorrow",
  "domani", "morgen", "demain", "mañana" are the sent day + 1.
* Month names, ordinals and abbreviations are read by dateparser, given only the ~90
  characters after a cue and the cue's language; numeric dates are read here, since
  dateparser rejects "7.12." and would apply its own day/month fallback.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value
from enum import IntEnum
from functools import cache, cached_property
from html.parser import HTMLParser
from typing import Any

__all__ = ["ReturnDate", "extract_text", "find_return_date"]

_MAX_RAW = 64 * 1024  # bytes of a body looked at; ghostwatch stores about 4 KB
_MAX_CHARS = 4000  # characters of body text searched for cues
_MAX_SUBJECT = 500
_MAX_CUES = 24  # cue occurrences examined per text, so adversarial text stays cheap
_MAX_GAP = 35  # characters allowed between a cue and its date ("in the office on ")
_FRAGMENT = 90  # characters after a cue handed to the date readers
_MAX_PHRASE = 80


@dataclass(frozen=True, slots=True)
class ReturnDate:
    """When an absent person is back, and the words that said so.

    ``day`` is a calendar day: the first day back, derived from an explicit return
    date or from the last day away plus one. ``phrase`` (at most 80 characters) is
    the cue and date as written, for explanations; ``language`` is the cue's.
    """

    day: date
    phrase: str
    language: str


# -- extract_text ------------------------------------------------------------------------


def extract_text(raw_body: bytes, content_type_hint: str | None = None) -> str:
    """Best-effort plain text of an auto-reply body snippet; "" when nothing is readable.

    ``content_type_hint`` is the message's Content-Type value when known (its charset and
    boundary parameters help). Runs of blanks become one space and runs of line breaks
    one newline; lines are kept because quoted text is recognised by them.
    """
    try:
        raw = bytes(raw_body[:_MAX_RAW])
        ctype, charset, boundary = _content_type(content_type_hint or "")
        return _collapse(_entity_text(raw, ctype, charset, boundary, cte=None, depth=0))
    except Exception:
        return ""


def _content_type(value: str) -> tuple[str, str | None, str | None]:
    """(type, charset, boundary) of a Content-Type value; type "" when not given."""
    if not value.strip():
        return "", None, None
    headers = Message()
    headers["Content-Type"] = value[:2000]
    return _header_params(headers)


def _header_params(headers: Message) -> tuple[str, str | None, str | None]:
    ctype = headers.get_content_type().lower()
    charset = headers.get_content_charset()
    param = headers.get_param("boundary")
    boundary = str(collapse_rfc2231_value(param)) if param else None
    return ctype, charset, boundary


def _entity_text(
    raw: bytes,
    ctype: str,
    charset: str | None,
    boundary: str | None,
    *,
    cte: str | None,
    depth: int,
) -> str:
    """Text of one MIME entity; ``ctype`` "" and ``cte`` None mean "unknown, sniff"."""
    if depth < 4 and (ctype == "" or ctype.startswith("multipart/")):
        found = boundary if boundary and _delimiter(boundary).search(raw) else None
        found = found or _sniff_boundary(raw)
        if found:
            texts = list(_part_texts(raw, found, depth))
            if texts:
                return _best_part(texts)
    body = _transfer_decode(raw, cte)
    text = _to_text(body, charset)
    if ctype == "text/html" or (ctype == "" and _HTML_SNIFF.search(text[:4000])):
        text = _html_to_text(text)
    return text


def _delimiter(boundary: str) -> re.Pattern[bytes]:
    token = re.escape(boundary.encode("ascii", "replace"))
    return re.compile(rb"(?m)^--" + token + rb"(--)?[ \t]*\r?$")


# A delimiter line, then part headers naming a content type or encoding. Requiring the
# header keeps "-----Original Message-----" and "-- " signature lines out.
_BOUNDARY_LINE = re.compile(rb"(?m)^--([^\s]{1,70})[ \t]*\r?$")
_PART_HEADER = re.compile(rb"(?im)^content-(?:type|transfer-encoding)[ \t]*:")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def _sniff_boundary(raw: bytes) -> str | None:
    for index, match in enumerate(_BOUNDARY_LINE.finditer(raw, 0, 16384)):
        if index >= 5:
            break
        token = match.group(1)
        if token.endswith(b"--"):
            continue
        block = raw[match.end() : match.end() + 2048]
        blank = _BLANK_LINE.search(block)
        if _PART_HEADER.search(block[: blank.start() if blank else len(block)]):
            return token.decode("ascii", "replace")
    return None


def _part_texts(raw: bytes, boundary: str, depth: int) -> Iterator[tuple[str, str]]:
    """(content type, text) of each part; the last part may be cut short."""
    marks = list(_delimiter(boundary).finditer(raw))
    for index, mark in enumerate(marks):
        if mark.group(1):  # the close delimiter
            break
        end = marks[index + 1].start() if index + 1 < len(marks) else len(raw)
        with suppress(Exception):  # one broken part must not hide the others
            part = _part_text(raw[mark.end() : end], depth)
            if part is not None:
                yield part


def _part_text(chunk: bytes, depth: int) -> tuple[str, str] | None:
    chunk = chunk[1:] if chunk.startswith(b"\n") else chunk
    if chunk.startswith((b"\r\n", b"\n")):  # no part headers: text/plain, 7bit
        head, body = b"", chunk.lstrip(b"\r\n")
    else:
        blank = _BLANK_LINE.search(chunk)
        if blank is None:  # the snippet ends inside the part headers
            return None
        head, body = chunk[: blank.start()], chunk[blank.end() :]
    headers = BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n")
    ctype, charset, inner = _header_params(headers)
    # RFC 2045 §6.1: no Content-Transfer-Encoding field means 7bit.
    cte = str(headers.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if ctype.startswith("multipart/"):  # the best text inside competes as plain text
        return "text/plain", _entity_text(body, ctype, charset, inner, cte=cte, depth=depth + 1)
    if ctype.startswith("text/"):
        return ctype, _entity_text(body, ctype, charset, None, cte=cte, depth=depth + 1)
    return None


def _best_part(texts: list[tuple[str, str]]) -> str:
    for wanted in ("text/plain", "text/html"):
        for ctype, text in texts:
            if ctype == wanted and text.strip():
                return text
    return next((text for _ctype, text in texts if text.strip()), "")


_B64_LINE = re.compile(rb"[A-Za-z0-9+/]+={0,2}")
_QP_SNIFF = re.compile(rb"=(?:[0-9A-F]{2}|\r?\n)")
_HTML_SNIFF = re.compile(r"<(?:html|body|div|p|br|table|span|font)\b", re.IGNORECASE)


def _transfer_decode(body: bytes, cte: str | None) -> bytes:
    if cte is None:  # a lone body whose header we do not have: sniff
        if _looks_base64(body):
            decoded = _b64decode(body)
            if decoded and _looks_textual(decoded):
                return decoded
        if _QP_SNIFF.search(body):
            return _qp_decode(body)
        return body
    if cte == "base64":
        return _b64decode(body)
    if cte == "quoted-printable":
        return _qp_decode(body)
    return body


def _looks_base64(body: bytes) -> bool:
    lines = [line.strip() for line in body.strip().splitlines() if line.strip()]
    if not lines or not all(_B64_LINE.fullmatch(line) for line in lines):
        return False
    longest = max(len(line) for line in lines)
    return longest >= 40 or (lines[-1].endswith(b"=") and len(lines[-1]) % 4 == 0)


def _looks_textual(data: bytes) -> bool:
    sample = data[:2000]
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 13))
    return controls * 20 <= len(sample)


def _b64decode(body: bytes) -> bytes:
    """Decode base64, tolerating a snippet cut mid-line or mid-quantum."""
    data = re.sub(rb"[^A-Za-z0-9+/=]", b"", body).split(b"=", 1)[0]
    if len(data) % 4 == 1:
        data = data[:-1]
    data += b"=" * (-len(data) % 4)
    try:
        return base64.b64decode(data)
    except (binascii.Error, ValueError):
        return b""


def _qp_decode(body: bytes) -> bytes:
    return quopri.decodestring(body.replace(b"\r\n", b"\n"))


def _to_text(data: bytes, charset: str | None) -> str:
    name = (charset or "").strip().lower()
    if name and name not in {"us-ascii", "ascii"}:
        try:
            return data.decode(name, "replace")
        except LookupError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start >= len(data) - 3:  # a character cut by the snippet's end
            return data[: error.start].decode("utf-8", "replace")
    return data.decode("cp1252", "replace")


class _HTMLText(HTMLParser):
    """Visible text of an HTML fragment, blocks on their own lines, quotes left out."""

    _SKIP = frozenset({"head", "script", "style", "title", "blockquote"})
    _BLOCK = frozenset(
        {"br", "p", "div", "tr", "li", "ul", "ol", "table", "hr", "h1", "h2", "h3", "h4"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")
        elif tag == "td":
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_to_text(markup: str) -> str:
    parser = _HTMLText()
    with suppress(Exception):  # the parser is lenient; keep whatever it had read
        parser.feed(markup)
        parser.close()
    return "".join(parser.parts)


_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _collapse(text: str) -> str:
    text = _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = re.sub(r"[^\S\n]+", " ", text)
    return re.sub(r" ?\n\s*", "\n", text).strip()


# -- cues ------------------------------------------------------------------------------


class _Kind(IntEnum):
    UNTIL = 1  # the date is the last day away
    BACK = 2  # the date is the first day back
    FROM = 3  # "from/ab/dal X": the first day back only if a return word follows X


_STRENGTH = {_Kind.UNTIL: 1, _Kind.BACK: 2, _Kind.FROM: 2}
_DASH = r"[-\u2013\u2014]"


def _range(openers: str, connectors: str | None) -> str:
    """A range, "from A to B", matched up to where B starts.

    A must hold a digit; B must start with one, or with a weekday and then one, so
    "dal 8 dicembre a tempo pieno" is no range.
    """
    joint = rf"(?:\b(?:{connectors})(?!\w)|{_DASH})" if connectors else _DASH
    return (
        rf"\b(?:{openers})\s+(?=[^\n!?;]{{0,20}}\d)[^\n!?;]{{1,30}}?\s*{joint}"
        r"\s*(?=\d|[^\W\d_]{3,12}\.?,?\s+\d)"
    )


# (pattern, language, kind, blocks). A blocking cue is a plain cue word: a date belongs
# to the nearest cue word before it, so one in between takes the date away ("until I
# return on 7 December" is the return's).
_CUE_TABLE: tuple[tuple[str, str, _Kind, bool], ...] = (
    (r"\bback\b|\breturn(?:s|ing)?\b", "en", _Kind.BACK, True),
    (r"\b(?:available|reachable|contactable) again\b", "en", _Kind.BACK, True),
    (r"\b(?:until|till|til|through|thru|up to and including)\b|'til\b", "en", _Kind.UNTIL, True),
    (r"\b(?:from|starting(?: on| from)?|as of|as from|beginning)\b", "en", _Kind.FROM, False),
    (_range("from|between", "to|and"), "en", _Kind.UNTIL, False),
    (r"\brientr\w*|\b(?:ri)?torn(?:o|erò|ero|erà|a|ata|ato)\b", "it", _Kind.BACK, True),
    (r"\b(?:di ritorno|di nuovo|nuovamente)\b", "it", _Kind.BACK, True),
    (r"\b(?:fino|sino)\b", "it", _Kind.UNTIL, True),
    (r"\b(?:a partire d(?:a|al|all'|alla)|a decorrere d\w*|dal|dall'|da)(?!\w)", "it",
     _Kind.FROM, False),
    (_range("dal|dall'|da|tra il|fra il", "al|all'|a|e il"), "it", _Kind.UNTIL, False),
    (r"\b(?:wieder|zurück|rückkehr)\b", "de", _Kind.BACK, True),
    (r"\bbis\b", "de", _Kind.UNTIL, True),
    (r"\b(?:ab|am)\b", "de", _Kind.FROM, False),
    (_range("vom|von", None), "de", _Kind.UNTIL, False),
    (r"\b(?:de )?retour\b|\brevien\w*|\brentr\w*|\b(?:à|de) nouveau\b", "fr", _Kind.BACK, True),
    (r"\bjusqu\w*", "fr", _Kind.UNTIL, True),
    (r"\b(?:à partir du|à partir de|dès le|dès|du)\b", "fr", _Kind.FROM, False),
    (_range("du|entre le", "au|et le"), "fr", _Kind.UNTIL, False),
    (r"\b(?:de vuelta|de nuevo|nuevamente)\b|\b(?:vuelv|volver|regres|reincorpor)\w*", "es",
     _Kind.BACK, True),
    (r"\bhasta\b", "es", _Kind.UNTIL, True),
    (r"\b(?:a partir del?|desde el|desde)\b", "es", _Kind.FROM, False),
    (_range("del|desde el|entre el", "al|y el"), "es", _Kind.UNTIL, False),
    # "30 Nov - 4 Dec", "30.11.-4.12." (any dash): no cue word; the language is guessed.
    (r"(?<![\w./:-])\d{1,2}(?:[./]\d{1,2}[./]?(?:\d{2,4})?)?(?:st|nd|rd|th|\.)?"
     r"(?:\s+[^\W\d_]{3,10}\.?)?\s*" + _DASH + r"\s*(?=\d|[^\W\d_]{3,12}\.?,?\s+\d)",
     "", _Kind.UNTIL, False),
)  # fmt: skip

_CUES = tuple(
    (re.compile(pattern, re.IGNORECASE), lang, kind, blocks)
    for pattern, lang, kind, blocks in _CUE_TABLE
)

# Just before a "back" cue, a negation makes it no cue ("won't be back until ...").
_NEGATION = re.compile(r"(?:\b(?:not|non|nicht|pas|no|kein\w*)\b|n't)\s*\S*\s*\S*\s*$", re.I)
# A negation earlier in the clause of an English or Spanish "until".
_CLAUSE_NEGATION = re.compile(r"\b(?:not|never|no|nunca)\b|n't\b", re.IGNORECASE)
# Between a "back" cue and its date these make it the last day away ("back after X").
_AFTER = re.compile(r"\b(?:after|dopo|nach|après|apres|después|despues)\b", re.IGNORECASE)
# Between a "from X" date and the return word that would confirm it.
_FROM_BREAK = re.compile(
    r"\b(?:to|until|till|through|al|fino|sino|au|jusqu\w*|bis|hasta|not|non|nicht|pas|no"
    r"|kein\w*)\b|n't\b|" + _DASH,
    re.IGNORECASE,
)

_LANGUAGE_WORDS = {
    "en": r"\b(?:the|and|office|until|back|with|will|please|thank|you)\b",
    "it": r"\b(?:il|della|sono|ufficio|grazie|fino|per|con|saluti|sarò)\b",
    "de": r"\b(?:ich|und|bin|nicht|bis|vielen|dank|wieder|büro|ihre)\b",
    "fr": r"\b(?:je|suis|le|et|bureau|merci|jusqu|retour|vous|avec)\b",
    "es": r"\b(?:el|estoy|oficina|gracias|hasta|para|los|vuelta|usted|saludos)\b",
}
_LANGUAGE_RES = {lang: re.compile(p, re.IGNORECASE) for lang, p in _LANGUAGE_WORDS.items()}


def _guess_language(text: str) -> str:
    counts = {lang: len(pattern.findall(text)) for lang, pattern in _LANGUAGE_RES.items()}
    best = max(counts, key=lambda lang: counts[lang])
    return best if counts[best] else "en"


# -- relative days -----------------------------------------------------------------------


def _weekday_names() -> dict[str, int]:
    # Full names only: "sat", "sun" and "wed" are words too. Dates with abbreviated
    # weekdays ("Mon 7 Dec") are dateparser's.
    names: dict[str, int] = {}
    for week in (
        "monday tuesday wednesday thursday friday saturday sunday",
        "lunedì martedì mercoledì giovedì venerdì sabato domenica",
        "lunedi martedi mercoledi giovedi venerdi sabato domenica",
        "montag dienstag mittwoch donnerstag freitag samstag sonntag",
        "lundi mardi mercredi jeudi vendredi samedi dimanche",
        "lunes martes miércoles jueves viernes sábado domingo",
        "lunes martes miercoles jueves viernes sabado domingo",
    ):
        for index, name in enumerate(week.split()):
            names.setdefault(name, index)
    return names


_WEEKDAYS = _weekday_names()
# Days after the day the auto-reply was sent.
_DAY_WORDS = {
    "today": 0, "oggi": 0, "heute": 0, "aujourd'hui": 0, "hoy": 0,
    "tomorrow": 1, "domani": 1, "morgen": 1, "demain": 1, "mañana": 1,
    "day after tomorrow": 2, "dopodomani": 2, "übermorgen": 2, "après-demain": 2,
    "apres-demain": 2, "pasado mañana": 2,
}  # fmt: skip
_RELATIVE = re.compile(
    r"\b(?:"
    + "|".join(re.escape(w) for w in sorted([*_WEEKDAYS, *_DAY_WORDS], key=len, reverse=True))
    + r")(?!\w)",
    re.IGNORECASE,
)
# What may stand between a weekday and the date it belongs to ("Monday, the 7th").
_WEEKDAY_JOIN = re.compile(r"[\s,.]*(?:(?:the|den|der|le|il|el)\s*)?", re.IGNORECASE)
# A day of the month right after a weekday, with no month after it.
_BARE_DAY = re.compile(
    r"[\s,]*(?:(?:the|den|der|le|il|el)\s+)?(\d{1,2})(?:st|nd|rd|th|\.)?(?![\d./-])",
    re.IGNORECASE,
)


def _weekday_and_day(weekday: int, day: int, sent: date) -> date | None:
    """The first day on or after ``sent`` that is both that weekday and that day of a month."""
    for offset in range(14):
        month = (sent.month - 1 + offset) % 12 + 1
        candidate = _make_date(sent.year + (sent.month - 1 + offset) // 12, month, day)
        if candidate is not None and candidate >= sent and candidate.weekday() == weekday:
            return candidate
    return None


# -- dates -------------------------------------------------------------------------------

_NUMERIC = re.compile(
    r"(?<![\d./:-])(?:"
    r"(?P<iy>(?:19|20)\d{2})-(?P<im>\d{1,2})-(?P<id>\d{1,2})"
    r"|(?P<a>\d{1,2})(?P<sep>[./])(?P<b>\d{1,2})(?:(?P=sep)(?P<y>\d{4}|\d{2}))?"
    r"|(?P<da>\d{1,2})-(?P<db>\d{1,2})-(?P<dy>\d{4})"
    r")(?![\d/:-]|\.\d)"
    # "10.30 Uhr", "1.5 days" are no dates
    r"(?!\s*(?:am|pm|a\.m|p\.m|uhr|h|hrs|hours?|ore|heures?|horas?|days?|weeks?|giorni"
    r"|settimane|tage|wochen|jours|semaines|días|dias|semanas|%)(?!\w))",
    re.IGNORECASE,
)
_HAS_NUMERIC = re.compile(r"\d[./-]\d")
_ABBREVIATION_DOT = re.compile(r"(?<=[^\W\d_]{3})\.(?=,?\s*\d)")
_YEAR_AFTER = re.compile(r"[.,]?\s*((?:19|20)\d{2})(?!\d)")
_YEAR_IN = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)|'\d{2}\b")


def _numeric_date(
    match: re.Match[str], lang: str, sent: date, weekday: int | None = None
) -> date | None:
    """Day first; month first only in English with slashes, when day first is impossible
    or when it alone agrees with a weekday written next to it ("Tuesday, 12/8")."""
    if match.group("iy"):
        return _make_date(int(match.group("iy")), int(match.group("im")), int(match.group("id")))
    if match.group("da"):
        first, second, year = match.group("da"), match.group("db"), match.group("dy")
        slashed = False
    else:
        first, second, year = match.group("a"), match.group("b"), match.group("y")
        slashed = match.group("sep") == "/"
    orders = [(int(first), int(second))]
    if lang == "en" and slashed:
        orders.append((int(second), int(first)))
    readings: list[date | None] = []
    for day, month in orders:
        if not 1 <= month <= 12:
            readings.append(None)
        elif year is None:
            readings.append(_nearest(month, day, sent))
        else:
            readings.append(
                _make_date(int(year) + 2000 if len(year) == 2 else int(year), month, day)
            )
    if weekday is not None:
        agreeing = [r for r in readings if r is not None and r.weekday() == weekday]
        if len(agreeing) == 1:
            return agreeing[0]
    return next((r for r in readings if r is not None), None)


def _make_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _nearest(month: int, day: int, sent: date) -> date | None:
    """The occurrence of day/month nearest to ``sent``; the later one on a tie."""
    best: date | None = None
    for year in range(sent.year - 4, sent.year + 5):
        candidate = _make_date(year, month, day)
        if candidate is None:
            continue
        if best is None or abs((candidate - sent).days) <= abs((best - sent).days):
            best = candidate
    return best


_SearchDates = Callable[..., list[tuple[str, datetime]] | None]


@cache
def _search_dates() -> _SearchDates:
    # Imported on first use: importing dateparser and loading a language's data take
    # a good part of a second, which a process that never meets an auto-reply should
    # not pay.
    from dateparser.search import search_dates

    return search_dates


def _dateparser_dates(fragment: str, lang: str, sent: date) -> list[tuple[str, datetime]]:
    settings: dict[str, Any] = {
        # Naive on purpose: only the calendar day matters, and year-less results are
        # re-placed by _nearest anyway.
        "RELATIVE_BASE": datetime(sent.year, sent.month, sent.day),  # noqa: DTZ001
        "PREFER_DATES_FROM": "future",
        "DATE_ORDER": "DMY",
        "REQUIRE_PARTS": ["day", "month"],
        "PARSERS": ["absolute-time"],
        "RETURN_AS_TIMEZONE_AWARE": False,
    }
    try:
        found = _search_dates()(fragment, languages=[lang], settings=settings)
    except Exception:
        return []
    return list(found or [])


# -- finding -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Found:
    start: int  # offsets in the scanned text
    end: int
    day: date


@dataclass(frozen=True, slots=True)
class _Candidate:
    strength: int
    day: date
    phrase: str
    language: str


_SENTENCE_END = re.compile(r"[.!?;]")
_TRAILING = re.compile(
    r"(?:[\s,;:]+(?:and|e|und|et|y|in|im|am|with|con|mit|avec|to|a|al|at|on|of|the|il|le|el"
    r"|i|for|per|pour|para)\b)+$"
    r"|[\s,;:(.]+$",
    re.IGNORECASE,
)
_TRANSLATE = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00a0": " ", "\u202f": " ", "\u2009": " ",
     "\u00ba": None, "\u00b0": None, "\u00aa": None}
)  # fmt: skip

# Where quoted text starts, the auto-reply's own words end.
_QUOTE_MARKERS = re.compile(
    r"(?im)^\s*-{2,}\s*(?:original message|ursprüngliche nachricht|messaggio originale"
    r"|message d'origine|mensaje original)"
    r"|^(?:on|il giorno|am|le|el)\b[^\n]{0,200}(?:\n[^\n]{0,120})?"
    r"(?:wrote|ha scritto|schrieb[^\n]{0,80}|a écrit|escribió)\s?:\s*$"
    r"|^(?:from|da|von|de)\s?:[^\n]*\n(?:[^\n]*\n){0,3}?"
    r"(?:sent|date|inviato|data|gesendet|datum|envoyé|enviado|fecha)\s?:"
)
# Exchange ("Automatic reply: "), Sieve (RFC 5230 §4.5, "Auto: "), responders that
# answer with "Re: " and their kin put the original subject after the prefix: the
# freelancer's words ("Feedback until Friday?"), not the client's.
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)*(?:automatic reply|auto(?:matische)? antwort|auto-?reply"
    r"|abwesenheitsnotiz|risposta automatica|réponse automatique|respuesta automática|auto"
    r"|re|aw|r|sv|antw|rif|fwd?|wg|tr|rv)\s*:",
    re.IGNORECASE,
)


def find_return_date(
    subject: str,
    body: str,
    sent_at: datetime,
    *,
    max_ahead: timedelta = timedelta(days=365),
) -> ReturnDate | None:
    """The day an absent person is back, as their auto-reply states it, or None.

    ``body`` is text as `extract_text` makes it. ``sent_at`` is the auto-reply's Date:
    its calendar day, in its own offset, anchors year-less dates and weekdays. A result
    lies between that day and ``max_ahead`` (whole days) after it; dates outside that
    window are ignored, not clamped.
    """
    try:
        sent = sent_at.date()
        try:
            latest = sent + max_ahead
        except OverflowError:
            latest = date.max if max_ahead > timedelta(0) else date.min
        texts = (_own_subject(subject[:_MAX_SUBJECT]), _own_body(body[: 2 * _MAX_CHARS]))
        candidates = [
            candidate
            for text in texts
            for candidate in _Scan(_prepare(text[:_MAX_CHARS]), sent).candidates(latest)
        ]
    except Exception:
        return None
    if not candidates:
        return None
    best = max(candidates, key=lambda c: (c.strength, c.day))
    return ReturnDate(day=best.day, phrase=best.phrase, language=best.language)


def _own_subject(subject: str) -> str:
    return "" if _AUTO_SUBJECT.match(subject) else subject


def _own_body(body: str) -> str:
    kept = [line for line in body.split("\n") if not line.lstrip().startswith(">")]
    text = "\n".join(kept)
    marker = _QUOTE_MARKERS.search(text)
    return text[: marker.start()] if marker else text


def _prepare(text: str) -> str:
    text = unicodedata.normalize("NFC", text).translate(_TRANSLATE)
    text = re.sub(r"'(?=\d)", "' ", text)  # "all'8 dicembre", "l'8"
    return re.sub(r"(?<=\d)(?:er|ère|re)\b", "", text)  # "1er décembre"


class _Scan:
    """Cues and the dates after them in one text (the subject, or the body)."""

    def __init__(self, text: str, sent: date) -> None:
        self.text = text
        self.sent = sent
        self.cues: list[tuple[int, int, str, _Kind]] = []
        self.blockers: list[int] = []  # starts of cue words
        self.returns: list[tuple[int, int]] = []  # spans of "back" cue words
        for pattern, lang, kind, blocks in _CUES:
            for match in pattern.finditer(text):
                self.cues.append((match.start(), match.end(), lang, kind))
                if blocks:
                    self.blockers.append(match.start())
                if blocks and kind is _Kind.BACK:
                    self.returns.append(match.span())
        self.returns.sort()
        # "da", "du", "am" are everyday words: a "from" cue counts only with a return
        # word close behind, which also keeps the cue budget for real cues.
        reach = _FRAGMENT + 40
        self.cues = sorted(
            cue
            for cue in self.cues
            if cue[3] is not _Kind.FROM or any(cue[1] < s < cue[1] + reach for s, _ in self.returns)
        )

    @cached_property
    def language(self) -> str:
        """The text's language as its commonest words tell, for cues that have none."""
        return _guess_language(self.text)

    def candidates(self, latest: date) -> list[_Candidate]:
        text = self.text
        found_all: list[_Candidate] = []
        for start, end, cue_lang, cue_kind in self.cues[:_MAX_CUES]:
            lang = cue_lang or self.language
            kind = cue_kind
            if kind is _Kind.BACK and _NEGATION.search(text, max(0, start - 20), start):
                continue  # "won't be back until ...": the "until" has it
            found = self._date_after(end, lang)
            if found is None or found.day < self.sent:
                continue
            phrase_end = found.end
            if kind is _Kind.FROM:
                confirmed = self._return_word_after(found.end, lang)
                if confirmed is None:
                    continue
                kind, phrase_end = _Kind.BACK, confirmed
            elif kind is _Kind.BACK and _AFTER.search(text, end, found.start):
                kind = _Kind.UNTIL
            elif kind is _Kind.UNTIL and lang in {"en", "es"} and self._negated_clause(start):
                # "not back until Monday", "no vuelvo hasta el lunes": Monday is the
                # first day back. In Italian, German and French a negated "until" still
                # tends to name the last day away, so they keep the +1.
                kind = _Kind.BACK
            day = found.day + timedelta(days=1) if kind is _Kind.UNTIL else found.day
            if day <= latest:
                phrase = _phrase(text, start, phrase_end)
                found_all.append(_Candidate(_STRENGTH[kind], day, phrase, lang))
        return found_all

    def _sentence_end(self, start: int, stop: int) -> int:
        """Where the sentence running from ``start`` ends, at most ``stop``.

        A dot after a digit ("7. Dezember", "07.12.2026"), before a non-blank ("Mo.,")
        or after a short word before a digit ("Dec. 7", "einschl. 4.12.") ends no sentence.
        """
        text = self.text
        for match in _SENTENCE_END.finditer(text, start, stop):
            at = match.start()
            if match.group() != ".":
                return at
            if at > 0 and text[at - 1].isdigit():
                continue
            if text[at + 1 : at + 2] not in {"", " ", "\n"}:
                continue
            short_word = re.search(r"(?<![^\W\d_])[^\W\d_]{1,8}$", text[max(0, at - 9) : at])
            if short_word and re.match(r"\s*\d", text[at + 1 : at + 4]):
                continue
            return at
        return stop

    def _gap_ok(self, start: int, end: int) -> bool:
        """May a cue ending at ``start`` own a date starting at ``end``?"""
        if end - start > _MAX_GAP or any(ch.isdigit() for ch in self.text[start:end]):
            return False
        return not any(start <= b < end for b in self.blockers)

    def _date_after(self, pos: int, lang: str) -> _Found | None:
        """The date a cue ending at ``pos`` introduces, if one follows closely enough."""
        stop = self._sentence_end(pos, min(len(self.text), pos + _FRAGMENT))
        fragment = self.text[pos:stop]
        absolute: _Found | None = None
        relative = self._relative_date(pos, fragment)
        numeric = _NUMERIC.search(fragment)
        if numeric and self._gap_ok(pos, pos + numeric.start()):
            weekday = None
            if relative and _WEEKDAY_JOIN.fullmatch(
                self.text[relative.end : pos + numeric.start()]
            ):
                weekday = relative.day.weekday()
            day = _numeric_date(numeric, lang, self.sent, weekday)
            if day is not None:
                absolute = _Found(pos + numeric.start(), pos + numeric.end(), day)
        if absolute is None and re.search(r"\d", fragment[: _MAX_GAP + 12]):
            absolute = self._named_date(pos, fragment, lang)
        if relative is None:
            return absolute
        if absolute is None:
            return relative
        if relative.start >= absolute.start:  # inside the date ("Monday 7 Dec") or after it
            return absolute
        between = self.text[relative.end : absolute.start]
        return absolute if _WEEKDAY_JOIN.fullmatch(between) else relative

    def _named_date(self, pos: int, fragment: str, lang: str) -> _Found | None:
        """A date with a month name ("Monday 7th December", "8. Dez.") read by dateparser."""
        # dateparser misses "Dec. 7" and "Sept. 7"; a blank for the dot keeps offsets.
        fragment = _ABBREVIATION_DOT.sub(" ", fragment)
        cursor = 0
        for matched, when in _dateparser_dates(fragment, lang, self.sent):
            # dateparser hands the match back with its blanks collapsed.
            tokens = r"\s+".join(re.escape(token) for token in matched.split())
            located = re.compile(tokens, re.IGNORECASE).search(fragment, cursor) if tokens else None
            if located is None:
                continue
            at, end = located.span()
            cursor = end
            if _HAS_NUMERIC.search(matched) or not self._gap_ok(pos, pos + at):
                continue
            year_after = _YEAR_AFTER.match(fragment, end)
            day: date | None
            if _YEAR_IN.search(matched):
                day = when.date()
            elif year_after:  # dateparser stops at "4. Dez." before "2026"
                day = _make_date(int(year_after.group(1)), when.month, when.day)
                end = year_after.end()
            else:
                day = _nearest(when.month, when.day, self.sent)
            return None if day is None else _Found(pos + at, pos + end, day)
        return None

    def _relative_date(self, pos: int, fragment: str) -> _Found | None:
        """A weekday (the next one after the sent day) or "tomorrow" and its kin."""
        match = _RELATIVE.search(fragment)
        if match is None or not self._gap_ok(pos, pos + match.start()):
            return None
        word = " ".join(match.group().lower().split())
        bare = _BARE_DAY.match(fragment, match.end())
        if bare and word in _WEEKDAYS:  # "lunedì 7", "Monday the 7th": no month given
            dated = _weekday_and_day(_WEEKDAYS[word], int(bare.group(1)), self.sent)
            return None if dated is None else _Found(pos + match.start(), pos + bare.end(), dated)
        if word in _DAY_WORDS:
            day = self.sent + timedelta(days=_DAY_WORDS[word])
        else:
            day = self.sent + timedelta(days=(_WEEKDAYS[word] - self.sent.weekday()) % 7 or 7)
        return _Found(pos + match.start(), pos + match.end(), day)

    def _return_word_after(self, pos: int, lang: str) -> int | None:
        """End of the return word confirming "from X" as "back on X" ("ab X wieder").

        A return word with a date of its own ("starting 23 November, returning 30
        November") confirms nothing.
        """
        stop = self._sentence_end(pos, min(len(self.text), pos + 40))
        for start, end in self.returns:
            if pos <= start < stop:
                if _FROM_BREAK.search(self.text, pos, start) or self._date_after(end, lang):
                    return None
                return end
        return None

    def _negated_clause(self, pos: int) -> bool:
        start = max(0, pos - 60)
        for end in _SENTENCE_END.finditer(self.text, start, pos):
            start = end.end()
        return _CLAUSE_NEGATION.search(self.text, start, pos) is not None


def _phrase(text: str, start: int, end: int) -> str:
    phrase = _TRAILING.sub("", " ".join(text[start:end].split()))
    return phrase if len(phrase) <= _MAX_PHRASE else phrase[: _MAX_PHRASE - 1] + "…"
