"""Full analysis (re-thread and judge every stored message) of a big mailbox: time and
peak memory, without a mail server.

    python bench/analyze_bench.py [--messages 1000000] [--keep DIR] [--gmail] [--new-reply]

Writes a deterministic (``random.Random(7)``) synthetic store straight into SQLite:
two years of conversations (replies carry In-Reply-To and References, some replies
lost their headers and join by subject, newsletters, auto-replies, messages without a
Message-ID), then runs ``analyze_account`` in a fresh child process and reports its
wall time and peak RSS (``os.wait4``), next to the peak RSS of a child that only opens
the store (the interpreter and libraries). Issue target (proof under load): a
1,000,000-message mailbox in bounded memory, <= 300 MB peak for its first sync, of
which this is the step whose memory grew with the mailbox. Measures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

NOW = datetime(2026, 11, 20, 10, tzinfo=UTC)
GMAIL_BASE = 1_500_000_000_000_000_000  # X-GM-THRIDs are 64-bit numbers
ME = "alice@studio.example"
CHILD = """
import json, sys, time
from datetime import datetime
from ghostwatch.analyze import analyze_account
from ghostwatch.config import AccountSettings
from ghostwatch.store import open_store
url, now, only_open, me = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
now = datetime.fromisoformat(now)
account = AccountSettings.model_validate({"name": "big", "address": me,
    "imap": {"host": "localhost", "username": "x", "password_env": "UNUSED"}})
sessions = open_store(url)
t = time.perf_counter()
result = None if only_open else analyze_account(sessions, account, now)
seconds = time.perf_counter() - t
# Older versions returned every verdict: count them, to compare with those.
threads = getattr(result, "threads", None)
awaiting = getattr(result, "awaiting", None)
if result is not None and threads is None:
    threads, awaiting = len(result), sum(1 for v in result.values() if v.awaiting)
print(json.dumps({"seconds": seconds, "threads": threads or 0, "awaiting": awaiting or 0}))
"""
# One reply arrives to the latest message you sent: stored as a sync stores it, then
# analysed as a sync analyses new mail. On a Gmail-shaped store the reply names nothing
# (no In-Reply-To, no References): only its X-GM-THRID ties it to the conversation.
REPLY_CHILD = """
import json, sys, time
from datetime import datetime, timedelta
from sqlalchemy import func, insert, select
from ghostwatch.analyze import analyze_changes
from ghostwatch.config import AccountSettings
from ghostwatch.store import MessageRow, open_store
url, now, me = sys.argv[1], datetime.fromisoformat(sys.argv[2]), sys.argv[3]
account = AccountSettings.model_validate({"name": "big", "address": me,
    "imap": {"host": "localhost", "username": "x", "password_env": "UNUSED"}})
sessions = open_store(url)
with sessions() as db:
    sent = db.scalars(select(MessageRow).where(MessageRow.direction == "out",
        MessageRow.message_id.is_not(None)).order_by(MessageRow.date.desc()).limit(1)).one()
    row = {c.name: getattr(sent, c.name) for c in MessageRow.__table__.columns
           if c.name not in ("id", "thread_id")}
    gmail = sent.gm_thrid is not None
    when = min(sent.date + timedelta(hours=1), now)
    n = db.scalar(select(func.count()).select_from(MessageRow))
    row.update(message_id=f"<reply{n}@c>", in_reply_to=None if gmail else sent.message_id,
               references="" if gmail else sent.message_id, subject="Re: " + sent.subject,
               from_addr=sent.to_addrs.split()[0], to_addrs=me, direction="in", kind="human",
               uid=db.scalar(select(func.max(MessageRow.uid))) + 1, date=when,
               internal_date=when)
    db.execute(insert(MessageRow.__table__), [row])
    db.commit()
t = time.perf_counter()
threads = analyze_changes(sessions, account, now)
print(json.dumps({"seconds": time.perf_counter() - t, "threads": threads, "gmail": gmail}))
"""


def build(db: Path, messages: int, *, gmail: bool = False) -> dict[str, int]:
    """The synthetic store; returns what it holds. ``gmail``: every message carries
    the X-GM-THRID of its conversation, as Gmail's do."""
    from sqlalchemy import insert

    from ghostwatch.store import Folder, MessageRow, open_store

    rng = random.Random(7)
    sessions = open_store(f"sqlite:///{db}")
    with sessions() as s:
        inbox = Folder(account="big", name="INBOX", role="inbox", uidvalidity=1)
        sent = Folder(account="big", name="Sent", role="sent", uidvalidity=1)
        s.add_all([inbox, sent])
        s.commit()
        folder_ids = {"in": inbox.id, "out": sent.id}
    people = [f"p{i}@c{i % 4000}.example" for i in range(20_000)]
    start = NOW - timedelta(days=730)
    stats = {"messages": 0, "conversations": 0, "orphan_replies": 0, "newsletters": 0}
    batch: list[dict[str, Any]] = []
    uid = {"in": 0, "out": 0}

    def add(row: dict[str, Any]) -> None:
        direction = row["direction"]
        uid[direction] += 1
        row.update(account="big", folder_id=folder_ids[direction], uid=uid[direction],
                   internal_date=row["date"])  # fmt: skip
        batch.append(row)
        stats["messages"] += 1
        if len(batch) >= 20_000:
            flush()

    def flush() -> None:
        with sessions() as s:
            s.connection().execute(insert(MessageRow.__table__), batch)  # type: ignore[arg-type]
            s.commit()
        batch.clear()

    n = 0
    while stats["messages"] < messages:
        n += 1
        when = start + timedelta(seconds=rng.randrange(730 * 86400))
        if rng.random() < 0.15:  # a newsletter
            add({"message_id": f"<nl{n}@news.example>", "in_reply_to": None, "references": "",
                 "subject": f"Weekly digest {n % 97}", "from_addr": "news@news.example",
                 "to_addrs": ME, "date": when, "direction": "in", "kind": "bulk",
                 "gm_thrid": GMAIL_BASE + n if gmail else None})  # fmt: skip
            stats["newsletters"] += 1
            continue
        stats["conversations"] += 1
        who = rng.choice(people)
        subject = f"Project {rng.randrange(10**6)} {rng.choice(['offer', 'draft', 'plan'])}"
        size = min(1 + int(rng.expovariate(0.5)), 40)
        refs: list[str] = []
        outgoing = rng.random() < 0.6
        for k in range(size):
            if stats["messages"] >= messages:
                break
            mid = None if rng.random() < 0.002 else f"<m{n}.{k}@{'studio' if outgoing else 'c'}>"
            orphan = k > 0 and rng.random() < 0.05
            auto = not outgoing and k > 0 and rng.random() < 0.03
            add({"message_id": mid,
                 "in_reply_to": None if orphan or not refs else refs[-1],
                 "references": "" if orphan else " ".join(refs[-10:]),
                 "subject": subject if k == 0 else f"Re: {subject}",
                 "from_addr": ME if outgoing else who, "to_addrs": who if outgoing else ME,
                 "date": when, "direction": "out" if outgoing else "in",
                 "kind": "auto_reply" if auto else "human",
                 "gm_thrid": GMAIL_BASE + n if gmail else None})  # fmt: skip
            stats["orphan_replies"] += orphan
            if mid:
                refs.append(mid)
            when += timedelta(hours=rng.randint(1, 24 * 9))
            outgoing = not outgoing
    if batch:
        flush()
    return stats


def child(url: str, only_open: bool, *, reply: bool = False) -> dict[str, Any]:
    # -P: the working directory does not go first on sys.path, so PYTHONPATH decides
    # which ghostwatch runs (to compare two checkouts on one store).
    t = time.perf_counter()
    args = (
        [REPLY_CHILD, url, NOW.isoformat(), ME]
        if reply
        else [CHILD, url, NOW.isoformat(), "1" if only_open else "0", ME]
    )
    proc = subprocess.Popen([sys.executable, "-P", "-c", *args], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"analysis child failed with status {status}")
    result = json.loads(out.decode().strip().splitlines()[-1])  # logs may come first
    result["wall_s"] = time.perf_counter() - t
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build the store here and keep it")
    parser.add_argument("--gmail", action="store_true", help="give each conversation an X-GM-THRID")
    parser.add_argument(
        "--new-reply",
        action="store_true",
        help="then store one reply and time the analysis of what it affects",
    )
    args = parser.parse_args(argv)
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="gw-analyze-"))
    tmp.mkdir(parents=True, exist_ok=True)
    db = tmp / "big.db"
    try:
        if db.exists():
            print(f"using the store in {db}")
            stats: dict[str, int] = {}
        else:
            t = time.perf_counter()
            stats = build(db, args.messages, gmail=args.gmail)
            print(f"built {stats} in {time.perf_counter() - t:.1f} s")
        url = f"sqlite:///{db}"
        base = child(url, only_open=True)
        run = child(url, only_open=False)
        print(f"interpreter, libraries and store open: {base['peak_rss_mb']:.0f} MB peak RSS")
        print(
            f"full analysis: {run['seconds']:.1f} s, {run['threads']} threads "
            f"({run['awaiting']} awaiting), peak RSS {run['peak_rss_mb']:.0f} MB "
            f"(+{run['peak_rss_mb'] - base['peak_rss_mb']:.0f} MB over the open store)"
        )
        replied = None
        if args.new_reply:
            replied = child(url, only_open=False, reply=True)
            print(
                f"then one new reply to your latest message: analysed in "
                f"{replied['seconds'] * 1000:.0f} ms, {replied['threads']} thread(s) judged"
                + (" (it names nothing; only its X-GM-THRID ties it)" if replied["gmail"] else "")
            )
        out = Path(__file__).parent / "results" / "analyze.json"
        out.parent.mkdir(exist_ok=True)
        report = {"messages": args.messages, "gmail": args.gmail, "stats": stats, "base": base,
                  "analysis": run, "new_reply": replied}  # fmt: skip
        out.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
