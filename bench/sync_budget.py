"""What the first-sync target leaves per message, against what parsing one costs.

    python bench/sync_budget.py [--messages N] [--floor-us US]

The first-sync target is <= 1.5x the plain imaplib floor (``bench/sync_bench.py``).
Everything ghostwatch does beyond fetching (reading the header fields, classifying,
storing, threading, judging) must then fit in half the floor's time per message.
This script prints that budget next to the per-message cost of reading the same
header blocks three ways, on the same machine, in one process:

- splitting the block into lines (the least any reader of headers does);
- the standard library's ``BytesHeaderParser`` with its cheapest policy (compat32,
  no structured headers), reading 8 fields;
- ``ghostwatch.sync.row_from``: ghostwatch's header parsing, addresses, dates and
  classification, into the row it stores.

The header blocks are the benchmark mailbox's (``sync_bench.MailboxGenerator``, seed
42), cut to the fields ghostwatch fetches, as Dovecot returns them for
``BODY.PEEK[HEADER.FIELDS (...)]``. The floor per message comes from the latest
``bench/results/sync.json`` (written by ``sync_bench.py``), or ``--floor-us``.
Best of 5 passes each, ghostwatch's memo caches emptied before each. Measures, asserts nothing.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import json
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sync_bench

from ghostwatch.config import AccountSettings
from ghostwatch.imap import Fetched
from ghostwatch.message import FETCH_HEADERS
from ghostwatch.sync import row_from

RESULTS = Path(__file__).resolve().parent / "results" / "sync.json"
_FIELD_LINE = re.compile(rb"\r?\n(?![ \t])")  # a line break not followed by a fold


def header_blocks(count: int) -> list[bytes]:
    """The generator's messages cut to the fetched fields, in their original order."""
    wanted = {name.lower().encode() for name in FETCH_HEADERS}
    inbox = count * 5 // 6
    blocks = []
    for _folder, raw, _when, _flags in sync_bench.MailboxGenerator(inbox, count - inbox):
        head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
        keep = [
            line
            for line in _FIELD_LINE.split(head)
            if line.split(b":", 1)[0].strip().lower() in wanted
        ]
        blocks.append(b"\r\n".join(keep) + b"\r\n\r\n")
    return blocks


def clear_caches() -> None:
    """Empty ghostwatch's memo caches (addresses, classifier lookups), so that each pass
    reads the blocks as a first sync does."""
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("ghostwatch"):
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


def per_message_us(blocks: list[bytes], read: Callable[[bytes], object]) -> float:
    best = float("inf")
    for _ in range(5):
        clear_caches()
        started = time.perf_counter()
        for block in blocks:
            read(block)
        best = min(best, time.perf_counter() - started)
    return best / len(blocks) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=12000, help="header blocks (12000)")
    parser.add_argument("--floor-us", type=float, help="floor per message in microseconds")
    args = parser.parse_args()

    if args.floor_us is not None:
        floor_us, source = args.floor_us, "--floor-us"
    elif RESULTS.exists():
        figures = json.loads(RESULTS.read_text())["figures"]
        floor_us = figures["floor_s"] / figures["messages"] * 1e6
        source = f"{RESULTS.name}: {figures['floor_s']:.2f} s for {figures['messages']:,} messages"
    else:
        print(f"no {RESULTS}: run bench/sync_bench.py first, or pass --floor-us")
        return 2
    budget_us = floor_us * (sync_bench.TARGET_RATIO - 1)

    blocks = header_blocks(args.messages)
    account = AccountSettings.model_validate(
        {
            "name": "bench",
            "address": sync_bench.OWNER,
            "imap": {"host": "localhost", "username": "x", "password_env": "UNUSED"},
        }
    )
    when = datetime(2026, 11, 1, tzinfo=UTC)
    compat32 = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    names = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References")

    def stdlib(block: bytes) -> None:
        message = compat32.parsebytes(block)
        for name in names:
            message.get(name)

    def ghostwatch(block: bytes) -> None:
        row_from(Fetched(1, when, 1000, block, None, None), account, 1)

    size = sum(map(len, blocks)) / len(blocks)
    print(f"{len(blocks):,} header blocks of the benchmark mailbox, {size:.0f} B each on average")
    print(f"floor: {floor_us:.1f} us a message ({source})")
    print(
        f"budget at <= {sync_bench.TARGET_RATIO}x the floor: {budget_us:.1f} us a message for "
        "everything beyond the fetch (parse, classify, store, thread, judge)"
    )
    for label, read in (
        ("split into lines", lambda block: block.split(b"\r\n")),
        ("stdlib BytesHeaderParser (compat32), 8 fields read", stdlib),
        ("ghostwatch: parse + classify into the stored row", ghostwatch),
    ):
        us = per_message_us(blocks, read)
        print(f"  {label:<52} {us:7.1f} us  ({us / budget_us:5.2f}x the budget)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
