"""Coverage-guided fuzzing (atheris + libFuzzer) of ghostwatch's parsers of untrusted input.

    python bench/fuzz.py --target header --seconds 60
    python bench/fuzz.py --target config --seconds 300 --corpus /tmp/gw-config-corpus

Targets (the property-based counterpart is tests/unit/test_properties.py):

* ``header``: ``message.parse_headers`` and ``headers.HeaderMap`` on raw header bytes.
* ``threads``: ``threads.thread_messages`` on message lists decoded from the input
  (reference cycles, self-references, duplicate and missing ids, duplicate keys).
* ``classify``: ``classify.classify`` (HeaderMap and compat32 Message),
  ``classify.parse_bounce``, ``classify.confirm_bounce_by_body`` and
  ``classify.bounce_subject`` on whole messages.
* ``commands``: ``replycommands.parse`` on reply text, for a ``today`` and zone
  taken from the input.
* ``replytext``: ``replytext.own_text`` on messages parsed from the input, or built
  from it as a text/plain or text/html body.
* ``config``: ``config.parse_config`` on the input written to a 0600 (sometimes 0644)
  file.

Each input must return, or raise only the error its module documents (``ConfigError``
for config; nothing for the others), finish within 2 seconds, and keep the cheap
invariants the property tests check. Anything else is a crash: the input is saved as
``bench/fuzz-crashes/<target>-<kind>-<sha1>.bin`` with the traceback next to it
(``.txt``), printed once per distinct (exception, location), and fuzzing goes on
(``--stop-on-crash`` stops at the first). libFuzzer's own artifacts (a hang past its
``-timeout``, a native crash) land in the same directory.

The run happens in a child process (libFuzzer ends the process when its time is up);
the parent prints a one-line summary that ``bench/fuzz_all.sh`` collects:
``SUMMARY target=... execs=... exec_per_sec=... cov=... ft=... corpus=... crashes=...``.
``cov`` is libFuzzer's count of covered edges of the instrumented code (ghostwatch plus
the libraries the target leans on), ``ft`` its finer feature count.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CRASH_DIR = ROOT / "bench" / "fuzz-crashes"
TARGETS = ("header", "threads", "classify", "commands", "replytext", "config")
MAX_SECONDS = 2.0  # per input, the same budget the property tests give one call
HARD_TIMEOUT = 10  # libFuzzer kills the run past this: a hang, not merely slow
MAX_SAVED = 20  # distinct crash signatures saved per run; more are only counted
MARK = "GHOSTWATCH-FUZZ"
WORKDIR_ENV = "GW_FUZZ_WORKDIR"  # not GHOSTWATCH_*: those are config overrides

#: Module prefixes atheris instruments per target, for coverage feedback.
INSTRUMENT: dict[str, list[str]] = {
    "header": ["ghostwatch", "email"],
    "threads": ["ghostwatch"],
    "classify": ["ghostwatch", "email", "flufl"],
    "commands": ["ghostwatch", "dateparser"],
    "replytext": ["ghostwatch", "email", "mailparser_reply", "inscriptis", "lxml"],
    "config": ["ghostwatch", "tomllib", "pydantic", "pydantic_settings"],
}
MAX_LEN = {
    "header": 8192,
    "threads": 2048,
    "classify": 16384,
    "commands": 4096,
    "replytext": 16384,
    "config": 16384,
}

#: Tokens libFuzzer splices into inputs (a -dict file); reaching a parser's keywords by
#: bit flips alone would take most of the budget.
DICTIONARY: dict[str, list[str]] = {
    "header": [
        "Message-ID: ",
        "References: ",
        "In-Reply-To: ",
        "From: ",
        "To: ",
        "Cc: ",
        "Subject: ",
        "Date: ",
        "Content-Type: ",
        "Auto-Submitted: auto-replied",
        "Precedence: bulk",
        "Return-Path: <>",
        "List-Id: ",
        "X-Autoreply: yes",
        "=?utf-8?q?",
        "=?iso-8859-1?b?",
        "?=",
        "<a@b.example>",
        "\r\n ",
        "\r\n",
        "multipart/report; report-type=delivery-status",
        "Mon, 1 Jan 2024 10:00:00 +0100",
        '"Name" <x@y.example>',
    ],
    "classify": [
        "MAILER-DAEMON@",
        "postmaster@",
        "noreply@",
        "Mail Delivery Subsystem",
        "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n",
        "--b\n",
        "--b--\n",
        "Content-Type: message/delivery-status\n",
        "Content-Type: message/rfc822\n",
        "Content-Type: text/rfc822-headers\n",
        "Final-Recipient: rfc822; ",
        "Action: failed\n",
        "Action: delayed\n",
        "Status: 5.1.1\n",
        "X-Failed-Recipients: ",
        "Out of office",
        "Undelivered Mail",
        "Content-Transfer-Encoding: base64\n",
        "Message-ID: <o@x.example>\n",
    ],
    "commands": [
        "send ",
        "skip ",
        "snooze ",
        "stop ",
        "paid ",
        "edit ",
        "help",
        "invia ",
        "salta ",
        "rimanda ",
        "ferma ",
        "pagato ",
        "modifica ",
        "aiuto",
        "all",
        "tutti",
        " and ",
        " e ",
        "1-3",
        "#2",
        "3d",
        " days",
        "2 sett",
        " until ",
        " fino al ",
        " al ",
        " to ",
        "10 dec",
        "2026-12-10",
        "31/12",
        "friday",
        "lunedì",
        "dicembre",
        "\nend\n",
        "\nfine\n",
        "thanks",
        "Ciao Mario",
        "- ",
        "\u2022 ",
    ],
    "replytext": [
        "Content-Type: text/plain; charset=utf-8\n",
        "Content-Type: text/html\n",
        "Content-Type: multipart/alternative; boundary=b\n",
        "--b\n",
        "--b--\n",
        "; format=flowed",
        "; delsp=yes",
        "Content-Transfer-Encoding: quoted-printable\n",
        "Content-Transfer-Encoding: base64\n",
        "On Mon, 1 Jan 2024, A <a@x.example> wrote:",
        "Il giorno lun 1 gen 2024 A ha scritto:",
        "-----Original Message-----",
        "From: A\nSent: B\nTo: C\nSubject: D\n",
        "\n> ",
        "\n-- \n",
        "Sent from my iPhone",
        "<blockquote>",
        "</blockquote>",
        "<p>",
        "</p>",
        "<br>",
        "<div>",
        "&nbsp;",
        "____",
    ],
    "config": [
        "[database]\n",
        "[log]\n",
        "[profile]\n",
        "[sending]\n",
        "[daemon]\n",
        "[metrics]\n",
        "[approval]\n",
        "[[accounts]]\n",
        "[accounts.imap]\n",
        "[accounts.smtp]\n",
        "accounts = ",
        "[defaults]\n",
        "[[clients]]\n",
        "[[rules]]\n",
        "[policies.prospect]\n",
        "[[policies.prospect.steps]]\n",
        "[payment_notices]\n",
        "password = ",
        "host = ",
        "time_zone = ",
        "country = ",
        "after = ",
        "stage = ",
        "template = ",
        "subject = ",
        '"5 business days"',
        '"Europe/Rome"',
        " = [",
        " = {",
        '"""',
        "'''",
        "true",
        "2024-01-01",
        "1e9",
        "nan",
        "_env_file",
        "_cli_parse_args",
    ],
}
DICTIONARY["threads"] = []


# --- the targets ----------------------------------------------------------------------------
# Each loader imports what it needs (inside atheris' instrumentation) and returns the
# function run on one input plus the exception types its contract allows.

Runner = Callable[[bytes], None]


def check(ok: object, what: str) -> None:
    """An invariant; AssertionError is reported like any other crash."""
    if not ok:
        raise AssertionError(what)


_ID = re.compile(r"<[^<>\s]+>")
_THREAD_ID = re.compile(r"t[0-9a-f]{12}")


def load_header() -> tuple[Runner, tuple[type[BaseException], ...]]:
    from ghostwatch.classify import Kind
    from ghostwatch.headers import HeaderMap
    from ghostwatch.message import Direction, parse_headers

    when = datetime(2024, 3, 1, 12, tzinfo=UTC)
    own = frozenset({"owner@example.test"})

    def run(data: bytes) -> None:
        meta = parse_headers(data, internal_date=when, own_addresses=own)
        for ident in (meta.message_id, meta.in_reply_to, *meta.references):
            check(ident is None or _ID.fullmatch(ident), f"malformed id {ident!r}")
        check(meta.message_id is None or meta.message_id not in meta.references, "self ref")
        check(meta.subject == " ".join(meta.subject.split()), "subject not unfolded")
        check(meta.date.utcoffset() == timedelta(0), "date not UTC")
        check(isinstance(meta.kind, Kind) and meta.reasons, "no kind or reasons")
        check((meta.direction is Direction.INCOMING) == (meta.from_addr not in own), "direction")
        hm = HeaderMap(data)
        for name in hm.names():
            values = hm.get_all(name)
            check(values and hm.get(name) == values[0], f"get/get_all on {name!r}")
        check(hm.get_content_type().count("/") == 1, "content type")
        hm.get_param("report-type")

    return run, ()


_SUBJECTS = [
    "Project proposal", "Re: Project proposal", "AW: RE[2]: project proposal", "hello",
    "Fwd: Project proposal", "", "[EXT] R: Preventivo", "Preventivo",
]  # fmt: skip
_PEOPLE = ["a@c.example", "b@c.example", "z@z.example"]
_POOL = ["<a@x>", "<b@x>", "<c@x>", "<d@x>", "<e@x>", "<f@x>"]


def load_threads() -> tuple[Runner, tuple[type[BaseException], ...]]:
    import atheris  # type: ignore[import-untyped]

    from ghostwatch.threads import ThreadInput, thread_messages

    base = datetime(2024, 1, 1, tzinfo=UTC)

    def pick_id(fdp: Any) -> str | None:
        choice: int = fdp.ConsumeIntInRange(0, 9)
        if choice < len(_POOL):
            return _POOL[choice]
        if choice == 6:
            return None
        if choice == 7:
            return str(fdp.PickValueInList(["", "  ", " <a@x> ", "<\udc80@x>"]))
        if choice == 8:
            return str(fdp.ConsumeUnicode(8))
        return f"<{fdp.ConsumeUnicodeNoSurrogates(6)!s}@x>"

    def run(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        window = timedelta(days=fdp.ConsumeIntInRange(0, 400))
        messages = []
        for _ in range(fdp.ConsumeIntInRange(0, 40)):
            zone = timezone(timedelta(minutes=fdp.ConsumeIntInRange(-840, 840)))
            messages.append(
                ThreadInput(
                    key=fdp.ConsumeIntInRange(0, 63),
                    message_id=pick_id(fdp),
                    in_reply_to=pick_id(fdp),
                    references=tuple(
                        pick_id(fdp) or "" for _ in range(fdp.ConsumeIntInRange(0, 6))
                    ),
                    subject=fdp.PickValueInList(_SUBJECTS)
                    if fdp.ConsumeBool()
                    else fdp.ConsumeUnicode(12),
                    date=(
                        base + timedelta(minutes=fdp.ConsumeIntInRange(0, 400 * 1440))
                    ).astimezone(zone),
                    participants=frozenset(
                        fdp.PickValueInList(_PEOPLE) for _ in range(fdp.ConsumeIntInRange(0, 2))
                    ),
                )
            )
        result = thread_messages(messages, subject_window=window)
        check(set(result) == {m.key for m in messages}, "a key lost or invented")
        check(all(_THREAD_ID.fullmatch(t) for t in result.values()), "thread id format")
        check(thread_messages(messages[::-1], subject_window=window) == result, "input order")
        if len({m.key for m in messages}) == len(messages):
            ident = {m.key: (m.message_id or "").strip() for m in messages}
            by_id: dict[str, list[int]] = {}
            for m in messages:
                if ident[m.key]:
                    by_id.setdefault(ident[m.key], []).append(m.key)
            for m in messages:
                for cited in {*m.references, m.in_reply_to or ""} - {"", ident[m.key]}:
                    for other in by_id.get(cited, []):
                        check(result[other] == result[m.key], f"{m.key} and {other} split")

    return run, ()


def load_classify() -> tuple[Runner, tuple[type[BaseException], ...]]:
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    from ghostwatch.classify import (
        Kind,
        bounce_subject,
        classify,
        confirm_bounce_by_body,
        parse_bounce,
    )
    from ghostwatch.headers import HeaderMap

    def run(data: bytes) -> None:
        mode, raw = (data[0] % 4, data[1:]) if data else (0, b"")
        if mode == 3:
            label = bounce_subject(raw.decode("utf-8", "surrogateescape"))
            check(label is None or label.startswith("delivery"), f"label {label!r}")
            result = confirm_bounce_by_body(raw)
            check(result is None or result.kind in {Kind.BOUNCE, Kind.AUTO_REPLY}, "kind")
            return
        if mode == 2:
            report = parse_bounce(raw)
            if report is not None:
                check(not report.permanent & report.temporary, "permanent and temporary")
                original = report.original_message_id
                check(original is None or _ID.fullmatch(original), f"original id {original!r}")
            return
        headers = (
            HeaderMap(raw) if mode == 0 else BytesHeaderParser(policy=compat32).parsebytes(raw)
        )
        result = classify(headers)
        check(isinstance(result.kind, Kind) and result.reasons, "no kind or reasons")
        check(mode or not result.reasons[0].startswith("unparseable"), result.reasons[0])

    return run, ()


_ZONES = ["UTC", "Europe/Rome", "America/New_York", "Pacific/Kiritimati", "Asia/Kolkata"]


def load_commands() -> tuple[Runner, tuple[type[BaseException], ...]]:
    from ghostwatch.replycommands import MAX_RANGE, MAX_SNOOZE, parse

    # dateparser is imported on first use; do it now, inside the instrumentation.
    parse("snooze 1 until 10 dec", today=date(2024, 1, 1))

    def run(data: bytes) -> None:
        head, raw = data[:3].ljust(3, b"\0"), data[3:]
        today = date(1970, 1, 1) + timedelta(days=int.from_bytes(head[:2], "big") * 2 % 84000)
        tz = _ZONES[head[2] % len(_ZONES)]
        text = raw.decode("utf-8", "replace")
        parsed = parse(text, today=today, tz=tz)
        for cmd in parsed.commands:
            if cmd.items == "all":
                check(cmd.verb in {"send", "skip", "snooze"}, f"all for {cmd.verb}")
            elif cmd.verb != "help":
                items = list(cmd.items)
                check(items and items == sorted(set(items)) and items[0] >= 1, f"items {items}")
                check(len(items) <= MAX_RANGE, "too many items")
            check((cmd.until is not None) == (cmd.verb == "snooze"), "until")
            if cmd.until is not None:
                check(today <= cmd.until <= today + MAX_SNOOZE, f"snooze to {cmd.until}")
            check((cmd.text is not None) == (cmd.verb == "edit"), "text")
        check(parse(text, today=today, tz=tz) == parsed, "not pure")

    return run, ()


def load_replytext() -> tuple[Runner, tuple[type[BaseException], ...]]:
    from email import policy
    from email.message import EmailMessage
    from email.parser import BytesParser

    from ghostwatch.replytext import own_text

    parser = BytesParser(policy=policy.default)
    quoted = re.compile(r"^[ \t]*>", re.MULTILINE)
    # inscriptis (HTML bodies) is imported on first use; do it now, inside the instrumentation.
    own_text(parser.parsebytes(b"Content-Type: text/html\n\n<p>send 1</p>"))

    def run(data: bytes) -> None:
        mode, raw = (data[0] % 3, data[1:]) if data else (0, b"")
        if mode == 0:
            msg = parser.parsebytes(raw)
        else:
            msg = EmailMessage()
            try:  # building the message is the harness's business, not ghostwatch's
                msg.set_content(
                    raw.decode("utf-8", "replace"), subtype="plain" if mode == 1 else "html"
                )
            except Exception:
                return
        text = own_text(msg)
        check(isinstance(text, str) and text == text.strip(), "not a stripped str")
        check(not quoted.search(text), "a quoted line survived")

    return run, ()


# Keys of the config file, for the structured half of the config target.
_TOP_KEYS = [
    "database", "log", "profile", "sending", "daemon", "metrics", "approval", "accounts",
    "defaults", "clients", "rules", "policies", "payment_notices", "policy", "bogus",
    "_env_file", "_cli_parse_args", "_env_prefix",
]  # fmt: skip
_FIELD_KEYS = [
    "url", "level", "format", "name", "phone", "signature", "templates_dir", "dry_run",
    "auto_send", "save_to_sent", "hourly_cap", "per_client_daily", "spread_minutes",
    "poll_minutes", "idle", "lease_seconds", "listen", "digest_to", "times", "days",
    "token_hours", "plus_addressing", "reply_alias", "authserv_id", "require_auth",
    "address", "aliases", "display_name", "colleague_domains", "imap", "smtp", "host",
    "port", "security", "username", "password", "password_command", "password_file",
    "token_command", "timeout", "folders", "fetch_chunk", "stage", "time_zone", "country",
    "locale", "send_window", "start", "end", "auto_reply_delay", "addresses", "domains",
    "contract", "kill_fee_after", "currency", "deposit_percent", "counterpart", "domain",
    "client", "subject", "steps", "after", "after_term", "anchor", "action", "template",
    "task", "mode", "firm", "deadline", "reminders", "senders", "subject_patterns",
    "prospect", "project", "payment", "ignore", "custom",
]  # fmt: skip
_STRINGS = [
    "", "x", "me@example.test", "imap.example.com", "localhost", "tls", "none", "UTC",
    "Europe/Rome", "America", "IT", "XX", "prospect", "payment", "5d", "3 business days",
    "0d", "99999999999d", "send", "task", "auto", "nudge", "08:30", "24:00", "mon", "(",
    "invoice \\d+", "kill_fee_after", "last_outgoing", "previous", "due_date", "call",
]  # fmt: skip


def _toml_str(text: str) -> str:
    escaped = "".join(
        f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c for c in text
    )
    return f'"{escaped}"'


def _toml_value(fdp: Any, depth: int) -> str:
    """One inline TOML value drawn from the input: mostly plausible, sometimes not."""
    kind: int = fdp.ConsumeIntInRange(0, 8 if depth < 4 else 4)
    if kind == 0:
        return _toml_str(str(fdp.PickValueInList(_STRINGS)))
    if kind == 1:
        return _toml_str(str(fdp.ConsumeUnicodeNoSurrogates(12)))
    if kind == 2:
        return str(fdp.ConsumeIntInRange(-(2**40), 2**40))
    if kind == 3:
        return str(fdp.PickValueInList(["true", "false", "1.5", "-0.0", "nan", "inf", "1e9"]))
    if kind == 4:
        return str(fdp.PickValueInList(["2024-01-01", "1979-05-27T07:32:00Z", "07:32:00"]))
    if kind in (5, 6):
        items = [_toml_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
        return "[" + ", ".join(items) + "]"
    return _toml_table(fdp, depth + 1, _FIELD_KEYS)


def _toml_table(fdp: Any, depth: int, keys: list[str]) -> str:
    picked = {str(fdp.PickValueInList(keys)) for _ in range(fdp.ConsumeIntInRange(0, 5))}
    return "{" + ", ".join(f"{k} = {_toml_value(fdp, depth)}" for k in sorted(picked)) + "}"


def structured_config(data: bytes) -> bytes:
    """A TOML document of the config's real keys with values drawn from ``data``."""
    import atheris

    fdp = atheris.FuzzedDataProvider(data)
    keys = {str(fdp.PickValueInList(_TOP_KEYS)) for _ in range(fdp.ConsumeIntInRange(0, 8))}
    return "".join(f"{k} = {_toml_value(fdp, 0)}\n" for k in sorted(keys)).encode("utf-8")


def load_config() -> tuple[Runner, tuple[type[BaseException], ...]]:
    from ghostwatch.config import Settings, parse_config
    from ghostwatch.errors import ConfigError

    for name in [n for n in os.environ if n.startswith("GHOSTWATCH_")]:
        del os.environ[name]
    # Inside the parent's work directory (removed after the run) when there is one.
    workdir = Path(tempfile.mkdtemp(prefix="gw-fuzz-config-", dir=os.environ.get(WORKDIR_ENV)))
    atexit.register(shutil.rmtree, workdir, True)  # replay; libFuzzer's exit skips atexit
    path = workdir / "config.toml"

    def run(data: bytes) -> None:
        # First byte: bit 0 makes the file 0644 (plaintext passwords must then be
        # refused), bit 1 reads the rest as choices for a structured document instead
        # of as the file itself.
        mode, raw = (data[0], data[1:]) if data else (0, b"")
        if mode & 2:
            raw = structured_config(raw)
        path.write_bytes(raw)
        path.chmod(0o644 if mode & 1 else 0o600)
        try:
            result = parse_config(raw, path)
        except ConfigError as exc:
            check(str(exc).startswith(str(path)), "ConfigError without the path")
            raise
        check(isinstance(result, Settings), "not Settings")
        if mode & 1:
            servers = [s for a in result.accounts for s in (a.imap, a.smtp) if s is not None]
            check(all(s.password is None for s in servers), "plaintext password in a 0644 file")

    return run, (ConfigError,)


LOADERS: dict[str, Callable[[], tuple[Runner, tuple[type[BaseException], ...]]]] = {
    "header": load_header,
    "threads": load_threads,
    "classify": load_classify,
    "commands": load_commands,
    "replytext": load_replytext,
    "config": load_config,
}


# --- seeds ------------------------------------------------------------------------------------


def _mbox_messages() -> list[bytes]:
    mbox = ROOT / "ghostwatch" / "samples" / "demo.mbox"
    if not mbox.is_file():
        return []
    chunks = re.split(rb"(?m)^From [^\n]*\n", mbox.read_bytes())
    return [c for c in chunks if c.strip()][:30]


_REPLY = (
    b"From: Owner <owner@example.test>\nSubject: Re: digest\nContent-Type: text/plain\n\n"
    b"send 1 3\nsnooze 2 until 10 dec\nedit 4\nNew text.\nend\nthanks\n\n"
    b"On Mon, 1 Jan 2024, Ghostwatch <owner@example.test> wrote:\n> 1. Acme\n> 2. Foo\n"
)
_BOUNCE = (
    b"From: MAILER-DAEMON@mx.example\nSubject: Undelivered Mail Returned to Sender\n"
    b"Return-Path: <>\nContent-Type: multipart/report; report-type=delivery-status; "
    b"boundary=b\n\n--b\nContent-Type: text/plain\n\nI'm sorry.\n<bob@client.example>: 550\n"
    b"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
    b"Final-Recipient: rfc822; bob@client.example\nAction: failed\nStatus: 5.1.1\n"
    b"--b\nContent-Type: text/rfc822-headers\n\nMessage-ID: <orig@me.example>\n--b--\n"
)


def seeds(target: str) -> list[bytes]:
    """A few valid inputs per target, so fuzzing starts inside the interesting code."""
    messages = _mbox_messages()
    headers = [m.split(b"\n\n", 1)[0] for m in messages]
    rng = random.Random(0)
    if target == "header":
        return [
            *headers,
            b"Message-ID: <a@b>\nReferences: <c@d> <a@b>\nSubject: =?utf-8?q?Caf=C3=A9?=\n",
        ]
    if target == "threads":
        return [rng.randbytes(n) for n in (16, 64, 256, 1024)]
    if target == "classify":
        return [bytes([i % 4]) + m for i, m in enumerate([*messages, *[_BOUNCE] * 4])]
    if target == "commands":
        return [
            b"\0\0\0send 1 3\nskip 2\n",
            b"\1\2\1snooze 2 until 10 dec\nrimanda 3 fino al 5 gennaio\nsnooze 4 3d\n",
            b"\1\0\0edit 1\nNew draft text.\nend\nstop 4\npaid 5\nhelp\nthanks\nMario\n",
            "\0\1\2- invia 1-3, #5 e 7\n\u2022 salta tutti\nfino al 3 marzo\n".encode(),
        ]
    if target == "replytext":
        html = b"\1<p>send 1</p><blockquote>On x wrote:<p>quoted</p></blockquote>"
        return [
            b"\0" + _REPLY,
            html,
            b"\2<div>skip 2<br>-- <br>sig</div>",
            *(b"\0" + m for m in messages[:10]),
        ]
    configs = [ROOT / "config.example.toml", ROOT / "ghostwatch" / "samples" / "demo.toml"]
    structured = [b"\2" + rng.randbytes(n) for n in (32, 128, 512)]
    return [b"\0" + p.read_bytes() for p in configs if p.is_file()] + [b"\0", *structured]


def _dict_line(token: str) -> str:
    out = []
    for byte in token.encode("utf-8"):
        ch = chr(byte)
        out.append(f"\\x{byte:02x}" if byte < 0x20 or byte > 0x7E or ch in '"\\' else ch)
    return '"' + "".join(out) + '"'


# --- the worker: runs inside libFuzzer --------------------------------------------------------


class Recorder:
    """Saves crashing inputs, once per distinct (exception type, innermost location)."""

    def __init__(self, target: str, stop_on_crash: bool) -> None:
        self.target = target
        self.stop = stop_on_crash
        self.seen: dict[str, int] = {}

    def record(self, data: bytes, kind: str, signature: str, detail: str) -> None:
        count = self.seen.get(signature, 0)
        self.seen[signature] = count + 1
        if count or len(self.seen) > MAX_SAVED:
            return
        CRASH_DIR.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1(data, usedforsecurity=False).hexdigest()[:12]
        stem = CRASH_DIR / f"{self.target}-{kind}-{digest}"
        stem.with_suffix(".bin").write_bytes(data)
        stem.with_suffix(".txt").write_text(
            f"target: {self.target}\nkind: {kind}\nsignature: {signature}\n"
            f"input ({len(data)} bytes): {data[:2000]!r}\n\n{detail}\n"
        )
        print(f"{MARK} CRASH {kind} {signature} -> {stem}.bin", file=sys.stderr, flush=True)


def _signature(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/ghostwatch/" in f.filename] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    return f"{type(exc).__name__}@{where}"


def worker(target: str, stop_on_crash: bool, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=INSTRUMENT[target]):
        run, allowed = LOADERS[target]()
    recorder = Recorder(target, stop_on_crash)

    def one_input(data: bytes) -> None:
        start = time.perf_counter()
        try:
            run(data)
        except allowed:
            pass
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: a parser must never exit the daemon
            kind = "invariant" if isinstance(exc, AssertionError) else "exception"
            recorder.record(data, kind, _signature(exc), traceback.format_exc())
            if stop_on_crash:
                raise
        elapsed = time.perf_counter() - start
        if elapsed > MAX_SECONDS:
            recorder.record(data, "slow", f"slow>{MAX_SECONDS:g}s", f"took {elapsed:.2f}s")

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def replay(target: str, files: list[Path]) -> int:
    """Run saved inputs (crash files, a corpus) once each, uninstrumented; 1 if any fails."""
    run, allowed = LOADERS[target]()
    failed = 0
    for file in files:
        start = time.perf_counter()
        try:
            run(file.read_bytes())
            outcome = "ok"
        except allowed as exc:
            outcome = f"ok ({type(exc).__name__}, documented)"
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            failed += 1
            outcome = f"CRASH {_signature(exc)}\n{traceback.format_exc()}"
        elapsed = time.perf_counter() - start
        if elapsed > MAX_SECONDS:
            failed += 1
            outcome += f" SLOW {elapsed:.2f}s"
        print(f"{file}: {outcome}")
    return 1 if failed else 0


# --- the parent: sets up, runs the worker, summarises -------------------------------------------

_STATUS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=TARGETS, required=True)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--corpus", type=Path, help="corpus directory to reuse (default: a fresh one)")
    ap.add_argument("--stop-on-crash", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="show all of libFuzzer's output")
    ap.add_argument(
        "--replay", type=Path, nargs="+", metavar="FILE", help="run saved inputs, do not fuzz"
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("libfuzzer", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.target, args.stop_on_crash, args.libfuzzer)
        return 0
    if args.replay:
        return replay(args.target, args.replay)
    try:
        import atheris  # noqa: F401  (only to fail early with a clear message)
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix=f"gw-fuzz-{args.target}-"))
    corpus = args.corpus or workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds(args.target)):
        (corpus / f"seed-{i:03d}").write_bytes(seed)
    CRASH_DIR.mkdir(parents=True, exist_ok=True)
    libfuzzer = [
        str(corpus),
        f"-max_total_time={args.seconds}",
        f"-timeout={HARD_TIMEOUT}",
        f"-max_len={MAX_LEN[args.target]}",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        "-print_pcs=0",
        f"-artifact_prefix={CRASH_DIR}/{args.target}-libfuzzer-",
    ]
    if DICTIONARY[args.target]:
        dict_file = workdir / "tokens.dict"
        dict_file.write_text("\n".join(_dict_line(t) for t in DICTIONARY[args.target]) + "\n")
        libfuzzer.append(f"-dict={dict_file}")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--target", args.target]
    cmd += ["--stop-on-crash"] if args.stop_on_crash else []
    cmd += ["--", *libfuzzer]

    print(f"fuzzing {args.target} for {args.seconds}s (corpus {corpus})", flush=True)
    status: tuple[int, int, int, int] | None = None  # execs, cov, ft, corpus units
    stats: dict[str, int] = {}
    crashes: list[str] = []
    errors: list[str] = []
    started = time.monotonic()
    env = {
        **os.environ,
        WORKDIR_ENV: str(workdir),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env
    ) as proc:
        assert proc.stdout is not None
        last_shown = 0.0
        for raw_line in proc.stdout:
            line = raw_line.rstrip("\n")
            progress = _STATUS.match(line)
            if progress:
                status = tuple(int(progress[i]) for i in (1, 3, 4, 5))  # type: ignore[assignment]
            elif stat := _STAT.match(line):
                stats[stat[1]] = int(stat[2])
            if line.startswith(f"{MARK} CRASH"):
                crashes.append(line.removeprefix(f"{MARK} CRASH "))
            if "==ERROR" in line or "Test unit written to" in line or "SUMMARY: libFuzzer" in line:
                errors.append(line)
            now = time.monotonic()
            show = args.verbose or line.startswith(MARK) or line in errors
            if not show and progress and now - last_shown >= 10:
                show, last_shown = True, now
            if show:
                print(line, flush=True)
        code = proc.wait()
    elapsed = time.monotonic() - started
    execs = stats.get("number_of_executed_units", status[0] if status else 0)
    cov, ft, units = (status[1], status[2], status[3]) if status else (0, 0, 0)
    for line in errors:
        print(line)
    print(
        f"SUMMARY target={args.target} seconds={elapsed:.0f} execs={execs} "
        f"exec_per_sec={stats.get('average_exec_per_sec', 0)} cov={cov} ft={ft} corpus={units} "
        f"crashes={len(crashes) + (1 if errors else 0)} exit={code}",
        flush=True,
    )
    for crash in crashes:
        print(f"  crash: {crash}")
    shutil.rmtree(workdir, ignore_errors=True)  # the corpus too, unless --corpus put it elsewhere
    return 0 if code == 0 and not crashes else 1


if __name__ == "__main__":
    sys.exit(main())
