"""Many accounts in one `ghostwatch run`: memory, idle CPU and reply latency at scale.

Run (as root, like the integration tests; Dovecot and Postfix drop privileges)::

    /work/venv/bin/python bench/scale_accounts.py [--accounts 200] [--replies 50] [--keep]

What it does, in order:

1. Starts a MailStack (tests/mailstack.py; see ``ScaleStack`` for the one Dovecot
   setting changed) in a ``tempfile.mkdtemp()`` directory and creates N owner accounts
   (``owner000@example.test`` ...) plus one ``baseline`` owner. Each mailbox is
   written straight into Maildir (``MailStack.write_maildir``) from
   ``tests/mailbuilder.make_mail``: three messages in Sent (a quote to
   ``client-ownerNNN@client.test`` ten days before ``NOW``, still awaiting a reply; an
   internal note to a colleague; an answer to a partner who then said thanks) and
   three in INBOX (the partner's question and thanks, a newsletter).
2. Writes one config per run: the accounts (IMAP security "none" on loopback,
   ``password_command = "echo PW"``, SMTP to the stack's Postfix), ``[daemon]
   poll_minutes = 600`` (so only IDLE starts passes once the first wave is done),
   ``[sending] spread_minutes = 0``, ``[log] level = "info"``, ``format = "json"`` and
   a fresh SQLite file. Everything else is default: the first pass of each account
   queues a nudge for approval and sends the 08:30 digest (``NOW`` is a Friday
   10:00 UTC), which comes back through IDLE and runs a second pass.
3. BASELINE: ``ghostwatch run`` with the one ``baseline`` account, measured exactly as
   the full run below (steps 4-5, then SIGTERM).
4. FULL RUN: ``python -m ghostwatch.cli --config CFG --now NOW run`` with N accounts;
   waits for "ready" and N "idle_started" events (time to ready is from process
   start to the "ready" line), then until the log has been quiet for ``--settle``
   seconds.
5. IDLE: samples the daemon for ``--idle-seconds`` (30): VmRSS and Threads from
   /proc/PID/status once a second, CPU time (utime + stime of all threads, from
   /proc/PID/stat) over the window. Memory per account = (RSS_N - RSS_1) / N with
   the medians of the samples.
6. REPLY LATENCY: for M (50) accounts chosen at random (``--seed``), one at a time,
   ``--gap`` (0.3 s) apart: deliver through Postfix the client's reply (In-Reply-To
   the awaiting quote), then time, from deliver() returning, (a) the daemon's
   ``pass_started`` with why "IDLE: INBOX changed" for that account, (b) the quote's
   thread leaving state ``awaiting_reply`` in the SQLite ``threads`` table, and
   (c) ``account_synced`` with new >= 1. A reply is noticed when both (a) and (b)
   happened; p50/p90/p99/max of that. (``pass_started`` is logged when a pass is
   queued, not when a worker starts it; (b) is the figure that counts.)
7. SIGTERM: exit status and the time to exit.
8. POLL WAVE (``--no-poll-wave`` skips it): the same N accounts and the store of
   step 4, ``poll_minutes = --wave-poll-minutes`` (1); as the first scheduled poll
   wave starts, one more client reply, to the account the wave reaches last; times
   the wave (first "poll" pass_started to its last account_synced), counts Dovecot's
   logins during it, and times the reply until its thread is judged answered.
9. Prints the table (figure, target, measured, ratio) and the details, stops the
   stack; ``--json PATH`` also writes everything measured.

Exit status is 0 even when a target is missed: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from mailbuilder import make_mail  # noqa: E402
from mailstack import MailStack  # noqa: E402

#: The daemon's clock starts here (``--now``); the mailboxes are dated before it.
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
PASSWORD = "bench-pw"
DOMAIN = "example.test"
CLIENT_DOMAIN = "client.test"
QUOTE_SUBJECT = "Quote for the new website"

TARGET_MB_PER_ACCOUNT = 5.0
TARGET_REPLY_P99_S = 5.0

CLK_TCK = os.sysconf("SC_CLK_TCK")


# =========================================================================================
# The mail stack
# =========================================================================================


class ScaleStack(MailStack):
    """MailStack whose Dovecot keeps hundreds of IDLE sessions instantly notified.

    Dovecot learns of new mail in an IDLE session's mailbox through inotify, one
    inotify instance per ``imap`` process, and tests/mailstack.py keeps Dovecot
    2.3.19's default of one process per connection (``service imap { service_count
    = 1 }``). Every mail process runs as uid 65534, and the kernel allows one uid
    ``fs.inotify.max_user_instances`` instances (128 by default, shared with any
    other stack on the machine). Past that Dovecot logs "Inotify instance limit for
    user 65534 (UID nobody) exceeded, disabling" and that session only rechecks the
    mailbox every ``mailbox_idle_check_interval`` (30 s): with 200 accounts, 72
    sessions lost inotify and 17 of 50 replies were seen 17.7-29.8 s late. The
    override lets one ``imap`` process serve up to ``CLIENTS_PER_IMAP_PROCESS``
    sessions (all of the same uid, which Dovecot requires for that), so 200 sessions
    need about 9 instances (and at most 2,500 sessions fit). Dovecot's process
    limits (``imap`` 1024, ``imap-login`` 100) did not get in the way at 200
    accounts. ``--stock-dovecot`` measures without the override.
    """

    CLIENTS_PER_IMAP_PROCESS = 25

    def __init__(self, root: Path, *, stock: bool = False) -> None:
        super().__init__(root)
        self.stock = stock

    def _write_dovecot_conf(self) -> None:
        super()._write_dovecot_conf()
        if self.stock:
            return
        extra = f"""
# bench/scale_accounts.py: several IDLE sessions per imap process, so that each keeps
# its inotify watch (one instance per process; uid 65534 may have only 128).
# 100 processes x 25 sessions; a lower process_limit also keeps Dovecot from warning
# that auth's client_limit is below the theoretical maximum load.
service imap {{
  service_count = 0
  client_limit = {self.CLIENTS_PER_IMAP_PROCESS}
  process_limit = 100
}}
"""
        with self.dovecot_conf.open("a") as conf:
            conf.write(extra)

    def imap_processes(self) -> int:
        """Dovecot's live ``imap`` processes (each serves one or more sessions)."""
        count = 0
        for pid in self.processes():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "imap":
                    count += 1
        return count

    def logins(self) -> int:
        """IMAP logins Dovecot has logged so far."""
        try:
            text = self.dovecot_log.read_text(errors="replace")
        except FileNotFoundError:
            return 0
        return text.count("imap-login: Info: Login:")

    def log_problems(self) -> list[str]:
        """Lines of Dovecot's log that name a limit, a warning or an error."""
        try:
            text = self.dovecot_log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        pattern = re.compile(r"limit|reached|Warning|Error|Fatal|Panic", re.IGNORECASE)
        return [line for line in text.splitlines() if pattern.search(line)]


@dataclass(frozen=True)
class Owner:
    """One mailbox owner (a configured account) and the thread that awaits a reply."""

    name: str
    address: str
    client: str
    quote_id: str


def make_owner(name: str) -> Owner:
    return Owner(
        name=name,
        address=f"{name}@{DOMAIN}",
        client=f"client-{name}@{CLIENT_DOMAIN}",
        quote_id=f"<quote-{name}@{DOMAIN}>",
    )


def fill_mailbox(stack: MailStack, owner: Owner) -> None:
    """Six messages: three in Sent (one awaiting the client's reply), three in INBOX."""
    me, partner = owner.address, f"partner-{owner.name}@agency.test"
    colleague = f"colleague-{owner.name}@{DOMAIN}"

    def at(days: float) -> datetime:
        return NOW - timedelta(days=days)

    question, thanks = f"<q-{owner.name}@agency.test>", f"<t-{owner.name}@agency.test>"
    answer, note = f"<a-{owner.name}@{DOMAIN}>", f"<n-{owner.name}@{DOMAIN}>"
    sent = [
        (make_mail(frm=me, to=owner.client, subject=QUOTE_SUBJECT, msgid=owner.quote_id,
                   date=at(10), body="Hello,\n\nhere is the quote we discussed.\n"), at(10)),
        (make_mail(frm=me, to=colleague, subject="Notes from Monday", msgid=note,
                   date=at(6), body="Notes attached.\n"), at(6)),
        (make_mail(frm=me, to=partner, subject="Re: Invoice 2026-11", msgid=answer, date=at(3),
                   in_reply_to=question, references=[question], body="Paid yesterday.\n"), at(3)),
    ]  # fmt: skip
    inbox = [
        (make_mail(frm=partner, to=me, subject="Invoice 2026-11", msgid=question, date=at(4),
                   body="Has the invoice been paid?\n"), at(4)),
        (make_mail(frm=partner, to=me, subject="Re: Invoice 2026-11", msgid=thanks,
                   date=at(2), in_reply_to=answer, references=[question, answer],
                   body="Thanks, received.\n"), at(2)),
        (make_mail(frm="news@shop.test", to=me, subject="Our November offers",
                   msgid=f"<news-{owner.name}@shop.test>", date=at(1),
                   headers={"List-Id": "<offers.shop.test>",
                            "List-Unsubscribe": "<https://shop.test/u>"}), at(1)),
    ]  # fmt: skip
    stack.write_maildir(owner.address, "Sent", sent)
    stack.write_maildir(owner.address, "INBOX", inbox)


def client_reply(owner: Owner, when: datetime) -> bytes:
    return make_mail(
        frm=owner.client,
        to=owner.address,
        subject="Re: " + QUOTE_SUBJECT,
        msgid=f"<reply-{owner.name}-{time.monotonic_ns()}@{CLIENT_DOMAIN}>",
        date=when,
        in_reply_to=owner.quote_id,
        references=[owner.quote_id],
        body="Looks good, let's go ahead.\n",
    )


def write_config(
    stack: MailStack,
    owners: Sequence[Owner],
    workdir: Path,
    *,
    poll_minutes: float = 600,
    db: Path | None = None,
) -> tuple[Path, Path]:
    """The config file and the SQLite file it names (a new one unless ``db`` is given)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = db or workdir / "gw.db"
    parts = [
        f"""\
[database]
url = "sqlite:///{db}"

[log]
level = "info"
format = "json"

[daemon]
poll_minutes = {poll_minutes:g}

[sending]
spread_minutes = 0
"""
    ]
    for owner in owners:
        parts.append(f"""
[[accounts]]
name = "{owner.name}"
address = "{owner.address}"
[accounts.imap]
host = "{stack.host}"
port = {stack.imap_port}
security = "none"
username = "{owner.address}"
password_command = "echo {PASSWORD}"
[accounts.smtp]
host = "{stack.host}"
port = {stack.smtp_port}
security = "none"
username = "unused"
password_command = "echo unused"
timeout = 10
""")
    config = workdir / "config.toml"
    config.write_text("".join(parts))
    return config, db


# =========================================================================================
# The daemon under test
# =========================================================================================


@dataclass
class Event:
    at: float  # time.monotonic() when the line arrived
    data: dict[str, Any]


class DaemonProcess:
    """`ghostwatch run` as a subprocess; its JSON log lines timed as they arrive."""

    def __init__(self, config: Path, log_path: Path, cwd: Path, now: datetime = NOW) -> None:
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.now = now
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ghostwatch.cli", "--config", str(config),
             "--now", now.isoformat(), "run"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, cwd=cwd,
        )  # fmt: skip
        self.pid = self.proc.pid
        self.events: list[Event] = []
        self.other_lines = 0
        self.last_line_at = self.started
        self._lock = threading.Lock()
        self._log = log_path.open("w")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            now = time.monotonic()
            self._log.write(line)
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                data = None
            with self._lock:
                self.last_line_at = now
                if isinstance(data, dict):
                    self.events.append(Event(now, data))
                else:
                    self.other_lines += 1
        self._log.close()

    def mark(self) -> int:
        with self._lock:
            return len(self.events)

    def lines(self) -> int:
        """Lines read so far, JSON or not."""
        with self._lock:
            return len(self.events) + self.other_lines

    def quiet_for(self) -> float:
        """Seconds since the last log line."""
        with self._lock:
            return time.monotonic() - self.last_line_at

    def snapshot(self, start: int = 0) -> list[Event]:
        with self._lock:
            return self.events[start:]

    def find(self, event: str, start: int = 0, **match: Any) -> Event | None:
        with self._lock:
            for e in self.events[start:]:
                if e.data.get("event") == event and all(
                    e.data.get(k) == v for k, v in match.items()
                ):
                    return e
        return None

    def find_where(self, start: int, predicate: Callable[[dict[str, Any]], bool]) -> Event | None:
        with self._lock:
            return next((e for e in self.events[start:] if predicate(e.data)), None)

    def count(self, event: str, start: int = 0, **match: Any) -> int:
        with self._lock:
            return sum(
                1
                for e in self.events[start:]
                if e.data.get("event") == event
                and all(e.data.get(k) == v for k, v in match.items())
            )

    def levels(self) -> Counter[str]:
        """Warning/error events by name, e.g. {"idle_connection_lost": 3}."""
        with self._lock:
            return Counter(
                str(e.data.get("event"))
                for e in self.events
                if e.data.get("level") in ("warning", "error", "critical")
            )

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.proc.poll() is not None:
                return predicate()
            time.sleep(0.02)
        return predicate()

    def stop(self, timeout: float = 60) -> tuple[int | None, float]:
        """SIGTERM; (exit status or None if it had to be killed, seconds to exit)."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            code = None
        elapsed = time.monotonic() - started
        self._reader.join(timeout=5)
        return code, elapsed

    def tail(self, lines: int = 30) -> str:
        with self._lock:
            return "\n".join(json.dumps(e.data) for e in self.events[-lines:])


# /proc readers --------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def kib(value: str) -> int:
    return int(value.split(maxsplit=1)[0])


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` (children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def socket_fds(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd).startswith("socket:"):
                count += 1
    return count


# =========================================================================================
# One run
# =========================================================================================


@dataclass
class Reply:
    account: str
    pass_started_s: float | None
    answered_s: float | None
    synced_s: float | None
    why: str | None

    @property
    def noticed_s(self) -> float | None:
        if self.pass_started_s is None or self.answered_s is None:
            return None
        return max(self.pass_started_s, self.answered_s)


@dataclass
class RunResult:
    accounts: int
    ready_s: float | None = None
    all_idle_s: float | None = None
    settled_s: float | None = None
    passes_before_idle: int = 0
    rss_samples_kib: list[int] = field(default_factory=list)
    threads_samples: list[int] = field(default_factory=list)
    idle_window_s: float = 0.0
    idle_cpu_s: float = 0.0
    idle_log_lines: int = 0
    peak_rss_kib: int = 0
    daemon_sockets: int = 0
    dovecot_imap_processes: int = 0
    replies: list[Reply] = field(default_factory=list)
    exit_code: int | None = None
    shutdown_s: float = 0.0
    warnings: dict[str, int] = field(default_factory=dict)
    db: str = ""
    error: str = ""

    @property
    def rss_kib(self) -> float:
        return statistics.median(self.rss_samples_kib) if self.rss_samples_kib else 0.0

    @property
    def threads(self) -> int:
        return max(self.threads_samples, default=0)

    @property
    def idle_cpu_pct(self) -> float:
        return 100 * self.idle_cpu_s / self.idle_window_s if self.idle_window_s else 0.0


class ThreadStates:
    """The state of an account's quote thread, read from the SQLite store (read-only)."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        self.conn.isolation_level = None  # autocommit: every query sees the latest commit

    def state(self, owner: Owner) -> str | None:
        row = self.conn.execute(
            "SELECT t.state FROM threads t JOIN messages m"
            " ON m.account = t.account AND m.thread_id = t.thread_id"
            " WHERE m.account = ? AND m.message_id = ? LIMIT 1",
            (owner.name, owner.quote_id),
        ).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self.conn.close()


def run_daemon(
    stack: ScaleStack,
    owners: Sequence[Owner],
    workdir: Path,
    args: argparse.Namespace,
    *,
    replies: Sequence[Owner] = (),
) -> RunResult:
    """Start `ghostwatch run` for ``owners``, measure it idle, time ``replies``, stop it."""
    n = len(owners)
    res = RunResult(accounts=n)
    config, db = write_config(stack, owners, workdir)
    res.db = str(db)
    print(f"[{n} account(s)] starting ghostwatch run", flush=True)
    daemon = DaemonProcess(config, workdir / "daemon.log", workdir)
    try:
        startup_timeout = 120 + 2.0 * n
        if not daemon.wait(lambda: daemon.find("ready") is not None, startup_timeout):
            res.error = f"no 'ready' within {startup_timeout:.0f} s"
            return res
        ready = daemon.find("ready")
        assert ready is not None
        res.ready_s = ready.at - daemon.started
        print(f"  ready after {res.ready_s:.1f} s", flush=True)
        if not daemon.wait(lambda: daemon.count("idle_started") >= n, startup_timeout):
            res.error = f"only {daemon.count('idle_started')} of {n} idle_started"
            return res
        res.all_idle_s = (
            max(e.at for e in daemon.snapshot() if e.data.get("event") == "idle_started")
            - daemon.started
        )
        print(f"  {n} IDLE watchers started after {res.all_idle_s:.1f} s", flush=True)
        # Settled: the log has been quiet for --settle seconds (digests sent by the
        # first pass come back through IDLE and start one more pass per account).
        settle_deadline = time.monotonic() + 300
        while time.monotonic() < settle_deadline and daemon.quiet_for() < args.settle:
            time.sleep(0.2)
        res.settled_s = time.monotonic() - daemon.started
        res.passes_before_idle = daemon.count("pass_started")
        print(
            f"  settled after {res.settled_s:.1f} s ({res.passes_before_idle} passes); "
            f"sampling {args.idle_seconds:.0f} s idle",
            flush=True,
        )

        # -- idle ----------------------------------------------------------------------
        mark = daemon.mark()
        lines_before = daemon.lines()
        t0, cpu0 = time.monotonic(), cpu_seconds(daemon.pid)
        end = t0 + args.idle_seconds
        while True:
            status = proc_status(daemon.pid)
            res.rss_samples_kib.append(kib(status["VmRSS"]))
            res.threads_samples.append(int(status["Threads"]))
            if time.monotonic() >= end:
                break
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        t1, cpu1 = time.monotonic(), cpu_seconds(daemon.pid)
        res.idle_window_s, res.idle_cpu_s = t1 - t0, cpu1 - cpu0
        res.idle_log_lines = daemon.lines() - lines_before
        res.peak_rss_kib = kib(proc_status(daemon.pid)["VmHWM"])
        res.daemon_sockets = socket_fds(daemon.pid)
        res.dovecot_imap_processes = stack.imap_processes()
        if daemon.count("pass_started", mark):
            print(f"  note: {daemon.count('pass_started', mark)} passes ran in the idle window")
        print(
            f"  idle: RSS {res.rss_kib / 1024:.1f} MiB, {res.threads} threads, "
            f"CPU {res.idle_cpu_pct:.2f} % of a core, {res.daemon_sockets} sockets, "
            f"{res.dovecot_imap_processes} Dovecot imap processes",
            flush=True,
        )

        # -- reply latency -------------------------------------------------------------
        if replies:
            res.replies = time_replies(stack, daemon, db, replies, args)
    finally:
        res.warnings = dict(daemon.levels())
        if daemon.proc.poll() is None:
            res.exit_code, res.shutdown_s = daemon.stop()
            print(f"  SIGTERM: exit status {res.exit_code}, {res.shutdown_s:.2f} s", flush=True)
        else:
            res.exit_code = daemon.proc.returncode
            res.error = res.error or f"the daemon exited early ({res.exit_code})"
        if res.error:
            print(f"  ERROR: {res.error}\n{daemon.tail()}", flush=True)
    return res


def time_replies(
    stack: MailStack,
    daemon: DaemonProcess,
    db: Path,
    owners: Sequence[Owner],
    args: argparse.Namespace,
) -> list[Reply]:
    states = ThreadStates(db)
    out: list[Reply] = []
    try:
        before = Counter(states.state(o) for o in owners)
        print(f"  reply latency over {len(owners)} accounts; thread states now: {dict(before)}")
        for i, owner in enumerate(owners, 1):
            raw = client_reply(owner, daemon_clock(daemon))
            mark = daemon.mark()
            refused = stack.deliver(owner.client, [owner.address], raw)
            sent = time.monotonic()
            if refused:
                raise RuntimeError(f"Postfix refused {owner.address}: {refused}")
            answered_at: float | None = None

            def synced_new(data: dict[str, Any], name: str = owner.name) -> bool:
                return (
                    data.get("event") == "account_synced"
                    and data.get("account") == name
                    and int(data.get("new") or 0) >= 1
                )

            deadline = sent + args.reply_timeout
            while time.monotonic() < deadline:
                if answered_at is None and states.state(owner) not in (None, "awaiting_reply"):
                    answered_at = time.monotonic()
                if (
                    answered_at is not None
                    and daemon.find("pass_started", mark, account=owner.name) is not None
                    and daemon.find_where(mark, synced_new) is not None
                ):
                    break
                time.sleep(0.01)
            started = daemon.find("pass_started", mark, account=owner.name)
            idle = daemon.find("pass_started", mark, account=owner.name, why="IDLE: INBOX changed")
            synced = daemon.find_where(mark, synced_new)
            reply = Reply(
                account=owner.name,
                pass_started_s=None if idle is None else idle.at - sent,
                answered_s=None if answered_at is None else answered_at - sent,
                synced_s=None if synced is None else synced.at - sent,
                why=None if started is None else str(started.data.get("why")),
            )
            out.append(reply)
            shown = "MISSED" if reply.noticed_s is None else f"{reply.noticed_s:.3f} s"
            print(
                f"    {i:3d}/{len(owners)} {owner.name}: noticed {shown} "
                f"(pass_started {_fmt(reply.pass_started_s)}, answered "
                f"{_fmt(reply.answered_s)}, account_synced {_fmt(reply.synced_s)})",
                flush=True,
            )
            time.sleep(args.gap)
    finally:
        states.close()
    return out


def daemon_clock(daemon: DaemonProcess) -> datetime:
    """The daemon's clock (``--now``, running on) a few seconds ago: a reply's Date."""
    return daemon.now + timedelta(seconds=time.time() - daemon.started_wall - 5)


@dataclass
class WaveResult:
    accounts: int
    poll_minutes: float
    target: str
    startup_s: float | None = None  # process start to "ready" (a no-change wave)
    wave_s: float | None = None  # first "poll" pass_started to the N-th account_synced
    passes: int = 0
    reply_answered_s: float | None = None
    logins: int = 0  # IMAP logins Dovecot logged during the wave
    exit_code: int | None = None
    shutdown_s: float = 0.0
    error: str = ""


def poll_wave(
    stack: ScaleStack,
    owners: Sequence[Owner],
    db: Path,
    workdir: Path,
    *,
    target: Owner,
    args: argparse.Namespace,
) -> WaveResult:
    """A reply that arrives just as a scheduled poll wave starts, to the account the
    wave reaches last. The store of the full run is reused (every pass is a no-change
    one) with ``poll_minutes = --wave-poll-minutes``; the clock starts an hour later
    than the full run's, so nothing it did is in the future."""
    n = len(owners)
    res = WaveResult(accounts=n, poll_minutes=args.wave_poll_minutes, target=target.name)
    config, _ = write_config(stack, owners, workdir, poll_minutes=args.wave_poll_minutes, db=db)
    print(f"[{n} accounts, poll_minutes = {args.wave_poll_minutes:g}] poll wave", flush=True)
    daemon = DaemonProcess(config, workdir / "daemon.log", workdir, now=NOW + timedelta(hours=1))
    states = ThreadStates(db)
    try:
        timeout = 120 + 2.0 * n
        if not daemon.wait(
            lambda: daemon.find("ready") is not None and daemon.count("idle_started") >= n,
            timeout,
        ):
            res.error = f"not ready with {n} IDLE watchers within {timeout:.0f} s"
            return res
        ready = daemon.find("ready")
        assert ready is not None
        res.startup_s = ready.at - daemon.started
        mark = daemon.mark()
        print(f"  ready after {res.startup_s:.1f} s; waiting for the next poll", flush=True)
        timeout = args.wave_poll_minutes * 60 + 60
        if not daemon.wait(lambda: daemon.find("pass_started", mark, why="poll") is not None,
                           timeout):  # fmt: skip
            res.error = f"no scheduled poll within {timeout:.0f} s"
            return res
        first = daemon.find("pass_started", mark, why="poll")
        assert first is not None
        logins_before = stack.logins()
        refused = stack.deliver(target.client, [target.address],
                                client_reply(target, daemon_clock(daemon)))  # fmt: skip
        sent = time.monotonic()
        if refused:
            raise RuntimeError(f"Postfix refused {target.address}: {refused}")
        # Until the reply is judged and the log has been quiet for 2 s: the wave is over.
        deadline = sent + 300
        while time.monotonic() < deadline:
            if res.reply_answered_s is None and states.state(target) not in (
                None,
                "awaiting_reply",
            ):
                res.reply_answered_s = time.monotonic() - sent
            if res.reply_answered_s is not None and daemon.quiet_for() >= 2.0:
                break
            time.sleep(0.01)
        # The wave ends with the last account_synced before any pass started for another
        # reason (the reply's IDLE news runs one more pass for the target afterwards).
        wave_end = first.at
        for e in daemon.snapshot(mark):
            if e.data.get("event") == "pass_started" and e.data.get("why") != "poll":
                break
            if e.data.get("event") == "account_synced":
                wave_end = e.at
        res.wave_s = wave_end - first.at
        res.passes = daemon.count("pass_started", mark, why="poll")
        res.logins = stack.logins() - logins_before
        print(
            f"  wave of {n} no-change passes took {_fmt(res.wave_s)}; the reply to "
            f"{target.name} (last in the wave) was judged in {_fmt(res.reply_answered_s)}",
            flush=True,
        )
    finally:
        states.close()
        if daemon.proc.poll() is None:
            res.exit_code, res.shutdown_s = daemon.stop()
        else:
            res.exit_code = daemon.proc.returncode
            res.error = res.error or f"the daemon exited early ({res.exit_code})"
        if res.error:
            print(f"  ERROR: {res.error}\n{daemon.tail()}", flush=True)
    return res


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


# =========================================================================================
# Report
# =========================================================================================


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99 (linear interpolation between closest ranks) and max."""
    if not values:
        return {}
    ordered = sorted(values)
    if len(ordered) == 1:
        return {"p50": ordered[0], "p90": ordered[0], "p99": ordered[0], "max": ordered[0]}
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "max": ordered[-1]}


def table(rows: Sequence[tuple[str, str, str, str]]) -> str:
    head = ("figure", "target", "measured", "ratio")
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def report(
    base: RunResult, full: RunResult, wave: WaveResult | None, args: argparse.Namespace
) -> dict[str, Any]:
    n = full.accounts
    per_account_mib = (full.rss_kib - base.rss_kib) / n / 1024
    noticed = [r.noticed_s for r in full.replies if r.noticed_s is not None]
    missed = len(full.replies) - len(noticed)
    lat = percentiles(noticed)
    p99 = lat.get("p99")
    if missed:  # a missed reply is slower than any noticed one: p99 is not known
        p99 = None
    rows = [
        (
            "memory per idle account",
            f"<= {TARGET_MB_PER_ACCOUNT:g} MB",
            f"{per_account_mib:.3f} MiB",
            f"{per_account_mib / TARGET_MB_PER_ACCOUNT:.3f}x",
        ),
        (
            "reply noticed p99",
            f"<= {TARGET_REPLY_P99_S:g} s",
            "-" if p99 is None else f"{p99:.3f} s" + (f" ({missed} missed)" if missed else ""),
            "-" if p99 is None else f"{p99 / TARGET_REPLY_P99_S:.3f}x",
        ),
        ("idle CPU %", "-", f"{full.idle_cpu_pct:.2f} % of one core", "-"),
        ("time to ready", "-", "-" if full.ready_s is None else f"{full.ready_s:.1f} s", "-"),
        ("threads", "-", str(full.threads), "-"),
    ]
    print()
    print(f"ghostwatch run with {n} accounts ({platform.node()}, {os.cpu_count()} CPUs)")
    print(table(rows))
    print()
    print("details:")
    for label, r in (("baseline (1 account)", base), (f"{n} accounts", full)):
        print(
            f"  {label}: RSS median {r.rss_kib / 1024:.1f} MiB (peak VmHWM "
            f"{r.peak_rss_kib / 1024:.1f} MiB), {r.threads} threads, idle CPU "
            f"{r.idle_cpu_s:.2f} s in {r.idle_window_s:.1f} s ({r.idle_cpu_pct:.2f} %), "
            f"{r.idle_log_lines} log lines while idle"
        )
        print(
            f"    ready {_fmt(r.ready_s)}, all IDLE watchers {_fmt(r.all_idle_s)}, settled "
            f"{_fmt(r.settled_s)} ({r.passes_before_idle} passes), {r.daemon_sockets} "
            f"sockets, {r.dovecot_imap_processes} Dovecot imap processes"
        )
        print(
            f"    SIGTERM: exit status {r.exit_code}, {r.shutdown_s:.2f} s; "
            f"warnings/errors logged: {r.warnings or 'none'}"
            + (f"; ERROR: {r.error}" if r.error else "")
        )
    if full.replies:
        print(f"  reply latency, {len(full.replies)} replies ({missed} missed), seconds:")
        parts = {
            "noticed (both)": noticed,
            "pass_started (IDLE)": [
                r.pass_started_s for r in full.replies if r.pass_started_s is not None
            ],
            "thread answered in DB": [
                r.answered_s for r in full.replies if r.answered_s is not None
            ],
            "account_synced new>=1": [r.synced_s for r in full.replies if r.synced_s is not None],
        }
        for label, values in parts.items():
            p = percentiles(values)
            shown = "  ".join(f"{k} {v:.3f}" for k, v in p.items()) if p else "no data"
            print(f"    {label:<22} n={len(values):<3} {shown}")
        whys = Counter(r.why for r in full.replies)
        print(f"    first pass_started reasons: {dict(whys)}")
    if wave is not None:
        print(
            f"  poll wave (poll_minutes = {wave.poll_minutes:g}, store of the full run): "
            f"startup with no-change passes {_fmt(wave.startup_s)}; scheduled wave of "
            f"{wave.passes} no-change passes {_fmt(wave.wave_s)} with {wave.logins} IMAP logins; "
            f"reply to {wave.target} "
            f"(reached last) judged answered in {_fmt(wave.reply_answered_s)}; SIGTERM exit status "
            f"{wave.exit_code}, {wave.shutdown_s:.2f} s"
            + (f"; ERROR: {wave.error}" if wave.error else "")
        )
        if wave.reply_answered_s is not None:
            print()
            print(
                table([(
                    "reply noticed during a poll wave (1 reply, reached last)",
                    f"<= {TARGET_REPLY_P99_S:g} s",
                    f"{wave.reply_answered_s:.3f} s",
                    f"{wave.reply_answered_s / TARGET_REPLY_P99_S:.3f}x",
                )])
            )  # fmt: skip
    return {
        "date": datetime.now(UTC).isoformat(),
        "machine": {"node": platform.node(), "cpus": os.cpu_count(),
                    "load_avg": os.getloadavg()},
        "args": {k: str(v) for k, v in vars(args).items()},
        "per_account_mib": per_account_mib,
        "reply_latency": lat,
        "missed_replies": missed,
        "baseline": asdict(base),
        "full": asdict(full),
        "poll_wave": None if wave is None else asdict(wave),
    }  # fmt: skip


# =========================================================================================
# Main
# =========================================================================================


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=200, help="accounts (default 200)")
    parser.add_argument("--replies", type=int, default=50, help="replies timed (default 50)")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="idle window (30)")
    parser.add_argument("--settle", type=float, default=5.0, help="quiet log before idle (5 s)")
    parser.add_argument("--gap", type=float, default=0.3, help="pause between replies (0.3 s)")
    parser.add_argument("--reply-timeout", type=float, default=60.0, help="per reply (60 s)")
    parser.add_argument("--seed", type=int, default=1, help="which accounts get replies")
    parser.add_argument(
        "--poll-wave",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time a reply that arrives as a scheduled poll wave starts (default on)",
    )
    parser.add_argument(
        "--wave-poll-minutes", type=float, default=1.0, help="poll_minutes of that run (1)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--stock-dovecot",
        action="store_true",
        help="keep tests/mailstack.py's Dovecot limits (see ScaleStack)",
    )
    args = parser.parse_args(argv)
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")

    tmp = Path(tempfile.mkdtemp(prefix="gw-scale-"))
    tmp.chmod(0o755)
    stack = ScaleStack(tmp / "stack", stock=args.stock_dovecot)
    print(
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; work dir {tmp}",
        flush=True,
    )
    try:
        stack.start()
        started = time.monotonic()
        baseline = make_owner("baseline")
        owners = [make_owner(f"owner{i:03d}") for i in range(args.accounts)]
        for owner in (baseline, *owners):
            stack.add_user(owner.address, PASSWORD)
            fill_mailbox(stack, owner)
        print(
            f"{args.accounts + 1} mailboxes written in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        base = run_daemon(stack, [baseline], tmp / "run-1", args)
        picked = random.Random(args.seed).sample(owners, min(args.replies, len(owners)))
        full = run_daemon(stack, owners, tmp / f"run-{args.accounts}", args, replies=picked)
        wave: WaveResult | None = None
        if args.poll_wave and not full.error:
            target = next(o for o in reversed(owners) if o not in picked)
            wave = poll_wave(stack, owners, Path(full.db), tmp / "run-wave", target=target,
                             args=args)  # fmt: skip
        problems = stack.log_problems()
        result = report(base, full, wave, args)
        result["dovecot_log_problems"] = problems[:50]
        if problems:
            print(f"  Dovecot log: {len(problems)} lines naming a limit/warning/error, e.g.:")
            for line in problems[:5]:
                print(f"    {line}")
        else:
            print("  Dovecot log: no limit, warning or error lines")
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
            print(f"results written to {args.json}")
    finally:
        stack.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
