"""Property-based tests of ghostwatch's parsers of untrusted input.

Every entry point here reads mail, a reply or a config file that someone else wrote.
The common properties: no exception but the documented typed one, every single call
finishes in under 2 seconds, and the same input gives the same output. Each test's
docstring states its extra invariants. The coverage-guided counterpart is bench/fuzz.py;
crashes either one found are pinned in test_fuzz_regressions.py.

Runs derandomized (fixed examples on every run, no example database) so CI is stable.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from ghostwatch.classify import (
    HEADER_FIELDS,
    BounceReport,
    Classification,
    Kind,
    bounce_subject,
    classify,
    confirm_bounce_by_body,
    parse_bounce,
)
from ghostwatch.config import Settings, parse_config
from ghostwatch.errors import ConfigError
from ghostwatch.headers import HeaderMap
from ghostwatch.message import FETCH_HEADERS, Direction, MessageMeta, parse_headers
from ghostwatch.replycommands import MAX_RANGE, MAX_SNOOZE, Command, Parsed, ReplyCommandError
from ghostwatch.replycommands import parse as parse_commands
from ghostwatch.replytext import own_text
from ghostwatch.threads import ThreadInput, thread_messages

T = TypeVar("T")

#: Wall-clock budget for one call on one input.
MAX_SECONDS = 2.0

PROPS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: For the targets whose single call costs milliseconds (mail-parser-reply, pydantic).
SLOW_PROPS = settings(PROPS, max_examples=100)


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn`` and fail when it takes longer than MAX_SECONDS (the hang check)."""
    start = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        elapsed = time.perf_counter() - start
        assert elapsed < MAX_SECONDS, f"{fn.__name__} took {elapsed:.2f}s on one input"


def _warm_up() -> None:
    """Pay the lazy imports (dateparser, inscriptis, holidays) before any timed call."""
    parse_commands("snooze 1 until 10 dec", today=date(2024, 1, 1))
    html = EmailMessage()
    html.set_content("<p>send 1</p>", subtype="html")
    own_text(html)
    plain = EmailMessage()
    plain.set_content("send 1\n\nOn Mon, 1 Jan 2024, A <a@x.example> wrote:\n> x\n")
    own_text(plain)
    parse_bounce(b"From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail\n\nx\n")


_warm_up()


# --- shared strategies ----------------------------------------------------------------------

EOLS = st.sampled_from([b"\r\n", b"\n", b"\r"])
ATOM = st.text(alphabet="abcxyz0123456789.-_+=$", min_size=1, max_size=12)
DOMAIN = st.builds("{}.{}".format, ATOM, st.sampled_from(["example", "test", "com", "it"]))

#: Text with the characters that break naive header code: CR, LF, NUL, tabs, 8-bit,
#: RFC 2047 markers, angle brackets, quotes and comment parentheses.
NASTY_TEXT = st.lists(
    st.one_of(
        st.sampled_from([*"\r\n\x00\t <>()\"'@,;:=?\\[]", "=?", "?=", "\udc80"]),
        st.characters(codec="utf-8"),
    ),
    max_size=60,
).map("".join)


@st.composite
def msgids(draw: st.DrawFn) -> str:
    """A Message-ID as written in the wild: usually well-formed, sometimes not at all."""
    left, right = draw(ATOM), draw(DOMAIN)
    form = draw(st.integers(0, 7))
    if form <= 2:
        return f"<{left}@{right}>"
    if form == 3:
        return f"{left}@{right}"  # bare, RFC 822 era
    if form == 4:
        return f"< {left} @ {right} >"  # folded inside the brackets
    if form == 5:
        return f"(comment) <{left}@{right}> (more)"
    if form == 6:
        return f"<{left}<@{right}>>"  # nested brackets
    return draw(NASTY_TEXT)


@st.composite
def encoded_words(draw: st.DrawFn) -> str:
    """RFC 2047 words, valid and broken: unknown charsets, bad base64, unclosed words."""
    charset = draw(st.sampled_from(["utf-8", "UTF-8", "iso-8859-1", "windows-1252", "x-bogus", ""]))
    enc = draw(st.sampled_from(["q", "Q", "b", "B", "x", ""]))
    payload = draw(
        st.one_of(
            st.sampled_from(["w6g=", "Caf=C3=A9", "=FF=FE", "====", "_Re:_", "SGVsbG8", "\udc80"]),
            st.text(alphabet="abcXYZ019+/=_?", max_size=20),
        )
    )
    end = draw(st.sampled_from(["?=", "?=", "", "?"]))
    return f"=?{charset}?{enc}?{payload}{end}"


def _encode(text: str, how: str) -> bytes:
    return text.encode(how, "surrogateescape" if how == "utf-8" else "replace")


@st.composite
def header_values(draw: st.DrawFn, name: str = "") -> bytes:
    """One header value as bytes: ids, addresses, encoded words, junk, very long lines.

    Half the time the value suits the field ``name`` (ids for References, ...)."""
    kind = draw(st.integers(0, 7))
    if draw(st.booleans()):
        kind = _KIND_FOR.get(name.lower(), kind)
    if kind == 0:
        text = " ".join(draw(st.lists(msgids(), max_size=6)))
    elif kind == 1:
        name = draw(st.one_of(st.just(""), encoded_words(), NASTY_TEXT))
        text = f'"{name}" <{draw(ATOM)}@{draw(DOMAIN)}>'
    elif kind == 2:
        text = " ".join(draw(st.lists(st.one_of(encoded_words(), ATOM), max_size=6)))
    elif kind == 3:
        text = draw(
            st.sampled_from(
                [
                    "Mon, 1 Jan 2024 10:00:00 +0100",
                    "1 Jan 2024 10:00 -0000",
                    "Tue, 31 Feb 2024 25:61:61 +9999",
                    "Mon, 1 Jan 99999 00:00:00 +0000",
                    "Mon, 1 Jan 0001 00:00:00 +2359",
                    "Fri, 31 Dec 9999 23:59:59 -2359",
                    "yesterday",
                    "",
                ]
            )
        )
    elif kind == 4:
        # A very long line: a short chunk repeated, so it stays cheap to generate.
        text = draw(st.text(min_size=1, max_size=8)) * draw(st.integers(100, 3000))
    elif kind == 5:
        text = draw(
            st.sampled_from(
                [
                    "multipart/report; report-type=delivery-status; boundary=x",
                    "multipart/report; report-type=disposition-notification",
                    'multipart/report; report-type="feedback-report"',
                    "multipart/report; report-type*=us-ascii''delivery-status",
                    "text/plain; charset=utf-8",
                    "text",
                    "a/b/c",
                    "auto-replied",
                    "auto-generated; foo",
                    "bulk",
                    "<>",
                    "< >",
                ]
            )
        )
    elif kind == 6:
        return draw(st.binary(max_size=80))
    else:
        text = draw(NASTY_TEXT)
    return _encode(text, draw(st.sampled_from(["utf-8", "latin-1"])))


_KIND_FOR = {
    "message-id": 0,
    "references": 0,
    "in-reply-to": 0,
    "from": 1,
    "sender": 1,
    "to": 1,
    "cc": 1,
    "reply-to": 1,
    "subject": 2,
    "date": 3,
    "content-type": 5,
    "auto-submitted": 5,
    "precedence": 5,
    "return-path": 5,
}

FIELD_NAMES = st.one_of(
    st.sampled_from(["Message-ID", "References", "In-Reply-To", "From", "Subject", "Date"]),
    st.sampled_from(sorted(set(FETCH_HEADERS) | set(HEADER_FIELDS))),
    st.sampled_from(["message-id", "REFERENCES", "X-Junk", "Received", "From ", " To", ""]),
    st.text(alphabet="abcXYZ-_:", min_size=1, max_size=10),
)


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    """A plausible header block: fields, folding, odd line ends, maybe a body after it."""
    eol = draw(EOLS)
    lines: list[bytes] = []
    for name in draw(st.lists(FIELD_NAMES, max_size=12)):
        value = draw(header_values(name))
        sep = draw(st.sampled_from([b": ", b":", b":\t", b" : ", b""]))
        line = name.encode("utf-8", "surrogateescape") + sep + value
        if draw(st.booleans()) and len(line) > 20:
            cut = draw(st.integers(1, len(line) - 1))
            line = line[:cut] + eol + draw(st.sampled_from([b" ", b"\t", b""])) + line[cut:]
        lines.append(line)
    if draw(st.booleans()):  # most real mail has one, somewhere among the fields
        ident = draw(msgids()).encode("utf-8", "surrogateescape")
        lines.insert(draw(st.integers(0, len(lines))), b"Message-ID: " + ident)
    block = eol.join(lines)
    if draw(st.booleans()):
        block += eol + eol + draw(st.binary(max_size=40))
    return block


ANY_HEADER_BYTES = st.one_of(header_blocks(), st.binary(max_size=400))

OWN = frozenset({"owner@example.test", "alias@example.test"})
INTERNAL_DATE = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
LINE_BREAKS = re.compile(r"[\n\r\v\f\x1c\x1d\x1e]")
ID_FORM = re.compile(r"<[^<>\s]+>")


# --- 1. header parsing --------------------------------------------------------------------


def _check_meta(meta: MessageMeta) -> None:
    assert isinstance(meta, MessageMeta)
    for ident in (meta.message_id, meta.in_reply_to, *meta.references):
        assert ident is None or ID_FORM.fullmatch(ident), ident
    assert len(set(meta.references)) == len(meta.references)
    if meta.message_id is not None:
        assert meta.message_id not in meta.references
        assert meta.in_reply_to != meta.message_id
    assert ("missing Message-ID" in meta.problems) == (meta.message_id is None)
    assert meta.subject == " ".join(meta.subject.split())
    assert meta.from_addr == "" or ("@" in meta.from_addr and " " not in meta.from_addr)
    assert meta.from_addr == meta.from_addr.lower()
    for addrs in (meta.to_addrs, meta.cc_addrs, meta.reply_to):
        assert all("@" in a and " " not in a for a in addrs)
    assert len(set(meta.to_addrs)) == len(meta.to_addrs)
    assert meta.date.utcoffset() == timedelta(0)
    assert (meta.direction is Direction.INCOMING) == (meta.from_addr not in OWN)
    assert isinstance(meta.kind, Kind)
    assert meta.reasons and all(isinstance(r, str) for r in meta.reasons)
    assert 0 < len(meta.content_type) <= 100


@PROPS
@given(raw=ANY_HEADER_BYTES)
@example(raw=b"Message-ID: <a@b>\r\nReferences: <a@b> <c@d>\r\nIn-Reply-To: <a@b>\r\n")
@example(raw=b"\x00\r\n\r\n: \n \t\nFrom:\n")
@example(raw=b"Date: Fri, 31 Dec 9999 23:59:59 -2359\n")
@example(raw=b"Subject: =?x-bogus?q?=FF?= \xff\xfe\n")
def test_parse_headers_is_total(raw: bytes) -> None:
    """parse_headers never raises (its docstring: "Parsing is total") and returns a
    MessageMeta whose ids are all "<...>" without blanks, that never references itself,
    whose subject has no line breaks, whose date is UTC and whose direction follows the
    From address; the same bytes give an equal result."""
    meta = timed(parse_headers, raw, internal_date=INTERNAL_DATE, own_addresses=OWN)
    _check_meta(meta)
    event(f"kind={meta.kind}, message_id={'yes' if meta.message_id else 'no'}")
    assert parse_headers(raw, internal_date=INTERNAL_DATE, own_addresses=OWN) == meta
    assert meta.kind is classify(HeaderMap(raw)).kind


@PROPS
@given(
    ids=st.lists(st.builds("<{}@{}>".format, ATOM, DOMAIN), min_size=1, max_size=8),
    own_id=st.builds("<{}@{}>".format, ATOM, DOMAIN),
    eol=EOLS,
    fold=st.booleans(),
)
def test_parse_headers_reads_well_formed_ids(
    ids: list[str], own_id: str, eol: bytes, fold: bool
) -> None:
    """Well-formed Message-ID/References/In-Reply-To come back exactly: the Message-ID,
    References deduplicated in order without the message's own id, In-Reply-To unless
    it is the message itself; folding the References field changes nothing."""
    joiner = (eol + b" ") if fold else b" "
    raw = eol.join(
        [
            b"Message-ID: " + own_id.encode(),
            b"References: " + joiner.join(i.encode() for i in ids),
            b"In-Reply-To: " + ids[-1].encode(),
            b"From: Someone <someone@client.example>",
        ]
    )
    meta = timed(parse_headers, raw, internal_date=INTERNAL_DATE, own_addresses=OWN)
    _check_meta(meta)
    assert meta.message_id == own_id
    assert meta.references == tuple(i for i in dict.fromkeys(ids) if i != own_id)
    assert meta.in_reply_to == (None if ids[-1] == own_id else ids[-1])
    assert meta.from_addr == "someone@client.example"


@PROPS
@given(raw=ANY_HEADER_BYTES)
def test_headermap_never_raises(raw: bytes) -> None:
    """HeaderMap accepts any bytes; names are lowercase and present; values are str
    without line breaks; get is the first of get_all; the content type is "type/sub"
    in lowercase; get_param never raises."""
    hm = timed(HeaderMap, raw)
    assert all(isinstance(d, str) for d in hm.defects)
    for name in hm.names():
        assert name == name.lower() and name in hm and name.upper() in hm
        values = hm.get_all(name)
        assert values and all(isinstance(v, str) and not LINE_BREAKS.search(v) for v in values)
        assert hm.get(name) == values[0]
    assert hm.get_all("x-never-there") is None
    assert hm.get("x-never-there", "d") == "d"
    ctype = hm.get_content_type()
    assert ctype == ctype.lower() and ctype.count("/") == 1
    for param in ("report-type", "boundary", "charset"):
        value = hm.get_param(param)
        assert value is None or isinstance(value, str)


@PROPS
@given(
    fields=st.lists(
        st.tuples(
            st.text(alphabet="abcdefXYZ-", min_size=1, max_size=10),
            st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40),
        ),
        max_size=8,
    ),
    eol=EOLS,
)
def test_headermap_round_trips_simple_fields(fields: list[tuple[str, str]], eol: bytes) -> None:
    """Single-line ASCII fields come back by name (any case), in order of appearance."""
    raw = eol.join(f"{n}: {v}".encode() for n, v in fields)
    hm = HeaderMap(raw)
    expected: dict[str, list[str]] = {}
    for name, value in fields:
        expected.setdefault(name.lower(), []).append(value)
    assert hm.names() == frozenset(expected)
    for name, values in expected.items():
        assert hm.get_all(name.upper()) == values


# --- 2. threading -------------------------------------------------------------------------

ID_POOL = ["<a@x>", "<b@x>", "<c@x>", "<d@x>", "<e@x>", "<f@x>"]
POOL_ID = st.sampled_from(ID_POOL)
ODD_IDS = st.one_of(
    st.sampled_from(["", "  ", " <a@x> ", "<\udc80@x>", "<é@x>"]), st.text(max_size=10)
)
THREAD_IDS = st.one_of(POOL_ID, POOL_ID, POOL_ID, st.none(), ODD_IDS)
SUBJECTS = st.one_of(
    st.sampled_from(
        [
            "Project proposal",
            "Re: Project proposal",
            "RE[2]: AW: project PROPOSAL",
            "Fwd: Project proposal",
            "[EXT] Re: Project proposal",
            "hello",
            "Re: hello",
            "",
            "R: I: Preventivo sito web",
            "Preventivo sito web",
        ]
    ),
    st.text(max_size=20),
)
PEOPLE = st.frozensets(st.sampled_from(["a@c.example", "b@c.example", "z@z.example"]), max_size=2)
ZONES = st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-14 * 60, 14 * 60))
DATES = st.builds(
    lambda minutes, tz: (datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)).astimezone(
        tz
    ),
    st.integers(0, 200 * 24 * 60),
    ZONES,
)


def thread_inputs(keys: st.SearchStrategy[int]) -> st.SearchStrategy[ThreadInput]:
    return st.builds(
        ThreadInput,
        key=keys,
        message_id=THREAD_IDS,
        in_reply_to=st.one_of(st.none(), POOL_ID, THREAD_IDS),
        references=st.lists(st.one_of(POOL_ID, POOL_ID, ODD_IDS), max_size=5).map(tuple),
        subject=SUBJECTS,
        date=DATES,
        participants=PEOPLE,
    )


UNIQUE_MESSAGES = st.lists(
    thread_inputs(st.integers(0, 10_000)), min_size=1, max_size=25, unique_by=lambda m: m.key
)
ANY_MESSAGES = st.lists(thread_inputs(st.integers(0, 5)), min_size=1, max_size=25)
WINDOWS = st.builds(timedelta, days=st.integers(0, 200))
THREAD_ID = re.compile(r"t[0-9a-f]{12}")


def _ident(m: ThreadInput) -> str:
    return m.message_id.strip() if m.message_id and m.message_id.strip() else ""


@PROPS
@given(messages=UNIQUE_MESSAGES, window=WINDOWS, data=st.data())
@example(  # a reference cycle through three messages, plus a self-reference
    messages=[
        ThreadInput(
            1,
            "<a@x>",
            "<c@x>",
            ("<c@x>", "<a@x>"),
            "Re: x",
            datetime(2024, 1, 1, tzinfo=UTC),
            frozenset(),
        ),
        ThreadInput(
            2, "<b@x>", "<a@x>", ("<a@x>",), "Re: x", datetime(2024, 1, 2, tzinfo=UTC), frozenset()
        ),
        ThreadInput(
            3, "<c@x>", "<b@x>", ("<b@x>",), "Re: x", datetime(2024, 1, 3, tzinfo=UTC), frozenset()
        ),
    ],
    window=timedelta(days=90),
    data=None,
).via("reference cycle")
def test_thread_messages_partition(
    messages: list[ThreadInput], window: timedelta, data: st.DataObject | None
) -> None:
    """Every input key gets exactly one thread id of the form "t" + 12 hex digits; the
    result is the same on a second call and for any order of the input (the docstring
    promises order independence); messages that share a Message-ID, or where one names
    the other in In-Reply-To/References, are in the same thread (membership is the
    connected component). Cycles, self-references and missing ids never raise."""
    result = timed(thread_messages, messages, subject_window=window)
    assert set(result) == {m.key for m in messages}
    event(f"threads: {min(len(set(result.values())), 5)} of {min(len(result), 5)}+ messages")
    assert all(THREAD_ID.fullmatch(t) for t in result.values())
    assert thread_messages(messages, subject_window=window) == result
    shuffled = data.draw(st.permutations(messages)) if data is not None else messages[::-1]
    assert thread_messages(shuffled, subject_window=window) == result
    by_id: dict[str, list[ThreadInput]] = {}
    for m in messages:
        if _ident(m):
            by_id.setdefault(_ident(m), []).append(m)
    for group in by_id.values():
        assert len({result[m.key] for m in group}) == 1
    for m in messages:
        for cited in {*m.references, m.in_reply_to or ""} - {"", _ident(m)}:
            for other in by_id.get(cited, []):
                assert result[other.key] == result[m.key], (m, other)


@PROPS
@given(messages=ANY_MESSAGES, window=WINDOWS, data=st.data())
def test_thread_messages_duplicate_keys(
    messages: list[ThreadInput], window: timedelta, data: st.DataObject
) -> None:
    """With repeated keys (the docstring says inputs are then ordered on every field)
    the result still covers every key and does not depend on input order."""
    result = timed(thread_messages, messages, subject_window=window)
    assert set(result) == {m.key for m in messages}
    assert thread_messages(data.draw(st.permutations(messages)), subject_window=window) == result


@PROPS
@given(messages=UNIQUE_MESSAGES)
def test_thread_messages_naive_date_is_value_error(messages: list[ThreadInput]) -> None:
    """A naive date anywhere raises ValueError (documented), never another error."""
    naive = ThreadInput(10_001, "<n@x>", None, (), "x", datetime(2024, 1, 1), frozenset())
    with pytest.raises(ValueError, match="timezone-aware"):
        thread_messages([*messages, naive])


# --- 3. classification --------------------------------------------------------------------


def _check_classification(result: Classification) -> None:
    assert isinstance(result, Classification)
    assert isinstance(result.kind, Kind)
    assert result.reasons and all(isinstance(r, str) and r for r in result.reasons)
    assert len(set(result.reasons)) == len(result.reasons)
    assert result.automated == (result.kind is not Kind.HUMAN)


@PROPS
@given(raw=ANY_HEADER_BYTES)
def test_classify_never_raises(raw: bytes) -> None:
    """classify returns a Classification with a Kind and distinct non-empty reasons for
    any header block, read by HeaderMap or by the stdlib compat32 parser, and never an
    "unparseable headers" fallback for HeaderMap (which cannot fail to read)."""
    fast = timed(classify, HeaderMap(raw))
    _check_classification(fast)
    event(f"kind={fast.kind}")
    assert not fast.reasons[0].startswith("unparseable headers")
    assert classify(HeaderMap(raw)) == fast
    _check_classification(
        timed(classify, BytesHeaderParser(policy=policy.compat32).parsebytes(raw))
    )


CLEAN_VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
CLASSIFY_SAMPLES = st.sampled_from(
    [
        "auto-replied",
        "no",
        "bulk",
        "list",
        "auto_reply",
        "<>",
        "Out of office until Monday",
        "Automatic reply: away",
        "Re: Out of office",
        "Undelivered Mail Returned to Sender",
        "MAILER-DAEMON@mx.example",
        "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        "noreply@shop.example",
        "Newsletter <newsletter@shop.example>",
        "Alice <alice@client.example>",
        "multipart/report; report-type=delivery-status",
        "multipart/report; report-type=disposition-notification",
        "multipart/report; report-type=feedback-report",
        "<list.example.com>",
        "yes",
        "Mailbox Rules Agent",
    ]
)


@PROPS
@given(
    fields=st.lists(
        st.tuples(st.sampled_from(HEADER_FIELDS), st.one_of(CLASSIFY_SAMPLES, CLEAN_VALUE)),
        max_size=8,
    )
)
def test_classify_headermap_agrees_with_compat32(fields: list[tuple[str, str]]) -> None:
    """On clean single-line ASCII headers the fast HeaderMap and the stdlib Message
    (what ``classify``'s docstring says it was written for) classify identically."""
    raw = "\r\n".join(f"{name}: {value}" for name, value in fields).encode()
    fast = classify(HeaderMap(raw))
    slow = classify(BytesHeaderParser(policy=policy.compat32).parsebytes(raw))
    assert fast == slow


@PROPS
@given(
    items=st.lists(st.tuples(st.sampled_from(HEADER_FIELDS), NASTY_TEXT), max_size=8),
)
def test_classify_message_with_odd_values(items: list[tuple[str, str]]) -> None:
    """A compat32 Message whose values hold CR/LF, NUL and lone surrogates (what
    surrogateescape leaves) classifies without raising."""
    msg = Message()
    for name, value in items:
        msg[name] = value
    _check_classification(timed(classify, msg))


@st.composite
def bounce_messages(draw: st.DrawFn) -> bytes:
    """DSN-shaped mail (multipart/report and friends) with random parts and junk."""
    eol = draw(EOLS)
    boundary = draw(st.sampled_from(["b1", "=_x", "b1"]))
    top = draw(header_blocks())
    ctype = draw(
        st.sampled_from(
            [
                f"multipart/report; report-type=delivery-status; boundary={boundary}",
                f"multipart/mixed; boundary={boundary}",
                "text/plain",
            ]
        )
    )
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 4))):
        part_type = draw(
            st.sampled_from(
                ["text/plain", "message/delivery-status", "message/rfc822", "text/rfc822-headers"]
            )
        )
        cte = draw(st.sampled_from(["", "base64", "quoted-printable", "x-junk"]))
        body = draw(
            st.one_of(
                st.sampled_from(
                    [
                        b"Final-Recipient: rfc822; bob@client.example\nAction: failed\nStatus: 5.1.1\n",
                        b"Final-Recipient: rfc822;<Bob@Client.example>\nAction: delayed\nStatus: 4.2.2\n",
                        b"Message-ID: <orig@me.example>\nSubject: hi\n",
                        b">  Message-ID:\n  <folded@me.example>\n",
                        b"<bob@client.example>: host said: 550 no such user\n",
                        b"Reporting-MTA: dns; mx.example\n\nFinal-Recipient: rfc822; \n",
                    ]
                ),
                st.binary(max_size=120),
            )
        )
        head = b"Content-Type: " + part_type.encode()
        if cte:
            head += eol + b"Content-Transfer-Encoding: " + cte.encode()
        parts.append(head + eol + eol + body)
    body = b"".join(b"--" + boundary.encode() + eol + p + eol for p in parts)
    if draw(st.booleans()):
        body += b"--" + boundary.encode() + b"--" + eol
    return top + eol + b"Content-Type: " + ctype.encode() + eol + eol + body


@SLOW_PROPS
@given(raw=st.one_of(bounce_messages(), st.binary(max_size=600)))
@example(raw=b"Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n")
def test_parse_bounce_never_raises(raw: bytes) -> None:
    """parse_bounce returns None or a BounceReport whose permanent and temporary sets
    are disjoint, lowercased, non-empty addresses and whose original Message-ID is
    "<...>" without blanks; same bytes, same report."""
    report = timed(parse_bounce, raw)
    assert report is None or isinstance(report, BounceReport)
    event(
        "no bounce"
        if report is None
        else f"bounce, original id: {bool(report.original_message_id)}"
    )
    if report is not None:
        assert not report.permanent & report.temporary
        for addr in report.permanent | report.temporary:
            assert addr and addr == addr.lower() and not addr.startswith("<")
        original = report.original_message_id
        assert original is None or ID_FORM.fullmatch(original)
    assert parse_bounce(raw) == report


@PROPS
@given(
    subject=st.one_of(
        NASTY_TEXT,
        encoded_words(),
        st.builds(
            "{}{}{}".format,
            st.sampled_from(["", "Re: ", "[EXT] ", "Fwd: ", "=?utf-8?q?", " "]),
            st.sampled_from(
                [
                    "Undeliverable",
                    "Mail delivery failed",
                    "Mail Delivery Warning",
                    "Delayed Mail",
                    "Returned mail",
                    "Unzustellbar",
                    "Mancato recapito",
                    "Hello",
                ]
            ),
            st.sampled_from(["", ": x", "?=", " \udc80", "!"]),
        ),
    )
)
def test_bounce_subject_total(subject: str) -> None:
    """bounce_subject returns None or a "delivery failure"/"delivery delay" label for any
    str (surrogates included), and the same label for the same subject."""
    label = timed(bounce_subject, subject)
    assert label is None or label.startswith(("delivery failure", "delivery delay")), label
    assert bounce_subject(subject) == label


@SLOW_PROPS
@given(raw=st.one_of(bounce_messages(), st.binary(max_size=600)))
def test_confirm_bounce_by_body_total(raw: bytes) -> None:
    """confirm_bounce_by_body never raises; it says BOUNCE exactly when parse_bounce finds
    a permanently failed address, AUTO_REPLY when only delayed ones, else None."""
    result = timed(confirm_bounce_by_body, raw)
    report = parse_bounce(raw)
    if report is not None and report.permanent:
        assert result is not None and result.kind is Kind.BOUNCE
    elif report is not None and report.temporary:
        assert result is not None and result.kind is Kind.AUTO_REPLY
    else:
        assert result is None


# --- 4. reply commands --------------------------------------------------------------------

VERB_WORDS = st.sampled_from(
    ["send", "invia", "skip", "salta", "snooze", "rimanda", "stop", "ferma", "paid", "pagato",
     "pagate", "edit", "modifica", "help", "aiuto", "SEND:", "Snooze", "sned"]
)  # fmt: skip
ITEM_WORDS = st.sampled_from(
    ["1", "#2", "1-3", "3-1", "1..4", "2 \u2013 5", "0", "all", "tutti", "and", "e", "&", ",", "1,2",
     "9999999", "1-200", "x", "#", "42"]
)  # fmt: skip
SNOOZE_TAILS = st.sampled_from(
    ["3d", "5 days", "2h", "0d", "1w", "9999999w", "tra 2 sett", "for 3 giorni", "3 fortnights",
     "until 10 dec", "until 2026-12-10", "until 2020-01-01", "until 29 feb", "until 31/12",
     "until 10.12.2030", "to friday", "a lunedì", "fino al 10 dicembre", "fino all'11",
     "until tomorrow", "until next monday", "until the 5th", "until banana", "until", "entro il 3"]
)  # fmt: skip
OTHER_LINES = st.sampled_from(
    ["thanks", "Ciao Mario", "grazie mille!", "-- ", "> send 1", "- send 2", "* skip 3",
     "\u2022 stop 4", "end", "fine", "End.", "", "   ", "Best regards", "Sent from my iPhone"]
)  # fmt: skip


@st.composite
def command_lines(draw: st.DrawFn) -> str:
    words = [draw(VERB_WORDS), *draw(st.lists(ITEM_WORDS, max_size=4))]
    if draw(st.booleans()):
        words.append(draw(SNOOZE_TAILS))
    line = " ".join(words)
    return line + draw(st.sampled_from(["", ".", "!", " ;", "\t"]))


REPLY_TEXTS = st.one_of(
    st.lists(st.one_of(command_lines(), OTHER_LINES, st.text(max_size=30)), max_size=15).map(
        "\n".join
    ),
    st.text(max_size=300),
    st.builds(
        lambda s, n: s * n, st.sampled_from(["send 1\n", "x\r", "edit 1\n"]), st.integers(1, 2500)
    ),
)
TODAYS = st.dates(min_value=date(1970, 1, 1), max_value=date(2200, 12, 31))
TZS = st.sampled_from(
    ["UTC", "Europe/Rome", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago"]
)


def _check_parsed(parsed: Parsed, text: str, today: date) -> None:
    assert isinstance(parsed, Parsed)
    assert all(isinstance(p, str) for p in parsed.not_understood)
    assert len(parsed.not_understood) <= 22  # 20 listed, a count, a truncation note
    lines = {line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")}
    for cmd in parsed.commands:
        assert isinstance(cmd, Command)
        assert cmd.line in lines
        if cmd.verb == "help":
            assert cmd.items == ()
        elif cmd.items == "all":
            assert cmd.verb in {"send", "skip", "snooze"}
        else:
            assert isinstance(cmd.items, tuple) and 0 < len(cmd.items) <= MAX_RANGE
            assert all(isinstance(i, int) and i >= 1 for i in cmd.items)
            assert list(cmd.items) == sorted(set(cmd.items))
        if cmd.verb == "snooze":
            assert cmd.until is not None and today <= cmd.until <= today + MAX_SNOOZE
        else:
            assert cmd.until is None
        assert (cmd.text is not None) == (cmd.verb == "edit")
        if cmd.text is not None:
            assert cmd.text.strip()
            assert cmd.items != "all" and len(cmd.items) == 1


@PROPS
@given(text=REPLY_TEXTS, today=TODAYS, tz=TZS)
@example(text="snooze 1 until 29 feb", today=date(2100, 3, 1), tz="UTC")
@example(
    text="snooze 1 until 2026-12-10\nedit 2\nnew text\nend\nthanks\nsignature",
    today=date(2026, 1, 1),
    tz="UTC",
)
@example(text="send 1-3, 5\r\nskip all\rhelp\n" + "noise\n" * 30, today=date(2024, 1, 1), tz="UTC")
def test_reply_commands_total_and_pure(text: str, today: date, tz: str) -> None:
    """parse never raises on text; items are sorted distinct positive ints (at most
    MAX_RANGE), "all" only for send/skip/snooze, () only for help; a snooze lands
    between today and a year ahead; only edit carries text; every command's line is a
    line of the input; parse is pure (same input, same output)."""
    parsed = timed(parse_commands, text, today=today, tz=tz)
    _check_parsed(parsed, text, today)
    event(f"verbs: {sorted({c.verb for c in parsed.commands})}")
    assert parse_commands(text, today=today, tz=tz) == parsed


@PROPS
@given(
    verb=st.sampled_from(["send", "skip", "stop", "paid", "invia", "salta", "ferma", "pagato"]),
    numbers=st.lists(st.integers(1, 999), min_size=1, max_size=6),
    sep=st.sampled_from([" ", ", ", " and ", " e ", ",", " #"]),
)
def test_reply_commands_simple_lists(verb: str, numbers: list[int], sep: str) -> None:
    """ "verb n1 n2 ..." is understood as exactly one command with the sorted distinct
    numbers, whatever the separator."""
    line = verb + " " + sep.join(str(n) for n in numbers)
    parsed = parse_commands(line, today=date(2024, 5, 1))
    assert parsed.not_understood == ()
    assert [c.items for c in parsed.commands] == [tuple(sorted(set(numbers)))]


@PROPS
@given(
    tz=st.one_of(
        st.text(max_size=40),
        st.sampled_from(["America", "Etc", "a" * 300, "\udc80", "\x00", "../x"]),
    )
)
def test_reply_commands_bad_zone_is_typed_error(tz: str) -> None:
    """Any time-zone string either works or raises ReplyCommandError (documented)."""
    try:
        parsed = parse_commands("send 1", today=date(2024, 1, 1), tz=tz)
    except ReplyCommandError:
        return
    assert [c.items for c in parsed.commands] == [(1,)]


# --- 5. reply text ------------------------------------------------------------------------

QUOTE_HEADERS = st.sampled_from(
    [
        "On Mon, 1 Jan 2024 at 10:00, Ghostwatch <owner@example.test> wrote:",
        "Il giorno lun 1 gen 2024 alle ore 10:00 Ghostwatch <owner@example.test> ha scritto:",
        "Am Mo., 1. Jan. 2024 um 10:00 Uhr schrieb Ghostwatch <owner@example.test>:",
        "-----Original Message-----",
        "From: Ghostwatch <owner@example.test>\nSent: Monday, 1 January 2024 10:00\nTo: me\nSubject: digest",
        "Da: Ghostwatch\nInviato: lunedì 1 gennaio 2024\nA: me\nOggetto: digest",
        "> On Mon, 1 Jan 2024, Ghostwatch wrote:",
    ]
)
BODY_LINES = st.one_of(
    command_lines(),
    OTHER_LINES,
    QUOTE_HEADERS,
    st.builds("> {}".format, st.text(max_size=20)),
    st.sampled_from(
        ["-- ", "__________", "Inviato da iPhone", "CONFIDENTIAL: this e-mail is private"]
    ),
    st.text(max_size=40),
)
BODIES = st.one_of(
    st.lists(BODY_LINES, max_size=20).map("\n".join),
    st.text(max_size=400),
    st.builds(
        lambda s, n: s * n,
        st.sampled_from([">\n", "a ", "On x wrote:\n", "<p>"]),
        st.integers(1, 3000),
    ),
)
HTML_BODIES = st.one_of(
    st.lists(
        st.one_of(
            BODY_LINES.map(lambda s: f"<p>{s}</p>"),
            st.sampled_from(
                [
                    "<blockquote>",
                    "</blockquote>",
                    "<div>",
                    "</div>",
                    "<br>",
                    "<table><tr><td>",
                    "&amp;",
                    "&#xD800;",
                    "&bogus;",
                    "<!--",
                    "-->",
                    "<script>x</script>",
                    "<pre>",
                    "<ul><li>",
                    "</",
                    "<",
                    "<![CDATA[",
                    "<p style='margin:0'>",
                ]
            ),
            st.text(max_size=20),
        ),
        max_size=25,
    ).map("".join),
    st.text(max_size=300),
)
CHARSETS = st.sampled_from(["utf-8", "iso-8859-1", "us-ascii", "x-unknown", "utf-16", ""])
CTES = st.sampled_from(["", "7bit", "8bit", "quoted-printable", "base64", "x-uuencode", "junk"])


def _part(ctype: str, body: bytes, *, charset: str, cte: str, extra: str, eol: bytes) -> bytes:
    head = f"Content-Type: {ctype}" + (f"; charset={charset}" if charset else "") + extra
    lines = [head.encode()]
    if cte:
        lines.append(f"Content-Transfer-Encoding: {cte}".encode())
    return eol.join(lines) + eol + eol + body


@st.composite
def reply_messages(draw: st.DrawFn) -> EmailMessage:
    """A reply to the digest: text, HTML or both, any charset, encoding or flowing."""
    eol = draw(EOLS)
    charset = draw(CHARSETS)
    how = {"iso-8859-1": "latin-1", "utf-16": "utf-16"}.get(charset, "utf-8")
    plain = (
        _encode(draw(BODIES), how) if how != "utf-16" else draw(BODIES).encode("utf-16", "replace")
    )
    html = _encode(draw(HTML_BODIES), "utf-8")
    flowed = draw(st.sampled_from(["", "; format=flowed", "; format=flowed; delsp=yes"]))
    shape = draw(st.integers(0, 3))
    head = b"From: Owner <owner@example.test>" + eol + b"Subject: Re: digest" + eol
    if shape == 0:
        raw = head + _part(
            "text/plain", plain, charset=charset, cte=draw(CTES), extra=flowed, eol=eol
        )
    elif shape == 1:
        raw = head + _part(
            "text/html", html, charset=draw(CHARSETS), cte=draw(CTES), extra="", eol=eol
        )
    else:
        parts = [
            _part("text/plain", plain, charset=charset, cte=draw(CTES), extra=flowed, eol=eol),
            _part("text/html", html, charset="utf-8", cte=draw(CTES), extra="", eol=eol),
        ]
        if shape == 3:
            parts = parts[1:]
        inner = b"".join(b"--bnd" + eol + p + eol for p in parts) + b"--bnd--" + eol
        raw = head + b'Content-Type: multipart/alternative; boundary="bnd"' + eol + eol + inner
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


QUOTED = re.compile(r"^[ \t]*>", re.MULTILINE)


@SLOW_PROPS
@given(
    msg=st.one_of(
        reply_messages(), st.binary(max_size=500).map(BytesParser(policy=policy.default).parsebytes)
    )
)
def test_own_text_never_raises(msg: EmailMessage) -> None:
    """own_text returns a str for any message: stripped, no ">"-quoted line, no run of
    three blank lines; the same message gives the same text."""
    text = timed(own_text, msg)
    assert isinstance(text, str)
    event("empty" if not text else "some text")
    assert text == text.strip()
    assert not QUOTED.search(text)
    assert "\n\n\n" not in text
    assert own_text(msg) == text


@SLOW_PROPS
@given(
    commands=st.lists(
        st.sampled_from(["send 1", "skip 2 3", "snooze 4 3d", "stop 5", "paid 6", "help"]),
        min_size=1,
        max_size=5,
    ),
    header=QUOTE_HEADERS.filter(lambda h: not h.startswith(">")),
    quoted=st.lists(st.text(alphabet="abc 123", max_size=20), max_size=5),
)
def test_own_text_keeps_commands_above_the_quote(
    commands: list[str], header: str, quoted: list[str]
) -> None:
    """Commands top-posted above a quoted digest (Gmail, Italian, German, Outlook
    headers) are exactly what own_text returns."""
    msg = EmailMessage()
    msg.set_content("\n".join([*commands, "", header, *(f"> {q}" for q in quoted)]) + "\n")
    assert own_text(msg) == "\n".join(commands)


# --- 6. config loader ---------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(value: str) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_value(value: object) -> str:
    """A value as inline TOML (strings, numbers, dates, arrays, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(data: dict[str, object]) -> str:
    return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in data.items())


TOML_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
SCALARS = st.one_of(
    TOML_TEXT,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.datetimes(timezones=st.just(UTC)),
)
ANY_TOML = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TOML_TEXT, inner, max_size=3),
    max_leaves=8,
)


def _or_random(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The plausible value most of the time, any TOML value sometimes."""
    return st.one_of(strategy, strategy, strategy, ANY_TOML)


def table(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A table whose keys are each present or not, with an occasional unknown key."""
    return st.builds(
        lambda known, extra: {**known, **extra},
        st.fixed_dictionaries({}, optional={k: _or_random(v) for k, v in fields.items()}),
        st.dictionaries(st.sampled_from(["bogus", "Host", "password "]), SCALARS, max_size=1),
    )


ADDRESSES = st.sampled_from(
    ["me@example.test", "ME@Example.Test", "no-at-sign", "a@b", "x y@z.example", ""]
)
ZONE_NAMES = st.sampled_from(
    ["UTC", "Europe/Rome", "America", "Etc", "Nowhere/Land", "", "a" * 300]
)
TIMES = st.sampled_from(["08:30", "24:00", "8:30", "", "23:59"])
DAYS = st.sampled_from(["mon", "Friday", "sun ", "xyz", ""])
OFFSETS = st.sampled_from(
    [
        "5d",
        "3 business days",
        "tuesday of next week",
        "0d",
        "-1d",
        "99999999999d",
        "36h",
        "",
        "soon",
    ]
)
SERVER = table(
    host=st.sampled_from(["imap.example.com", "localhost", "127.0.0.1", "::1", ""]),
    port=st.integers(-1, 70000),
    security=st.sampled_from(["tls", "starttls", "none", "ssl"]),
    username=st.sampled_from(["me", ""]),
    password=st.sampled_from(["s3cret"]),
    password_command=st.sampled_from(["echo s3cret"]),
    password_env=st.sampled_from(["PW"]),
    token_command=st.sampled_from(["oauth2"]),
    timeout=st.floats(-1, 100),
    folders=st.lists(st.sampled_from(["Archive", ""]), max_size=2),
    fetch_chunk=st.integers(0, 30000),
)
ACCOUNT = table(
    name=st.sampled_from(["work", "home", "bad name", ""]),
    address=ADDRESSES,
    aliases=st.lists(ADDRESSES, max_size=2),
    display_name=st.sampled_from(["Me", "Me\nBcc: x", ""]),
    colleague_domains=st.lists(st.sampled_from(["@acme.example", "x"]), max_size=2),
    imap=SERVER,
    smtp=SERVER,
)
STEP = table(
    name=st.sampled_from(["first", "second", "bad name"]),
    after=OFFSETS,
    after_term=st.sampled_from(["kill_fee_after", "x"]),
    anchor=st.sampled_from(["last_outgoing", "previous", "due_date", "first_unanswered", "x"]),
    action=st.sampled_from(["send", "task", "pause", "close", "x"]),
    template=st.sampled_from(["nudge", ""]),
    task=st.sampled_from(["call", "investigate", "x"]),
    mode=st.sampled_from(["auto", "approve", "x"]),
    firm=st.booleans(),
    deadline=OFFSETS,
    reminders=st.lists(st.sampled_from(["certified_mail", "x"]), max_size=2),
    allow_short=st.booleans(),
)
POLICY = table(
    name=st.sampled_from(["prospect", "custom", "bad name"]),
    stage=st.sampled_from(["prospect", "project", "payment", "ignore", "x"]),
    steps=st.lists(STEP, max_size=3),
)
REGEXES = st.sampled_from(["invoice \\d+", "(", "(?P<a>", "a{99999}", "[z-a]", ".*"])
CONFIG_DICTS = table(
    database=table(url=st.sampled_from(["sqlite:////tmp/gw-fuzz.db", "postgresql://x", ""])),
    log=table(
        level=st.sampled_from(["info", "DEBUG", "loud"]), format=st.sampled_from(["json", "x"])
    ),
    profile=table(name=TOML_TEXT, signature=TOML_TEXT, templates_dir=TOML_TEXT),
    sending=table(
        dry_run=st.booleans(),
        auto_send=st.booleans(),
        save_to_sent=st.sampled_from(["auto", "always", "never", "x"]),
        hourly_cap=st.integers(-5, 2000),
        spread_minutes=st.integers(-5, 700),
        queue_ahead_hours=st.floats(-1, 400),
        retry_minutes=st.floats(-1, 2000),
    ),
    daemon=table(
        poll_minutes=st.floats(-1, 2000),
        idle=st.booleans(),
        idle_renew_minutes=st.floats(0, 40),
        lease_seconds=st.floats(0, 5000),
    ),
    metrics=table(listen=st.sampled_from(["127.0.0.1:9464", "[::1]:9464", "nope", ":1"])),
    approval=table(
        digest_to=ADDRESSES,
        times=st.lists(TIMES, max_size=3),
        days=st.lists(DAYS, max_size=3),
        token_hours=st.floats(-1, 1000),
        plus_addressing=st.booleans(),
        reply_alias=ADDRESSES,
        authserv_id=st.sampled_from(["mx.example", ""]),
        require_auth=st.lists(st.sampled_from(["dkim", "spf", "dmarc", "x"]), max_size=2),
    ),
    accounts=st.lists(ACCOUNT, max_size=2),
    defaults=table(
        stage=st.sampled_from(["prospect", "payment", "nope"]),
        time_zone=ZONE_NAMES,
        country=st.sampled_from(["IT", "it", "US", "XX", ""]),
        locale=st.sampled_from(["en", "it", "fr"]),
        send_window=table(start=TIMES, end=TIMES, days=st.lists(DAYS, max_size=3)),
        auto_reply_delay=OFFSETS,
        auto_reply_cap=OFFSETS,
        slow_client_days=st.floats(-1, 100),
    ),
    clients=st.lists(
        table(
            name=st.sampled_from(["Acme", "acme", ""]),
            addresses=st.lists(ADDRESSES, max_size=2),
            domains=st.lists(st.sampled_from(["acme.example", "gmail.com", "nodot"]), max_size=2),
            time_zone=ZONE_NAMES,
            country=st.sampled_from(["IT", "XX"]),
            stage=st.sampled_from(["project", "nope"]),
            contract=table(
                deposit_percent=st.integers(-1, 101),
                kill_fee_after=OFFSETS,
                currency=st.sampled_from(["EUR", "eur", "EURO"]),
                payment_terms_days=st.integers(-1, 400),
            ),
        ),
        max_size=2,
    ),
    rules=st.lists(
        table(stage=st.sampled_from(["project", "nope"]), subject=REGEXES, domain=TOML_TEXT),
        max_size=2,
    ),
    policies=st.dictionaries(
        st.sampled_from(["prospect", "payment", "custom", "x y"]), POLICY, max_size=2
    ),
    payment_notices=table(
        senders=st.lists(ADDRESSES, max_size=2), subject_patterns=st.lists(REGEXES, max_size=2)
    ),
    policy=ANY_TOML,
    _env_prefix=SCALARS,
    _cli_parse_args=st.booleans(),
)

CONFIG_DOCS = CONFIG_DICTS.map(lambda d: toml_document(d).encode("utf-8"))
EXAMPLE_CONFIG = (Path(__file__).parents[2] / "config.example.toml").read_bytes()


@st.composite
def mutated_example(draw: st.DrawFn) -> bytes:
    """config.example.toml with a few lines deleted, duplicated or overwritten."""
    lines = EXAMPLE_CONFIG.split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(lines) - 1))
        how = draw(st.integers(0, 3))
        if how == 0:
            del lines[at]
        elif how == 1:
            lines.insert(at, lines[at])
        elif how == 2:
            key = lines[at].split(b"=", 1)[0] if b"=" in lines[at] else b"x "
            lines[at] = key + b"= " + toml_value(draw(ANY_TOML)).encode("utf-8")
        else:
            lines[at] = draw(st.binary(max_size=20))
    return b"\n".join(lines)


@pytest.fixture(scope="module")
def config_dir() -> Iterator[Path]:
    """A private directory for config files, with GHOSTWATCH_* variables out of the way."""
    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as tmp:
        for name in [n for n in os.environ if n.startswith("GHOSTWATCH_")]:
            mp.delenv(name)
        yield Path(tmp)


@SLOW_PROPS
@given(
    raw=st.one_of(CONFIG_DOCS, mutated_example(), st.binary(max_size=200)),
    mode=st.sampled_from([0o600, 0o600, 0o644]),
)
@example(raw=EXAMPLE_CONFIG, mode=0o644)
@example(raw=b"accounts = 5", mode=0o600)
@example(raw=b"_cli_parse_args = true", mode=0o600)
@example(raw=b"a = " + b"[" * 1500 + b"]" * 1500, mode=0o600)
def test_parse_config_only_config_error(config_dir: Path, raw: bytes, mode: int) -> None:
    """parse_config returns Settings or raises ConfigError whose message starts with the
    file's path, never pydantic's ValidationError, TypeError or anything else; a
    plaintext password in a file other users can read is always refused."""
    path = config_dir / "config.toml"
    path.write_bytes(raw)
    path.chmod(mode)
    error: ConfigError | None = None
    try:
        result = timed(parse_config, raw, path)
    except ConfigError as exc:
        error = exc
    if error is not None:
        message = str(error)
        assert message.startswith(str(path))
        key = message.split("\n")[1].split(":", 1)[0].strip() if "\n" in message else "(file)"
        event(f"ConfigError at {key}")
        return
    event("Settings")
    assert isinstance(result, Settings)
    if mode & 0o077:
        assert not any(
            getattr(server, "password", None) is not None
            for account in result.accounts
            for server in (account.imap, account.smtp)
        )


@PROPS
@given(data=CONFIG_DICTS)
def test_toml_writer_round_trips(data: dict[str, Any]) -> None:
    """The test's own TOML writer is faithful (so the config property tests what it
    claims): tomllib reads back the dict it wrote, NaN aside."""
    text = toml_document(data)
    if "nan" in text:
        return
    assert tomllib.loads(text) == data
