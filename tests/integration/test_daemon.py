"""`ghostwatch run` as a subprocess against the real Dovecot and Postfix.

The daemon's clock starts at ``NOW`` (``--now``) and runs on; its JSON log lines
(stderr) are read as they come and waited on by event name.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_send import ORIGINAL, SendEnv, make_send_env

from mailbuilder import make_mail
from mailenv import NOW
from mailstack import MailStack

pytestmark = pytest.mark.mailstack

AT = NOW.isoformat()


class Daemon:
    """A running `ghostwatch run`, its log lines parsed as they arrive."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ghostwatch.cli", "--config", str(config), "--now", AT,
             "run", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self.raw.append(line)
                with contextlib.suppress(json.JSONDecodeError):
                    self.events.append(json.loads(line))

    def wait_for(self, event: str, timeout: float = 30, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for e in self.events:
                    if e.get("event") == event and all(e.get(k) == v for k, v in match.items()):
                        return e
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {event} {match} in the log:\n" + "".join(self.raw[-40:]))

    def count(self, event: str) -> int:
        with self._lock:
            return sum(1 for e in self.events if e.get("event") == event)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(timeout=10)


def _env(mailstack: MailStack, tmp_path: Path, daemon: str = "") -> SendEnv:
    return make_send_env(mailstack, tmp_path, sending=f"\n[daemon]\n{daemon}\n")


def test_run_once_sends_what_was_approved_and_exits(mailstack: MailStack, tmp_path: Path) -> None:
    """--once: one pass (sync, queue, send) for every account, a summary line, exit 0."""
    senv = _env(mailstack, tmp_path)
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    out = senv.cli("run", "--once")
    assert out.returncode == 0, out.stderr
    assert f"{senv.env.account.name}: ok; 0 queued, 1 sent" in out.stdout
    assert [r.state for r in senv.rows()] == ["sent"]
    assert len(senv.client_inbox()) == 1


def test_a_second_daemon_on_the_same_database_refuses_to_start(
    mailstack: MailStack, tmp_path: Path, daemons: list[Daemon]
) -> None:
    senv = _env(mailstack, tmp_path, "poll_minutes = 60")
    first = Daemon(senv.config)
    daemons.append(first)
    first.wait_for("ready")
    second = senv.cli("run", "--once")
    assert second.returncode == 1
    assert "another `ghostwatch run` is already using" in second.stderr
    assert first.proc.poll() is None
    assert first.stop() == 0


def test_a_reply_noticed_through_idle_cancels_the_pending_draft(
    mailstack: MailStack, tmp_path: Path, daemons: list[Daemon]
) -> None:
    """The daemon sits in IDLE (polling only hourly); the client's reply, delivered
    through Postfix, cancels the queued draft within seconds. Prints the delay."""
    senv = _env(mailstack, tmp_path, "poll_minutes = 60")
    d = Daemon(senv.config)
    daemons.append(d)
    d.wait_for("ready")
    d.wait_for("idle_started")
    [row] = senv.rows()
    assert row.state == "queued"
    reply = make_mail(frm=senv.client, to=senv.env.address, subject="Re: Quote for the new website",
                      msgid="<yes@client.test>", date=NOW + timedelta(minutes=1),
                      in_reply_to=ORIGINAL, body="Yes, let's go ahead.\n")  # fmt: skip
    sent_at = time.monotonic()
    mailstack.deliver(senv.client, [senv.env.address], reply)
    deadline = sent_at + 30
    while time.monotonic() < deadline and senv.rows()[0].state != "cancelled":
        time.sleep(0.05)
    delay = time.monotonic() - sent_at
    assert senv.rows()[0].state == "cancelled", "".join(d.raw[-30:])
    print(f"\nreply delivered -> draft cancelled in {delay:.2f} s (through Postfix, LMTP, IDLE)")
    assert delay < 30
    assert d.wait_for("pass_started", why="IDLE: INBOX changed")
    assert d.stop() == 0


def test_sighup_with_a_broken_config_keeps_the_old_one(
    mailstack: MailStack, tmp_path: Path, daemons: list[Daemon]
) -> None:
    """A config that does not validate is refused on SIGHUP, logged, and the daemon
    runs on; a valid one is then taken."""
    senv = _env(mailstack, tmp_path, "poll_minutes = 60")
    d = Daemon(senv.config)
    daemons.append(d)
    d.wait_for("ready")
    good = senv.config.read_text()
    senv.config.write_text(good + "\n[sending]\nhourly_cap = -3\n")
    d.proc.send_signal(signal.SIGHUP)
    refused = d.wait_for("config_reload_refused")
    assert "hourly_cap" in refused["error"] or "sending" in refused["error"]
    time.sleep(0.5)
    assert d.proc.poll() is None
    senv.config.write_text(good.replace("poll_minutes = 60", "poll_minutes = 30"))
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for("config_reloaded")
    assert d.stop() == 0


def test_sigterm_exits_zero_and_releases_the_database(
    mailstack: MailStack, tmp_path: Path, daemons: list[Daemon]
) -> None:
    senv = _env(mailstack, tmp_path, "poll_minutes = 60")
    d = Daemon(senv.config)
    daemons.append(d)
    d.wait_for("ready")
    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 15
    d.wait_for("daemon_stopped")
    assert senv.cli("run", "--once").returncode == 0


def test_a_dovecot_restart_under_the_daemon_is_survived(
    mailstack: MailStack, tmp_path: Path, daemons: list[Daemon]
) -> None:
    """Dovecot stops and comes back: the IDLE watcher reconnects, and a reply that
    arrives afterwards still cancels the draft."""
    senv = _env(mailstack, tmp_path, "poll_minutes = 60")
    d = Daemon(senv.config)
    daemons.append(d)
    d.wait_for("ready")
    d.wait_for("idle_started")
    mailstack.stop_dovecot()
    try:
        d.wait_for("idle_connection_lost", timeout=60)
    finally:
        mailstack.start_dovecot()
    deadline = time.monotonic() + 60
    while d.count("idle_started") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert d.count("idle_started") >= 2, "".join(d.raw[-30:])
    reply = make_mail(frm=senv.client, to=senv.env.address, subject="Re: Quote for the new website",
                      msgid="<back@client.test>", date=NOW + timedelta(minutes=1),
                      in_reply_to=ORIGINAL)  # fmt: skip
    mailstack.deliver(senv.client, [senv.env.address], reply)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and senv.rows()[0].state != "cancelled":
        time.sleep(0.1)
    assert senv.rows()[0].state == "cancelled", "".join(d.raw[-30:])
    assert d.stop() == 0


def test_doctor_passes_a_working_setup_and_names_what_fails(
    mailstack: MailStack, tmp_path: Path
) -> None:
    """doctor: every check PASS on a working account (JSON for scripts); a wrong IMAP
    password is a FAIL naming the account, and the exit status is 1."""
    senv = _env(mailstack, tmp_path)
    senv.config.chmod(0o600)
    out = senv.cli("doctor", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    checks = {c["check"]: c for c in json.loads(out.stdout)}
    name = senv.env.account.name
    for what in ("config", "config permissions", "database", "time zone", f"{name}: IMAP",
                 f"{name}: folders", f"{name}: IDLE", f"{name}: SMTP"):  # fmt: skip
        assert checks[what]["verdict"] == "PASS", checks.get(what)
    assert "login OK" in checks[f"{name}: IMAP"]["detail"]
    assert "accepted us; nothing sent" in checks[f"{name}: SMTP"]["detail"]
    route = checks[f"{name}: digest route"]
    assert route["verdict"] == "PASS"
    assert route["detail"] == (
        f"digests to {senv.env.address}; replies to " + senv.env.address.replace("@", "+gw-TOKEN@")
    )

    senv.config.write_text(senv.config.read_text().replace(
        f'password_command = "echo {senv.env.password}"', 'password_command = "echo wrong"'))  # fmt: skip
    bad = senv.cli("doctor")
    assert bad.returncode == 1
    assert f"FAIL  {name}: IMAP" in bad.stdout and "refused" in bad.stdout
    assert "1 failed" in bad.stdout


def test_two_daemons_on_postgresql_share_the_accounts_and_take_over_a_dead_ones(
    mailstack: MailStack, tmp_path: Path, daemons: list[Daemon], pg_cluster: Any
) -> None:
    """scale_out: two processes on one PostgreSQL database split two accounts; after a
    kill -9 the survivor takes the dead one's account within the lease period; every
    approved draft reaches its client exactly once."""
    from sqlalchemy import select

    from ghostwatch.store import Lease, OutboxRow, open_store

    url = pg_cluster.create_database(f"gw_scale_{os.getpid()}_{time.monotonic_ns()}")
    envs = [make_send_env(mailstack, tmp_path / f"a{i}") for i in range(2)]
    blocks = []
    for senv in envs:
        text = senv.config.read_text()
        blocks.append(text[text.index("[[accounts]]") : text.index("[sending]")])
    config = tmp_path / "scale.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n\n' + "\n".join(blocks)
        + "\n[sending]\nspread_minutes = 0\n\n[daemon]\npoll_minutes = 60\n"
        "scale_out = true\nlease_seconds = 3\n"
    )  # fmt: skip
    for senv in envs:
        senv.config = config
    queued = envs[0].cli("send")
    assert queued.returncode == 0, queued.stderr
    sessions = open_store(url)
    with sessions() as db:
        ids = [r.id for r in db.scalars(select(OutboxRow))]
    assert len(ids) == 2
    assert envs[0].cli("approve", *map(str, ids)).returncode == 0

    first, second = Daemon(config), Daemon(config)
    daemons += [first, second]
    deadline = time.monotonic() + 60
    holders: dict[str, str] = {}
    while time.monotonic() < deadline:
        with sessions() as db:
            holders = {r.account: r.holder for r in db.scalars(select(Lease))
                       if not r.account.startswith("@")}  # fmt: skip
            states = [r.state for r in db.scalars(select(OutboxRow))]
        if len(set(holders.values())) == 2 and states == ["sent", "sent"]:
            break
        time.sleep(0.2)
    assert len(set(holders.values())) == 2, holders
    assert states == ["sent", "sent"]

    first.proc.kill()
    first.proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with sessions() as db:
            holders = {r.account: r.holder for r in db.scalars(select(Lease))
                       if not r.account.startswith("@")}  # fmt: skip
        if len(set(holders.values())) == 1 and len(holders) == 2:
            break
        time.sleep(0.2)
    assert len(set(holders.values())) == 1 and len(holders) == 2, holders
    assert second.count("leases_taken") >= 2, "".join(second.raw[-20:])
    for senv in envs:
        assert len(senv.client_inbox()) == 1
    assert second.stop() == 0


def test_kill_9_and_restart_loses_nothing_and_doubles_nothing(
    mailstack: MailStack, tmp_path: Path, daemons: list[Daemon]
) -> None:
    """The daemon is killed with SIGKILL as soon as its first pass starts; the restarted
    daemon finishes the job: the approved draft reaches the client at most once and
    the row ends sent (or uncertain, waiting for the user), never resent."""
    senv = _env(mailstack, tmp_path, "poll_minutes = 60")
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    first = Daemon(senv.config)
    daemons.append(first)
    first.wait_for("pass_started")
    first.proc.kill()
    first.proc.wait(timeout=10)
    second = Daemon(senv.config)
    daemons.append(second)
    second.wait_for("ready")
    [after] = senv.rows()
    assert after.state in ("sent", "uncertain")
    copies = [m for m in senv.client_inbox() if m["Message-ID"] == row.message_id]
    assert len(copies) <= 1
    if after.state == "sent":
        assert len(copies) == 1
    assert second.stop() == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_systemd_hears_ready_status_and_stopping_and_metrics_are_served(
    mailstack: MailStack, tmp_path: Path, daemons: list[Daemon]
) -> None:
    """Under systemd (NOTIFY_SOCKET): READY=1 after the first pass, a STATUS= line with
    the figures, STOPPING=1 on SIGTERM. [metrics] listen serves the same figures."""
    port = _free_port()
    senv = _env(mailstack, tmp_path, "poll_minutes = 60")
    senv.config.write_text(senv.config.read_text() + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
    notify_path = Path(tempfile.mkdtemp()) / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(30)
    try:
        d = Daemon(senv.config, env={"NOTIFY_SOCKET": str(notify_path)})
        daemons.append(d)
        messages: list[str] = []
        while not any("READY=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
        while not any(m.startswith("STATUS=") for m in messages):
            messages.append(sock.recv(4096).decode())
        status = next(m for m in messages if m.startswith("STATUS="))
        assert status == "STATUS=1 account, 1 threads awaiting reply, 1 drafts queued"
        body = (
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        )
        assert "ghostwatch_threads_awaiting_reply 1.0" in body
        assert "ghostwatch_drafts_queued 1.0" in body
        name = senv.env.account.name
        assert f'ghostwatch_pass_seconds_count{{account="{name}"}} 1.0' in body
        assert d.stop() == 0
        while not any("STOPPING=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
    finally:
        sock.close()


def test_a_broken_account_does_not_stop_the_others(
    mailstack: MailStack, tmp_path: Path, daemons: list[Daemon]
) -> None:
    """Two accounts, one with a wrong password: the good one is served (its pass runs,
    the daemon gets ready), the bad one is reported and put on backoff."""
    good = _env(mailstack, tmp_path / "good", "poll_minutes = 60")
    bad = make_send_env(mailstack, tmp_path / "bad")
    text = good.config.read_text()
    bad_block = bad.config.read_text()
    bad_block = bad_block[bad_block.index("[[accounts]]") : bad_block.index("[sending]")]
    bad_block = bad_block.replace(f"echo {bad.env.password}", "echo wrong-password")
    good.config.write_text(text.replace("[sending]", bad_block + "\n[sending]", 1))
    d = Daemon(good.config)
    daemons.append(d)
    d.wait_for("ready")
    backoff = d.wait_for("account_backoff", account=bad.env.account.name)
    assert "refused" in backoff["error"]
    assert d.wait_for("outbox", account=good.env.account.name, what="queued")
    assert d.proc.poll() is None
    assert d.stop() == 0


def test_the_watchdog_is_fed_from_the_loop(
    mailstack: MailStack, tmp_path: Path, daemons: list[Daemon]
) -> None:
    """WATCHDOG_USEC=2 s: WATCHDOG=1 arrives about every second."""
    senv = _env(mailstack, tmp_path, "poll_minutes = 60")
    notify_path = Path(tempfile.mkdtemp()) / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(30)
    try:
        d = Daemon(senv.config, env={"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "2000000"})
        daemons.append(d)
        pings: list[float] = []
        while len(pings) < 3:
            if sock.recv(4096).decode() == "WATCHDOG=1":
                pings.append(time.monotonic())
        assert max(b - a for a, b in itertools.pairwise(pings)) < 1.9
        assert d.stop() == 0
    finally:
        sock.close()


def test_a_second_daemon_on_the_same_postgresql_database_refuses(
    mailstack: MailStack, tmp_path: Path, daemons: list[Daemon], pg_cluster: Any
) -> None:
    """Without scale_out, PostgreSQL is one instance too (an advisory lock)."""
    url = pg_cluster.create_database(f"gw_lock_{os.getpid()}_{time.monotonic_ns()}")
    senv = _env(mailstack, tmp_path, "poll_minutes = 60")
    text = senv.config.read_text()
    start = text.index('url = "') + len('url = "')
    senv.config.write_text(text[:start] + url + text[text.index('"', start) :])
    first = Daemon(senv.config)
    daemons.append(first)
    first.wait_for("ready")
    second = senv.cli("run", "--once")
    assert second.returncode == 1
    assert "already using this PostgreSQL database" in second.stderr
    assert first.stop() == 0
    assert senv.cli("run", "--once").returncode == 0


def test_run_once_dry_run_sends_nothing(mailstack: MailStack, tmp_path: Path) -> None:
    senv = _env(mailstack, tmp_path)
    senv.cli("send")
    [row] = senv.rows()
    senv.cli("approve", str(row.id))
    out = senv.cli("run", "--once", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert [r.state for r in senv.rows()] == ["approved"]
    assert senv.client_inbox() == []
