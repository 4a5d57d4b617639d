"""Commands the user writes in a reply to the digest: a pure parser.

One command per line, English or Italian, any case; item numbers are the digest's own
(1-based), with an optional "#". The input is the user's own text (see
`ghostwatch.replytext.own_text`), so quotes and signatures are already gone.

    send 1 3 | send 1-3 | send 1,2 | send all          invia
    skip 2                                             salta
    snooze 2 3d | snooze 2 5 days | snooze 2 until 10 dec | snooze 2 until 2026-12-10
                                   rimanda 2 3g | rimanda 2 fino al 10 dicembre
    stop 4                                             ferma
    paid 5                                             pagato
    edit 1, then the new text on the lines below, up to a line "end"    modifica, "fine"
    help                                               aiuto

Reading rules, chosen so that a doubtful line is reported rather than guessed:

* Snoozes resolve to a calendar day: durations count from ``today`` (hours round up
  to whole days, at least one); a day and month without a year is the next such day
  on or after ``today``; a weekday is the next one after ``today``. Numeric dates are
  day first ("10/12" is 10 December) except ISO 8601 (2026-12-10). A snooze reaches at
  most a year ahead, and a date with an explicit year must not be past.
* "all" works for send, skip and snooze only: stopping or marking paid every thread
  at once is too much to infer from one word.
* Greetings and sign-offs ("thanks", "grazie", "ok", "Ciao Mario") are ignored. After a
  sign-off, lines that are not commands are the user's signature and are ignored too;
  lines starting with a command word are still read.
* Anything else is reported in `Parsed.not_understood` as "<line>: <reason>".

`parse` never raises on user text; it raises `ReplyCommandError` only when called
wrongly (a datetime for ``today``, an unknown time zone).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ghostwatch.errors import GhostwatchError

__all__ = [
    "HELP_TEXT_EN",
    "HELP_TEXT_IT",
    "Command",
    "Parsed",
    "ReplyCommandError",
    "Verb",
    "parse",
]

Verb = Literal["send", "skip", "snooze", "stop", "paid", "edit", "help"]


class ReplyCommandError(GhostwatchError):
    """`parse` was called wrongly; user text never raises this."""


@dataclass(frozen=True, slots=True)
class Command:
    """One understood command.

    ``items`` holds sorted, distinct digest numbers, "all", or () for help. ``until``
    is set for snooze only, ``text`` for edit only (the replacement text, verbatim).
    ``line`` is the command's line as the user wrote it.
    """

    verb: Verb
    items: tuple[int, ...] | Literal["all"]
    until: date | None = None
    text: str | None = None
    line: str = ""


@dataclass(frozen=True, slots=True)
class Parsed:
    """The commands in reading order, and the lines that could not be read, with why."""

    commands: tuple[Command, ...]
    not_understood: tuple[str, ...]


HELP_TEXT_EN: Final = """\
Reply to this email with one command per line, using the numbers above:

  send 1 3                 send drafts 1 and 3 (also: send 1-3, send 1,2, send all)
  skip 2                   do not send draft 2 this time
  snooze 2 3d              ask me again in 3 days (h = hours, d = days, w = weeks)
  snooze 2 until 10 dec    ask me again on 10 December (or: until 2026-12-10)
  stop 4                   never follow up on that thread again
  paid 5                   the invoice is paid: stop its payment reminders
  edit 1                   replace draft 1 with the text on the lines below it,
                           up to a line with only: end
  help                     send me this help again

Italian works too: invia, salta, rimanda (3g, 2 sett, fino al 10 dicembre),
ferma, pagato, modifica (ending with: fine), aiuto.
"""

HELP_TEXT_IT: Final = """\
Rispondi a questa email con un comando per riga, usando i numeri qui sopra:

  invia 1 3                invia le bozze 1 e 3 (anche: invia 1-3, invia 1,2, invia tutti)
  salta 2                  non inviare la bozza 2 questa volta
  rimanda 2 3g             richiedimelo tra 3 giorni (ore, g = giorni, sett = settimane)
  rimanda 2 fino al 10 dicembre    richiedimelo il 10 dicembre (o: al 2026-12-10)
  ferma 4                  non sollecitare mai più quella conversazione
  pagato 5                 la fattura è pagata: basta solleciti di pagamento
  modifica 1               sostituisci la bozza 1 con il testo nelle righe sotto,
                           fino a una riga con solo: fine
  aiuto                    inviami di nuovo questo aiuto

Funziona anche in inglese: send, skip, snooze (3d, 2w, until 10 dec),
stop, paid, edit (terminato da: end), help.
"""

_VERBS: Final[dict[str, Verb]] = {
    "send": "send",
    "invia": "send",
    "skip": "skip",
    "salta": "skip",
    "snooze": "snooze",
    "rimanda": "snooze",
    "stop": "stop",
    "ferma": "stop",
    "paid": "paid",
    # Italian agrees the participle with the invoice or invoices.
    "pagato": "paid",
    "pagata": "paid",
    "pagati": "paid",
    "pagate": "paid",
    "edit": "edit",
    "modifica": "edit",
    "help": "help",
    "aiuto": "help",
}
_TAKES_ALL: Final = frozenset({"send", "skip", "snooze"})
_ALL_WORDS: Final = frozenset({"all", "tutti", "tutte", "tutto"})
_JOINERS: Final = frozenset({"and", "e", "&", "+"})
_END_WORDS: Final = frozenset({"end", "fine"})

MAX_RANGE: Final = 100  # items one range (and one command) may name
MAX_SNOOZE: Final = timedelta(days=366)
_MAX_LINES = 2000  # a reply is a few lines; a pasted book is read no further
_MAX_REPORTS = 20  # not-understood lines listed; the rest are counted
_MAX_SHOWN = 60  # characters of a line quoted back in a report

_HOURS = frozenset({"h", "hr", "hrs", "hour", "hours", "ora", "ore"})
_DAYS = frozenset({"d", "day", "days", "g", "gg", "giorno", "giorni"})
_WEEKS = frozenset({"w", "wk", "wks", "week", "weeks", "sett", "settimana", "settimane"})

_WEEKDAYS: Final[dict[str, int]] = {
    name: index
    for names in (
        "monday tuesday wednesday thursday friday saturday sunday",
        "mon tue wed thu fri sat sun",
        "lunedì martedì mercoledì giovedì venerdì sabato domenica",
        "lunedi martedi mercoledi giovedi venerdi sabato domenica",
    )
    for index, name in enumerate(names.split())
}

# Openers may carry a name ("Hi Anna", "Ciao Marco"); the rest must stand alone.
_GREETING = re.compile(
    r"(?:(?:hi|hello|hey|dear|ciao|salve|buongiorno|buonasera|good morning)(?: [^\W\d_]+)?"
    r"|ok|okay|ok thanks|ok grazie|fine|great|perfect|perfetto|va bene|d'accordo"
    r"|thanks|thank you|thanks a lot|thank you very much|many thanks|thx|ty"
    r"|grazie|grazie mille|grazie tante|molte grazie"
    r"|best|regards|best regards|kind regards|cheers|saluti|cordiali saluti|un saluto"
    r"|a presto)"
)
# Sign-offs: after one of these, lines that are not commands are the signature.
_CLOSING = re.compile(
    r"(?:thanks|thank you|thanks a lot|thank you very much|many thanks|thx"
    r"|grazie|grazie mille|grazie tante|molte grazie|best|regards|best regards"
    r"|kind regards|cheers|saluti|cordiali saluti|un saluto|a presto)"
)

_BULLET = re.compile(r"^(?:[-*\u2022]\s+)")
_PUNCTUATION = re.compile(r"[^\w\s']+")
_TRAILING = re.compile(r"[\s.!;]+$")
_TOKEN = re.compile(r"#?\d+(?:\s*(?:[-\u2013\u2014]|\.\.)\s*#?\d+)?|[^\s,]+")
_RANGE = re.compile(r"#?(\d+)\s*(?:[-\u2013\u2014]|\.\.)\s*#?(\d+)")
_NUMBER = re.compile(r"#?(\d+)")
_MAX_DIGITS = 6  # int() of thousands of digits raises; no digest is that long

# "until 10 dec", "fino al 10 dicembre", "fino all'11", "al 10", "a lunedì", "to friday".
_UNTIL = re.compile(
    r"^(?P<items>.*?)\s+(?:(?:until|till|til|to|fino\s+al|fino\s+a|al|a|entro\s+il)\s+"
    r"|(?:fino\s+)?all'\s*)(?P<date>.+)$"
)
# "3d", "5 days", "for 2 weeks", "per 3 giorni", "tra 2 sett".
_DURATION = re.compile(
    r"^(?P<items>.*?)(?:\s+(?:for|per|di|tra|fra|in))?\s+(?P<count>\d+)\s*(?P<unit>[^\W\d_]+)$"
)
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_NUMERIC_DATE = re.compile(r"^(\d{1,2})[./](\d{1,2})\.?(?:[./](\d{4}|\d{2}))?$")
_EXPLICIT_YEAR = re.compile(r"\b\d{4}\b")
_ARTICLE = re.compile(r"^(?:the|il|lo|l')\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Problem:
    """Why a line was not understood; becomes "<line>: <reason>"."""

    reason: str


def parse(text: str, *, today: date, tz: str = "UTC") -> Parsed:
    """Read the commands in ``text``, the user's own text of a reply to the digest.

    ``today`` is the user's calendar day and ``tz`` their IANA time zone (handed to
    dateparser); together they anchor snooze dates. Never raises on ``text``.
    """
    if isinstance(today, datetime) or not isinstance(today, date):
        # datetime is a date subclass, but mixing the two fails at the first compare.
        raise ReplyCommandError(f"today must be a datetime.date, not {type(today).__name__}")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError) as exc:
        raise ReplyCommandError(f"unknown time zone {tz!r}: use an IANA name") from exc
    return _Reader(text, today, tz).read()


class _Reader:
    """One pass over the lines; edit commands consume the lines of their text."""

    def __init__(self, text: str, today: date, tz: str) -> None:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.truncated = len(lines) > _MAX_LINES
        self.lines = lines[:_MAX_LINES]
        self.today = today
        self.tz = tz
        self.commands: list[Command] = []
        self.problems: list[str] = []
        self.unlisted = 0  # problems past _MAX_REPORTS, only counted

    def read(self) -> Parsed:
        signed_off = False
        at = 0
        while at < len(self.lines):
            raw = self.lines[at].strip()
            at += 1
            line = _TRAILING.sub("", _BULLET.sub("", raw))
            words = line.split(None, 1)
            if not words:
                continue
            verb = _VERBS.get(_normal(words[0]).rstrip(":"))
            rest = words[1] if len(words) > 1 else ""
            if verb is None:
                bare = _normal(_PUNCTUATION.sub(" ", line))
                if _GREETING.fullmatch(bare):
                    # A sign-off after a command starts the signature.
                    signed_off = signed_off or (
                        bool(self.commands) and _CLOSING.fullmatch(bare) is not None
                    )
                elif bare and not signed_off:
                    self.report(raw, "not a command")
            elif verb == "edit":
                at = self.edit(raw, rest, at)
            elif verb == "help":
                self.commands.append(Command("help", (), line=raw))
            elif verb == "snooze":
                self.add(raw, self.snooze(raw, rest))
            else:
                self.add(raw, _command(verb, rest, raw))
        if self.unlisted:
            self.problems.append(f"{self.unlisted} more lines not understood")
        if self.truncated:
            self.problems.append(f"only the first {_MAX_LINES} lines were read")
        return Parsed(tuple(self.commands), tuple(self.problems))

    def add(self, raw: str, result: Command | _Problem) -> None:
        if isinstance(result, _Problem):
            self.report(raw, result.reason)
        else:
            self.commands.append(result)

    def report(self, raw: str, reason: str) -> None:
        if len(self.problems) >= _MAX_REPORTS:
            self.unlisted += 1
            return
        shown = raw if len(raw) <= _MAX_SHOWN else raw[: _MAX_SHOWN - 1] + "\u2026"
        self.problems.append(f"{shown}: {reason}")

    def edit(self, raw: str, rest: str, at: int) -> int:
        """Read "edit N" and its text; returns the index of the first line after it."""
        end = at
        while end < len(self.lines) and not _is_end(self.lines[end]):
            end += 1
        body = "\n".join(line.rstrip() for line in self.lines[at:end]).strip("\n")
        following = min(end + 1, len(self.lines))
        # The text is consumed even when the item is wrong: its lines are a draft, and
        # reporting each of them as "not a command" would bury the one real mistake.
        spec = rest.rstrip(":").strip()
        items = (
            _Problem("edit one item at a time")
            if _normal(spec) in _ALL_WORDS
            else _items("edit", spec)
        )
        if isinstance(items, _Problem):
            self.report(raw, items.reason)
        elif items == "all" or len(items) != 1:
            self.report(raw, "edit one item at a time")
        elif not body.strip():
            self.report(raw, "no new text on the lines below it")
        else:
            self.commands.append(Command("edit", items, text=body, line=raw))
        return following

    def snooze(self, raw: str, rest: str) -> Command | _Problem:
        spec = " " + rest  # the patterns expect a blank before the items
        if until_match := _UNTIL.match(spec):
            items_text = until_match["items"]
            when = self.date(until_match["date"])
        elif duration_match := _DURATION.match(spec):
            items_text = duration_match["items"]
            when = self.after(duration_match["count"], duration_match["unit"])
        else:
            return _Problem("no duration or date")
        items = _items("snooze", items_text.strip())
        if isinstance(items, _Problem):
            return items
        if isinstance(when, _Problem):
            return when
        if when - self.today > MAX_SNOOZE:
            return _Problem("a snooze reaches at most a year ahead")
        return Command("snooze", items, until=when, line=raw)

    def after(self, digits: str, unit: str) -> date | _Problem:
        unit = unit.casefold()
        if len(digits) > _MAX_DIGITS:
            return _Problem("a snooze reaches at most a year ahead")
        count = int(digits)
        if count < 1:
            return _Problem("the duration must be at least 1")
        if unit in _HOURS:
            # The snooze ends on a day; hours round up so "3h" is not "today".
            return self.today + timedelta(days=max(1, math.ceil(count / 24)))
        if unit in _DAYS:
            return self.today + timedelta(days=min(count, MAX_SNOOZE.days + 1))
        if unit in _WEEKS:
            return self.today + timedelta(weeks=min(count, MAX_SNOOZE.days // 7 + 1))
        return _Problem(f"unknown unit {unit!r} (use h, d or w; ore, g, sett)")

    def date(self, fragment: str) -> date | _Problem:
        text = _ARTICLE.sub("", fragment.strip())
        if not text:
            return _Problem("no duration or date")
        found = _read_date(text, self.today, self.tz)
        if found is None:
            return _Problem(f"cannot read the date {text[:30]!r}")
        if found < self.today:
            return _Problem("that date is in the past")
        return found


def _normal(text: str) -> str:
    """Casefolded NFC text with blanks collapsed, for matching words."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def _is_end(line: str) -> bool:
    """The line closing an edit text: "end" or "fine" alone, any case, "end." too."""
    return _normal(_TRAILING.sub("", line)) in _END_WORDS


def _command(verb: Verb, rest: str, raw: str) -> Command | _Problem:
    items = _items(verb, rest)
    if isinstance(items, _Problem):
        return items
    return Command(verb, items, line=raw)


def _items(verb: str, spec: str) -> tuple[int, ...] | Literal["all"] | _Problem:
    """Item numbers of "1 3", "1-3", "#1, #2 e 4", or "all"."""
    numbers: set[int] = set()
    everything = False
    for token in _TOKEN.findall(spec):
        word = token.casefold()
        if word in _JOINERS:
            continue
        if word in _ALL_WORDS:
            everything = True
            continue
        if ranged := _RANGE.fullmatch(token):
            low, high = ranged.group(1, 2)
            if max(len(low), len(high)) > _MAX_DIGITS:
                return _Problem("item number too large")
            first, last = int(low), int(high)
            if first < 1:
                return _Problem("items are numbered from 1")
            if last < first:
                return _Problem("empty range")
            if last - first + 1 > MAX_RANGE:
                return _Problem(f"a range covers at most {MAX_RANGE} items")
            numbers.update(range(first, last + 1))
        elif single := _NUMBER.fullmatch(token):
            if len(single.group(1)) > _MAX_DIGITS:
                return _Problem("item number too large")
            number = int(single.group(1))
            if number < 1:
                return _Problem("items are numbered from 1")
            numbers.add(number)
        else:
            return _Problem(f"{token[:20]!r} is not an item number")
    if everything:
        if numbers:
            return _Problem("use either 'all' or item numbers")
        if verb not in _TAKES_ALL:
            return _Problem(f"{verb} needs item numbers, not 'all'")
        return "all"
    if not numbers:
        return _Problem("no item numbers")
    if len(numbers) > MAX_RANGE:
        return _Problem(f"at most {MAX_RANGE} items per command")
    return tuple(sorted(numbers))


def _read_date(text: str, today: date, tz: str) -> date | None:
    """The day ``text`` names, or None; see the module docstring for the rules."""
    lowered = _normal(text)
    if lowered in _WEEKDAYS:
        ahead = (_WEEKDAYS[lowered] - today.weekday() - 1) % 7 + 1
        return today + timedelta(days=ahead)
    if iso := _ISO_DATE.fullmatch(lowered):
        return _make_date(int(iso[1]), int(iso[2]), int(iso[3]))
    if numeric := _NUMERIC_DATE.fullmatch(lowered):
        day, month, year = int(numeric[1]), int(numeric[2]), numeric[3]
        if year is None:
            return _on_or_after(month, day, today)
        return _make_date(int(year) + (2000 if len(year) == 2 else 0), month, day)
    parsed = _dateparser(text, today, tz)
    if parsed is None:
        return None
    if _EXPLICIT_YEAR.search(lowered):
        return parsed
    # dateparser's "future" skips today ("30 nov" on 30 Nov is next year); the rule
    # here is the next such day on or after today.
    return _on_or_after(parsed.month, parsed.day, today)


def _dateparser(text: str, today: date, tz: str) -> date | None:
    # Imported on first use: dateparser and its language data take a good part of a
    # second to load, which replies without a dated snooze should not pay.
    import dateparser

    settings: dict[str, Any] = {
        "PREFER_DATES_FROM": "future",
        # Naive local noon of the user's day: only the calendar day matters, and noon
        # keeps "tomorrow" clear of any midnight or DST edge.
        "RELATIVE_BASE": datetime(today.year, today.month, today.day, 12),  # noqa: DTZ001
        "TIMEZONE": tz,
        "RETURN_AS_TIMEZONE_AWARE": False,
        "REQUIRE_PARTS": ["day", "month"],  # a bare "10" is no date
        "DATE_ORDER": "DMY",
    }
    try:
        found = dateparser.parse(text[:60], languages=["en", "it"], settings=settings)
    except Exception:  # dateparser raises assorted errors on odd input; none is ours
        return None
    return found.date() if isinstance(found, datetime) else None


def _make_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _on_or_after(month: int, day: int, today: date) -> date | None:
    """The first ``day``/``month`` on or after ``today``; 29 Feb waits for a leap year."""
    for year in range(today.year, today.year + 5):
        found = _make_date(year, month, day)
        if found is not None and found >= today:
            return found
    return None
