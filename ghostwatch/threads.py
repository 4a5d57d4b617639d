"""Group messages into conversations (JWZ threading, https://www.jwz.org/doc/threading.html).

Pure: no I/O, no clock. Input is the store's view of each message, output maps store keys to
stable thread ids. The algorithm follows JWZ with these deliberate adaptations:

* Membership is the *connected component* of the reference graph: every Message-ID,
  In-Reply-To and References id a message mentions joins that message's thread, even when the
  JWZ tree rejects the link (a container already has a parent, or the link would close a loop).
  A reply therefore never drifts away from the message it cites, whatever the header quality.
* The JWZ tree is still built, only to pick the root whose Message-ID names the thread.
  Messages are processed oldest first and the first parent a container gets is kept (JWZ
  lets a message's own References override it; processing in date order gives nearly the
  same tree, makes the result independent of input order, and lets the loop check be a
  union-find lookup instead of a walk up the tree). The root may be a phantom: the first
  References id is usually the thread's origin even when that message is not (yet) in the
  store, so thread ids do not change when older mail is synced later.
* Messages sharing a Message-ID (INBOX and Sent copies, Gmail "All Mail" duplicates, broken
  generators) share one container and hence one thread.
* Subject fallback (JWZ step 5) is narrow, see `thread_messages`.

Everything is iterative (union-find with path halving), so 10,000-deep chains and reference
loops cost linear time and no stack.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableSequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from operator import attrgetter
from typing import TypeVar

__all__ = [
    "StreamThreader",
    "ThreadInput",
    "ids_named",
    "mentioned_ids",
    "normalize_subject",
    "parse_msgid_list",
    "subject_key",
    "thread_id_number",
    "thread_id_of",
    "thread_messages",
    "thread_messages_keyed",
    "to_micros",
]


@dataclass(frozen=True, slots=True)
class ThreadInput:
    """What threading needs to know about one stored message."""

    key: int  # the store's row id of the message
    message_id: str | None  # normalized "<...>" form or None when missing
    in_reply_to: str | None
    references: tuple[str, ...]  # in header order, oldest first
    subject: str  # decoded subject
    date: datetime  # tz-aware
    participants: frozenset[str]  # lowercased From/To/Cc addresses, owner's own excluded


# --- Subjects -----------------------------------------------------------------------------

# Reply/forward markers seen in the wild: English, Italian (R, RIF, I = "Inoltrato"), German
# (AW, WG), Scandinavian (SV, VS, VB, VL), French (TR), Dutch (Antw, Doorst), Polish (Odp),
# Spanish (RV), Portuguese (RES, ENC), Turkish (YNT), Chinese.
_REPLY_TOKENS = (
    "antw|doorst|fwd|odp|res|rif|enc|ynt|aw|wg|sv|vs|vb|vl|fw|tr|rv|re|回复|回覆|答复|转发|轉寄"
)
_COLON = "[:\uff1a]"  # ASCII colon or the full-width one CJK mail clients emit
_PREFIX_RE = re.compile(
    rf"""
    \s*
    (?:
        (?P<tag>\[[^\[\]]*\])\s*(?=\S)           # [EXT], [ticket #123] ... only if text follows
      | (?P<reply>
            (?:{_REPLY_TOKENS})
            (?:\s*\[\d+\]|\s*\(\d+\))?            # Re[2]:, Re(2):
            [ \t]*{_COLON}
          | [ri][ \t]*{_COLON}(?=\s)              # Italian "R: " / "I: " only as a whole token
        )
    )
    """,
    re.IGNORECASE | re.VERBOSE,
)

# Subjects too common to identify a conversation on their own; compared after normalization
# and after trimming surrounding punctuation. Anything shorter than 4 characters is generic too.
_GENERIC_SUBJECTS = frozenset(
    {
        "hello",
        "ciao",
        "salve",
        "buongiorno",
        "question",
        "quick question",
        "domanda",
        "info",
        "information",
        "informazioni",
        "invoice",
        "fattura",
        "update",
        "follow up",
        "follow-up",
        "followup",
        "meeting",
        "call",
        "test",
        "thanks",
        "thank you",
        "grazie",
        "urgent",
        "urgente",
        "request",
        "richiesta",
        "no subject",  # "(no subject)" once punctuation is trimmed
        "nessun oggetto",
    }
)
_MIN_SUBJECT_LEN = 4
_PUNCT = " \t.,;:!?-_*\"'()"


def _strip_subject(subject: str) -> tuple[str, bool]:
    """Return (normalized subject, whether a reply/forward prefix was removed)."""
    pos = 0
    had_reply = False
    while (m := _PREFIX_RE.match(subject, pos)) is not None and m.end() > pos:
        if m.group("reply") is not None:
            had_reply = True
        pos = m.end()
    return " ".join(subject[pos:].split()).casefold(), had_reply


def normalize_subject(subject: str) -> str:
    """Subject with leading reply/forward prefixes and bracket tags removed, for comparison.

    Strips any interleaving of markers such as "Re:", "RE[2]:", "Re(3):", "AW:", "WG:",
    "Fwd:", "Fw:", "R:", "RIF:", "I:", "TR:", "Antw:", "Odp:" (ASCII or full-width colon)
    and tags like "[EXT]" or "[ticket #123]"; then collapses whitespace and casefolds.
    "R:" and "I:" count only when followed by whitespace; a tag that is the whole subject is
    kept. "Invoice: March" stays "invoice: march".
    """
    return _strip_subject(subject)[0]


def _is_generic(normalized: str) -> bool:
    core = normalized.strip(_PUNCT)
    return len(core) < _MIN_SUBJECT_LEN or core in _GENERIC_SUBJECTS


# --- Message-ID lists ---------------------------------------------------------------------

_BRACKETED_RE = re.compile(r"<([^<>]*)>")
_COMMENT_RE = re.compile(r"\([^()]*\)")
_SEPARATORS_RE = re.compile(r"[\s,;]+")
_BARE_ID_RE = re.compile(r"[^\s@<>()\"']+@[^\s@<>()\"']+")


def parse_msgid_list(value: str | None) -> tuple[str, ...]:
    """Extract message ids from a References or In-Reply-To value, oldest first, deduplicated.

    Tolerates folding, commas, comments and junk text (RFC 5322 §3.6.4 msg-id lists as
    written by real clients). Each id is returned as "<...>" with all whitespace removed
    (folding inside an id is a known client bug) and is otherwise kept byte-for-byte: ids are
    compared exactly, case included, because RFC 5322 treats them as opaque and clients echo
    them verbatim; lowercasing the domain would merge nothing real and risks false joins.

    A bare token without angle brackets is accepted (and wrapped) only when the value holds no
    bracketed id at all and the token looks like "left@right" without quotes, so the
    RFC 822-era 'joe@example.com's message of ...' prose is not mistaken for an id.
    """
    if not value:
        return ()
    found: list[str] = []
    for inner in _BRACKETED_RE.findall(value):
        ident = "".join(inner.split())
        if ident:
            found.append(f"<{ident}>")
    if not found:
        rest = _COMMENT_RE.sub(" ", value)
        for token in _SEPARATORS_RE.split(rest):
            if _BARE_ID_RE.fullmatch(token):
                found.append(f"<{token}>")
    return tuple(dict.fromkeys(found))


# --- Threading ----------------------------------------------------------------------------


def _find(parent: MutableSequence[int], x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]  # path halving keeps later finds near O(1)
        x = parent[x]
    return x


def _union(parent: list[int], size: list[int], a: int, b: int) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra == rb:
        return
    if size[ra] < size[rb]:
        ra, rb = rb, ra
    parent[rb] = ra
    size[ra] += size[rb]


def _thread_id(root_id: str) -> str:
    return _thread_name(_thread_number(root_id))


def _thread_number(root_id: str) -> int:
    """The 48 bits of sha1(root Message-ID) a thread id is written from."""
    digest = hashlib.sha1(root_id.encode("utf-8", "surrogatepass"), usedforsecurity=False)
    return int.from_bytes(digest.digest()[:6])


def _thread_name(number: int) -> str:
    return f"t{number:012x}"


_THREAD_NAME = re.compile(r"t[0-9a-f]{12}")


def thread_id_number(thread_id: str) -> int | None:
    """The number a thread id threading gives is written from (the inverse of writing it),
    None for any other text."""
    return int(thread_id[1:], 16) if _THREAD_NAME.fullmatch(thread_id) else None


def thread_id_of(number: int) -> str:
    """The thread id written from ``number`` (see :func:`thread_id_number`)."""
    return _thread_name(number)


def _synthetic_id(key: int) -> str:
    return f"<no-id-{key}@ghostwatch.invalid>"


def _full_key(m: ThreadInput) -> tuple[object, ...]:
    return (
        m.date,
        m.key,
        m.message_id or "",
        m.in_reply_to or "",
        m.references,
        m.subject,
        tuple(sorted(m.participants)),
    )


_BY_DATE_AND_KEY = attrgetter("date", "key")


def _ordered(messages: Iterable[ThreadInput]) -> list[ThreadInput]:
    """Inputs oldest first; the fixed order is what makes the result input-order independent."""
    items = list(messages)
    for m in items:
        if m.date.utcoffset() is None:
            raise ValueError(f"message key={m.key}: date must be timezone-aware")
    items.sort(key=_BY_DATE_AND_KEY)
    if len({m.key for m in items}) < len(items):
        # Keys are row ids and should be unique; if not, order ties on every field.
        items.sort(key=_full_key)
    return items


@dataclass(frozen=True, slots=True)
class _Component:
    """One reference-connected group of messages, before the subject fallback."""

    items: tuple[int, ...]  # indices into the date-sorted inputs, ascending
    thread_id: str  # named after the JWZ root container's Message-ID
    date: datetime  # the root message's date, else the earliest message's
    subject: str  # normalized subject of the root message, else of the earliest one
    had_reply_prefix: bool  # that subject started with Re:/Fwd:/AW:/R:/...
    orphan: bool  # root is a real message with no In-Reply-To/References links
    participants: frozenset[str]


@dataclass(slots=True)
class _Graph:
    """Containers (one per distinct id) with the JWZ tree and the reference components."""

    names: list[str]  # container -> Message-ID (real or phantom)
    own: list[int]  # item -> its container
    linked: list[bool]  # item -> has an effective In-Reply-To/References link
    tree: MutableSequence[int]  # union-find over accepted parent links (the JWZ tree)
    comp: MutableSequence[int]  # union-find over every link (thread membership)
    has_parent: bytearray


class _Links:
    """JWZ step 1's two union-finds over containers: every link (thread membership) and
    the accepted parent links (the JWZ tree). Lists or arrays, as the caller's memory
    asks; containers are added as they are first seen."""

    __slots__ = ("comp", "comp_size", "has_parent", "tree", "tree_size")

    def __init__(
        self, make: Callable[[Iterable[int]], MutableSequence[int]], count: int = 0
    ) -> None:
        """``count`` containers to start with; ``make`` builds a sequence (list, array)."""
        self.tree, self.comp = make(range(count)), make(range(count))
        self.tree_size, self.comp_size = make([1] * count), make([1] * count)
        self.has_parent = bytearray(count)

    def add(self) -> int:
        """A new container; its number."""
        c = len(self.tree)
        for seq, value in (
            (self.tree, c),
            (self.tree_size, 1),
            (self.comp, c),
            (self.comp_size, 1),
        ):
            seq.append(value)
        self.has_parent.append(0)
        return c

    def chain(self, parents: list[int], child: int) -> None:
        """Consecutive ids of a message's parent chain are parent and child; the last is
        the message's own container's parent."""
        prev = -1
        for ref in parents:
            if prev >= 0 and prev != ref:
                self._link(prev, ref)
            prev = ref
        if prev >= 0:
            self._link(prev, child)

    def _link(self, parent: int, child: int) -> None:
        comp, comp_size = self.comp, self.comp_size
        rp, rc = _find(comp, parent), _find(comp, child)
        if rp != rc:
            if comp_size[rp] < comp_size[rc]:
                rp, rc = rc, rp
            comp[rc] = rp
            comp_size[rp] += comp_size[rc]
        if self.has_parent[child]:
            return  # first parent wins; inputs come oldest first
        # `child` has no parent, so it is the root of its tree: the link closes a loop exactly
        # when `parent` already sits in that tree (JWZ "don't create a loop" check).
        tree, tree_size = self.tree, self.tree_size
        tp, tc = _find(tree, parent), _find(tree, child)
        if tp == tc:
            return
        self.has_parent[child] = 1
        if tree_size[tp] < tree_size[tc]:
            tp, tc = tc, tp
        tree[tc] = tp
        tree_size[tp] += tree_size[tc]


_T = TypeVar("_T")


def _parents(own: _T, in_reply_to: _T | None, references: Iterable[_T]) -> list[_T]:
    """A message's parent chain: its References (oldest first, its own id left out), then
    its In-Reply-To unless the chain already ends with it."""
    parents = [r for r in references if r != own]
    irt = in_reply_to
    if irt is not None and irt != own and (not parents or parents[-1] != irt):
        parents.append(irt)
    return parents


def _build_graph(items: list[ThreadInput]) -> _Graph:
    """JWZ step 1 for every input, oldest first."""
    index: dict[str, int] = {}
    links = _Links(list)
    own: list[int] = []
    linked: list[bool] = []

    def container(ident: str) -> int:
        c = index.get(ident)
        if c is None:
            c = index[ident] = links.add()
        return c

    for m in items:
        ident = m.message_id.strip() if m.message_id else ""
        if not ident:
            ident = _synthetic_id(m.key)
        c = container(ident)
        own.append(c)
        parents = _parents(ident, m.in_reply_to or None, [r for r in m.references if r])
        linked.append(bool(parents))
        links.chain([container(r) for r in parents], c)
    return _Graph(list(index), own, linked, links.tree, links.comp, links.has_parent)


def thread_messages(
    messages: Iterable[ThreadInput], *, subject_window: timedelta = timedelta(days=90)
) -> dict[int, str]:
    """Map each message key to a thread id ("t" + 12 hex digits of sha1(root Message-ID)).

    Linking: a message's parent chain is its References (oldest first) followed by its
    In-Reply-To when References is empty or does not already end with it; consecutive ids
    are parent and child (JWZ step 1). A message without Message-ID gets
    "<no-id-{key}@ghostwatch.invalid>". The result does not depend on input order.

    Subject fallback (JWZ step 5, narrowed): a thread whose root is a real message with no
    In-Reply-To and no References ("orphan", e.g. an Outlook reply that dropped the headers)
    joins another thread T only if all of these hold:

    * both normalized subjects are equal (T's is that of its root message, or of its
      earliest message when the root is a phantom), non-empty, at least 4 characters and
      not generic ("hello", "invoice", "question", ...);
    * the orphan's original subject carried a reply/forward prefix, or T's root did, so two
      plain "Project proposal" first messages never merge;
    * the two threads share at least one participant;
    * the orphan's root date is within `subject_window` of some message of T.

    Among several such T the orphan picks the one with the latest message at or before its own
    date, else the one with the earliest message after it. A merged group takes the thread id
    of its earliest-dated root.

    Raises ValueError when a date is naive.
    """
    return thread_messages_keyed(messages, subject_window=subject_window)[0]


def thread_messages_keyed(
    messages: Iterable[ThreadInput], *, subject_window: timedelta = timedelta(days=90)
) -> tuple[dict[int, str], dict[str, str | None]]:
    """:func:`thread_messages`, plus each thread's subject key.

    The key (:func:`subject_key`) is that of the normalized subject every component of
    the thread shares, or None when the subject is too generic to join threads by. Two
    threads can only be joined by the subject fallback when their keys are equal, which
    is what lets the store re-thread only the part of a mailbox new mail can affect.
    """
    items = _ordered(messages)
    components = _components(items, _build_graph(items))
    result: dict[int, str] = {}
    keys: dict[str, str | None] = {}
    for group in _subject_groups(lambda i: items[i].date, components, subject_window):
        lead = min(group, key=lambda comp: (comp.date, comp.thread_id))
        keys[lead.thread_id] = subject_key(lead.subject)
        for comp in group:
            for i in comp.items:
                result[items[i].key] = lead.thread_id
    return result, keys


def subject_key(normalized: str) -> str | None:
    """A short stable key of a normalized subject (sha1), None when the subject is generic:
    the subject fallback only ever joins threads whose keys are equal."""
    digest = _subject_digest(normalized)
    return None if digest is None else digest.hex()


def _subject_digest(normalized: str) -> bytes | None:
    if not normalized or _is_generic(normalized):
        return None
    return hashlib.sha1(normalized.encode("utf-8", "surrogatepass"), usedforsecurity=False).digest()


def mentioned_ids(message: ThreadInput) -> tuple[str, ...]:
    """Every Message-ID a message names: its own, its In-Reply-To and its References.

    Two messages are in one thread whenever they are linked through such ids, so a new
    message can only change the threads that mention one of its ids.
    """
    return ids_named(message.message_id, message.in_reply_to, message.references)


def ids_named(
    message_id: str | None, in_reply_to: str | None, references: Iterable[str]
) -> tuple[str, ...]:
    """:func:`mentioned_ids` from the header values themselves."""
    own = message_id.strip() if message_id else None
    return tuple(dict.fromkeys(i for i in (own, in_reply_to, *references) if i))


def _components(items: list[ThreadInput], graph: _Graph) -> list[_Component]:
    """Split the inputs into reference-connected components and describe each one."""
    tree, comp, n = graph.tree, graph.comp, len(graph.names)
    members: dict[int, list[int]] = {}  # component rep -> items, ascending
    first_item = [-1] * n  # container -> earliest item holding that Message-ID
    any_linked = [False] * n  # container -> some copy has In-Reply-To/References links
    tree_first = [-1] * n  # tree rep -> earliest item in that tree
    for i, c in enumerate(graph.own):
        if first_item[c] < 0:
            first_item[c] = i
        if graph.linked[i]:
            any_linked[c] = True
        members.setdefault(_find(comp, c), []).append(i)
        t = _find(tree, c)
        if tree_first[t] < 0:
            tree_first[t] = i

    # A component spans several JWZ trees when links were refused; the thread is named by the
    # root of the tree holding the earliest message (then the smallest id, for determinism).
    best: dict[int, tuple[int, str, int]] = {}
    never = len(items)
    names = graph.names
    for c in [c for c, has in enumerate(graph.has_parent) if not has]:
        first = tree_first[_find(tree, c)]
        rank = (first if first >= 0 else never, names[c], c)
        rep = _find(comp, c)
        held = best.get(rep)
        if held is None or rank < held:
            best[rep] = rank

    components: list[_Component] = []
    for rep, group in members.items():
        root = best[rep][2]
        real_root = first_item[root] >= 0
        head = items[first_item[root] if real_root else group[0]]
        subject, had_reply_prefix = _strip_subject(head.subject)
        components.append(
            _Component(
                items=tuple(group),
                thread_id=_thread_id(graph.names[root]),
                date=head.date,
                subject=subject,
                had_reply_prefix=had_reply_prefix,
                orphan=real_root and not any_linked[root],
                participants=frozenset(chain.from_iterable(items[i].participants for i in group)),
            )
        )
    return components


def _subject_groups(
    date_of: Callable[[int], datetime], components: list[_Component], window: timedelta
) -> list[list[_Component]]:
    """Apply the subject fallback; return groups of components that form one thread each.
    ``date_of`` gives the date of an item of a component."""
    n = len(components)
    parent = list(range(n))
    size = [1] * n

    buckets: dict[str, list[int]] = {}
    for ci, comp in enumerate(components):
        if comp.subject and not _is_generic(comp.subject):
            buckets.setdefault(comp.subject, []).append(ci)

    for members in buckets.values():
        if len(members) < 2 or not any(components[ci].orphan for ci in members):
            continue
        # Every message of the bucket's threads, by date: an orphan scans outwards from its
        # own date and stops at the first eligible thread. An orphan without a reply prefix
        # only scans threads whose root had one, so a flood of identical plain subjects
        # (alerts, receipts) costs a bisection each instead of a scan of the whole window.
        everything = _Timeline.of(
            (date_of(i), components[ci].thread_id, ci)
            for ci in members
            for i in components[ci].items
        )
        prefixed = _Timeline.of(e for e in everything.entries if components[e[2]].had_reply_prefix)
        for ci in members:
            orphan = components[ci]
            if not orphan.orphan or not orphan.participants:
                continue
            # This choice is the "orphan or target root has a reply prefix" rule.
            timeline = everything if orphan.had_reply_prefix else prefixed
            target = _pick_target(ci, components, timeline, window)
            if target is not None:
                _union(parent, size, ci, target)

    grouped: dict[int, list[_Component]] = {}
    for ci, comp in enumerate(components):
        grouped.setdefault(_find(parent, ci), []).append(comp)
    return list(grouped.values())


@dataclass(frozen=True, slots=True)
class _Timeline:
    """Messages of one subject bucket in date order, for nearest-message lookups."""

    entries: list[tuple[datetime, str, int]]  # (message date, thread id, component), sorted
    dates: list[datetime]

    @classmethod
    def of(cls, entries: Iterable[tuple[datetime, str, int]]) -> _Timeline:
        ordered = sorted(entries)
        return cls(ordered, [e[0] for e in ordered])


def _pick_target(
    ci: int, components: list[_Component], timeline: _Timeline, window: timedelta
) -> int | None:
    """Component orphan `ci` joins: latest eligible message at or before it, else first after."""
    orphan = components[ci]
    when = orphan.date
    entries, dates = timeline.entries, timeline.dates

    def eligible(tj: int) -> bool:
        other = components[tj]
        return tj != ci and not orphan.participants.isdisjoint(other.participants)

    pos = bisect.bisect_right(dates, when)
    for k in range(pos - 1, -1, -1):  # latest message at or before the orphan's date
        if when - dates[k] > window:
            break
        if eligible(entries[k][2]):
            return entries[k][2]
    for k in range(pos, len(entries)):  # else the earliest one after it
        if dates[k] - when > window:
            break
        if eligible(entries[k][2]):
            return entries[k][2]
    return None


# --- Threading a mailbox too big to hold ---------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Who takes part in each message, by key (see :meth:`StreamThreader.join_by_subject`).
Participants = Mapping[int, Iterable[str]]
_FALLBACK_BATCH = 5000  # messages whose participants are asked for at once
# Array type of message, id and component numbers: 4 bytes, 2**31 of each at most.
_INDEX = "i"


def to_micros(when: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch (exact, unlike timestamp())."""
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


class StreamThreader:
    """:func:`thread_messages_keyed` for a mailbox too big to hold in memory at once.

    Messages are added oldest first (by date, then key) with their Message-IDs already
    numbered by the caller, ``0 .. ids - 1`` (equal ids, equal numbers); a message
    without a Message-ID gives None. Per message and per id only a few integers are
    kept: no strings, no sets. What the result needs beyond the reference graph is
    then asked of the caller, for a small part of the mailbox only, in this order:

    1. :meth:`head_keys`: the message whose subject names each reference-connected
       component; answer with :meth:`set_subject` for each.
    2. :meth:`needs_name`: whether an id number names a thread; answer with
       :meth:`set_name` for each that does.
    3. :meth:`join_by_subject`, given a function that answers who takes part in a few
       thousand messages at a time (those of subjects the fallback could join).

    Then :meth:`assignments` and :meth:`subject_keys` give what thread_messages_keyed
    gives for the same messages (the tests hold the two to each other).
    """

    def __init__(self, ids: int, *, subject_window: timedelta = timedelta(days=90)) -> None:
        if ids < 0:
            raise ValueError("ids must be >= 0")
        self._ids = ids
        self._window = subject_window
        self._keys = array("q")
        self._when = array("q")  # microseconds since the epoch
        self._own = array(_INDEX)  # message -> its container
        self._linked = bytearray()  # message -> has an effective In-Reply-To/References link
        # Containers: the ids, then one for each message without a Message-ID.
        self._links: _Links | None = _Links(functools.partial(array, _INDEX), ids)
        self._anonymous: dict[int, int] = {}  # container -> key of its id-less message
        # Per component, filled by the later steps.
        self._item_comp = array(_INDEX)  # message -> its component
        self._heads = array(_INDEX)  # the message naming it
        self._root_comp = array(_INDEX)  # container -> the component it is the root of, or -1
        self._orphan = bytearray()
        self._had_prefix = bytearray()
        self._digests = bytearray()  # 20 bytes each: sha1 of the normalized subject
        self._has_digest = bytearray()
        self._thread = array("q")  # the thread's number (see _thread_number), -1 unnamed
        self._by_thread = array(_INDEX)  # components in thread-number order
        self._state = "adding"

    # 0. The reference graph.

    def add(
        self,
        key: int,
        when: int,
        own: int | None,
        in_reply_to: int | None,
        references: Iterable[int],
    ) -> None:
        """One message: its key, date (:func:`to_micros`), and the numbers of its own
        Message-ID, In-Reply-To and References (oldest first)."""
        self._expect("adding")
        keys, whens = self._keys, self._when
        if keys and (when, key) <= (whens[-1], keys[-1]):
            raise ValueError(f"message key={key}: messages must come oldest first, then by key")
        links = self._links
        assert links is not None  # noqa: S101 - until _components, checked by _expect
        if own is None:
            own = links.add()
            self._anonymous[own] = key
        elif not 0 <= own < self._ids:
            raise ValueError(f"message key={key}: id number {own} out of range")
        parents = _parents(own, in_reply_to, references)
        for ref in parents:
            if not 0 <= ref < self._ids:
                raise ValueError(f"message key={key}: id number {ref} out of range")
        keys.append(key)
        whens.append(when)
        self._own.append(own)
        self._linked.append(1 if parents else 0)
        links.chain(parents, own)

    def _components(self) -> None:
        """Split the messages into reference-connected components, each named by the root
        of the JWZ tree holding its earliest message (as :func:`_components` does)."""
        links = self._links
        assert links is not None  # noqa: S101 - called once, from head_keys
        tree, comp, has_parent = links.tree, links.comp, links.has_parent
        own, linked = self._own, self._linked
        containers = len(tree)
        first_item = array(_INDEX, [-1]) * containers
        any_linked = bytearray(containers)
        for i, c in enumerate(own):
            if first_item[c] < 0:
                first_item[c] = i
            if linked[i]:
                any_linked[c] = 1
        root_of = array(_INDEX, [-1]) * containers
        for c in range(containers):
            if not has_parent[c]:
                root_of[_find(tree, c)] = c
        links.tree_size = links.comp_size = array(_INDEX)  # not needed any more
        index = array(_INDEX, [-1]) * containers  # representative -> component
        root_comp = self._root_comp = array(_INDEX, [-1]) * containers
        item_comp, heads, orphan = self._item_comp, self._heads, self._orphan
        for i, c in enumerate(own):
            rep = _find(comp, c)
            j = index[rep]
            if j < 0:
                # The component's earliest message: its tree has no earlier one, so that
                # tree's root is the component's (the rank _components gives it).
                j = index[rep] = len(heads)
                root = root_of[_find(tree, c)]
                real_root = first_item[root] >= 0
                heads.append(first_item[root] if real_root else i)
                root_comp[root] = j
                orphan.append(1 if real_root and not any_linked[root] else 0)
            item_comp.append(j)
        # The graph is no longer needed.
        del first_item, any_linked, root_of, index, tree, comp, has_parent
        self._links = None
        self._own = array(_INDEX)
        count = len(heads)
        self._thread = array("q", [-1]) * count
        for c, key in self._anonymous.items():
            if root_comp[c] >= 0:
                self._thread[root_comp[c]] = _thread_number(_synthetic_id(key))
        self._digests = bytearray(20 * count)
        self._has_digest = bytearray(count)
        self._had_prefix = bytearray(count)
        self._state = "subjects"

    # 1. Subjects.

    def head_keys(self) -> array[int]:
        """Per component (in order), the key of the message whose subject names it."""
        if self._state == "adding":
            self._components()
        self._expect("subjects")
        keys = self._keys
        return array("q", (keys[i] for i in self._heads))

    def set_subject(self, component: int, subject: str) -> None:
        """The (decoded) subject of ``head_keys()[component]``."""
        self._expect("subjects")
        normalized, had_reply = _strip_subject(subject)
        self._had_prefix[component] = 1 if had_reply else 0
        digest = _subject_digest(normalized)
        if digest is not None:
            self._has_digest[component] = 1
            self._digests[20 * component : 20 * component + 20] = digest

    # 2. Names.

    def needs_name(self, number: int) -> bool:
        """Whether the Message-ID numbered ``number`` names a thread."""
        if self._state == "subjects":
            self._state = "names"
        self._expect("names")
        return number < self._ids and self._root_comp[number] >= 0

    def set_name(self, number: int, message_id: str) -> None:
        self._expect("names")
        self._thread[self._root_comp[number]] = _thread_number(message_id)

    # 3. The subject fallback.

    def join_by_subject(self, participants_of: Callable[[list[int]], Participants]) -> None:
        """Apply the subject fallback, one subject at a time: only the components that
        share a subject with another, where one is an orphan and one has a reply prefix
        (the fallback joins nothing else). ``participants_of(keys)`` answers who takes
        part in those messages, as threading counts them; it is asked about a few
        thousand messages at a time, so memory stays bounded by the largest subject."""
        if self._state in ("subjects", "names"):
            self._state = "fallback"
        self._expect("fallback")
        missing = sum(1 for t in self._thread if t < 0)
        if missing:
            raise ValueError(f"{missing} thread roots were given no Message-ID")
        self._root_comp = array(_INDEX)
        runs = self._fallback_runs()
        slots = array(_INDEX, [-1]) * len(self._heads)
        for run in runs:
            for j in run:
                slots[j] = 0
        grouped, bounds = self._items_of(slots)
        batch: list[list[int]] = []
        size = 0
        for run in runs:
            batch.append(run)
            size += sum(bounds[slots[j] + 1] - bounds[slots[j]] for j in run)
            if size >= _FALLBACK_BATCH:
                self._join_runs(batch, grouped, bounds, slots, participants_of)
                batch, size = [], 0
        self._join_runs(batch, grouped, bounds, slots, participants_of)
        thread = self._thread
        self._by_thread = array(_INDEX, sorted(range(len(thread)), key=thread.__getitem__))
        self._state = "done"

    def _fallback_runs(self) -> list[list[int]]:
        """Components grouped by subject, the groups the fallback could join within."""
        has, orphan, prefixed = self._has_digest, self._orphan, self._had_prefix
        order = sorted((j for j in range(len(has)) if has[j]), key=self._digest)
        runs: list[list[int]] = []
        start = 0
        while start < len(order):
            digest = self._digest(order[start])
            end = start + 1
            while end < len(order) and self._digest(order[end]) == digest:
                end += 1
            run = order[start:end]
            if len(run) > 1 and any(orphan[j] for j in run) and any(prefixed[j] for j in run):
                runs.append(run)
            start = end
        return runs

    def _items_of(self, slots: array[int]) -> tuple[array[int], array[int]]:
        """The messages of the components marked in ``slots`` (>= 0), grouped by
        component in date order: ``grouped[bounds[slots[j]]:bounds[slots[j] + 1]]``.
        Numbers ``slots`` in passing. A counting sort: arrays only."""
        counts = array(_INDEX)
        for j, slot in enumerate(slots):
            if slot >= 0:
                slots[j] = len(counts)
                counts.append(0)
        item_comp = self._item_comp
        for j in item_comp:
            slot = slots[j]
            if slot >= 0:
                counts[slot] += 1
        bounds = array(_INDEX, [0]) * (len(counts) + 1)
        for slot, count in enumerate(counts):
            bounds[slot + 1] = bounds[slot] + count
        fill = array(_INDEX, bounds[:-1])
        grouped = array(_INDEX, [0]) * bounds[-1]
        for i, j in enumerate(item_comp):
            slot = slots[j]
            if slot >= 0:
                grouped[fill[slot]] = i
                fill[slot] += 1
        return grouped, bounds

    def _join_runs(
        self,
        runs: list[list[int]],
        grouped: array[int],
        bounds: array[int],
        slots: array[int],
        participants_of: Callable[[list[int]], Participants],
    ) -> None:
        """The fallback of :func:`thread_messages_keyed` within each of ``runs``."""
        if not runs:
            return
        keys, when, heads, thread = self._keys, self._when, self._heads, self._thread
        items = {j: grouped[bounds[slots[j]] : bounds[slots[j] + 1]] for run in runs for j in run}
        people = participants_of([keys[i] for part in items.values() for i in part])
        for run in runs:
            components = [
                _Component(
                    items=tuple(items[j]),
                    thread_id=_thread_name(thread[j]),
                    date=_from_micros(when[heads[j]]),
                    # Equal digests are equal subjects, and a digest is never generic.
                    subject=self._digest(j).hex(),
                    had_reply_prefix=self._had_prefix[j] == 1,
                    orphan=self._orphan[j] == 1,
                    participants=frozenset(
                        chain.from_iterable(people.get(keys[i], ()) for i in items[j])
                    ),
                )
                for j in run
            ]
            number = {id(comp): j for comp, j in zip(components, run, strict=True)}
            for group in _subject_groups(lambda i: _from_micros(when[i]), components, self._window):
                lead = min(group, key=lambda comp: (comp.date, comp.thread_id))
                for comp in group:
                    # Members share the lead's subject, hence its key too.
                    thread[number[id(comp)]] = thread[number[id(lead)]]

    def _digest(self, component: int) -> bytes:
        return bytes(self._digests[20 * component : 20 * component + 20])

    # The result.

    def assignments(self) -> Iterator[tuple[int, str]]:
        """(key, thread id) of every message, oldest first."""
        thread = self._threads()
        last_j, last_name = -1, ""
        for key, j in zip(self._keys, self._item_comp, strict=True):
            if j != last_j:
                last_j, last_name = j, _thread_name(thread[j])
            yield key, last_name

    def subject_key(self, thread_id: str) -> str | None:
        """The subject key of a thread (as :func:`thread_messages_keyed` gives it), None
        for a generic subject or a thread id it did not give."""
        thread, order = self._threads(), self._by_thread
        number = thread_id_number(thread_id)
        if number is None:
            return None
        at = bisect.bisect_left(order, number, key=thread.__getitem__)
        if at == len(order) or thread[order[at]] != number:
            return None
        j = order[at]
        return self._digest(j).hex() if self._has_digest[j] else None

    def _threads(self) -> array[int]:
        self._expect("done")
        return self._thread

    def _expect(self, state: str) -> None:
        if self._state != state:
            raise RuntimeError(f"StreamThreader: {state} step called during {self._state}")
