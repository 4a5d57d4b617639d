"""Notifier speaks sd_notify: exact datagrams to $NOTIFY_SOCKET (a path or an abstract
@name), nothing at all outside systemd, never an exception, and the watchdog period
from $WATCHDOG_USEC / $WATCHDOG_PID."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ghostwatch.sdnotify import Notifier


class Receiver:
    """A bound AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.notify_socket = notify_socket

    def receive(self) -> bytes:
        """The next datagram; fails the test if none arrives within 2 s."""
        self.sock.settimeout(2.0)
        return self.sock.recv(65536)

    def assert_empty(self) -> None:
        """No further datagram is waiting."""
        self.sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            self.sock.recv(65536)


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A listening notify socket, with $NOTIFY_SOCKET pointing at it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    # Short directory: sun_path holds at most 107 bytes, pytest's tmp_path can be longer.
    directory = tempfile.mkdtemp(prefix="gw-notify-")
    try:
        if request.param == "path":
            path = str(Path(directory) / "notify")
            sock.bind(path)
            notify_socket = path
        else:
            name = f"ghostwatch-test-{uuid.uuid4().hex}"
            sock.bind("\0" + name)
            notify_socket = "@" + name
        monkeypatch.setenv("NOTIFY_SOCKET", notify_socket)
        yield Receiver(sock, notify_socket)
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (Notifier.ready, b"READY=1"),
        (Notifier.watchdog, b"WATCHDOG=1"),
        (Notifier.stopping, b"STOPPING=1"),
        (lambda n: n.status("synced 2 accounts, 3 sent"), b"STATUS=synced 2 accounts, 3 sent"),
        (lambda n: n.status("two\nlines"), b"STATUS=two lines"),
        (lambda n: n.status("Zürich ✓"), "STATUS=Zürich ✓".encode()),
    ],
    ids=["ready", "watchdog", "stopping", "status", "status-newline", "status-utf8"],
)
def test_each_method_sends_exactly_its_datagram(
    receiver: Receiver, call: Callable[[Notifier], None], expected: bytes
) -> None:
    """ready/watchdog/stopping/status each send one datagram with exactly the sd_notify
    assignment, to a path socket and to an abstract one; a line break in a status
    becomes a space (a newline would start a new assignment)."""
    notifier = Notifier()
    call(notifier)
    assert receiver.receive() == expected
    receiver.assert_empty()
    assert notifier.failures == 0
    assert notifier.enabled


def test_reloading_sends_reloading_and_monotonic_usec(receiver: Receiver) -> None:
    """reloading() sends RELOADING=1 and MONOTONIC_USEC=<CLOCK_MONOTONIC in µs> in one
    datagram, as systemd 253's Type=notify-reload requires."""
    notifier = Notifier()
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = receiver.receive().split(b"\n")
    receiver.assert_empty()
    assert first == b"RELOADING=1"
    key, _, value = second.partition(b"=")
    assert key == b"MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_send_joins_assignments_into_one_datagram(receiver: Receiver) -> None:
    """send(*assignments) puts them in one datagram, newline-separated, and says True."""
    assert Notifier().send("READY=1", "STATUS=up") is True
    assert receiver.receive() == b"READY=1\nSTATUS=up"


def test_environ_argument_overrides_os_environ(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Notifier(environ=...) reads that mapping, not os.environ, at construction."""
    notifier = Notifier({"NOTIFY_SOCKET": receiver.notify_socket})
    monkeypatch.delenv("NOTIFY_SOCKET")
    notifier.ready()
    assert receiver.receive() == b"READY=1"
    assert not Notifier({}).enabled


def _call_everything(notifier: Notifier) -> None:
    notifier.ready()
    notifier.watchdog()
    notifier.status("hello")
    notifier.reloading()
    notifier.stopping()


def test_without_notify_socket_everything_is_a_silent_no_op(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outside systemd ($NOTIFY_SOCKET unset or empty) no method raises or counts a
    failure, and send() says False."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    for notifier in (Notifier(), Notifier({"NOTIFY_SOCKET": ""})):
        _call_everything(notifier)
        assert notifier.failures == 0
        assert notifier.last_error is None
        assert not notifier.enabled
        assert notifier.send("READY=1") is False


@pytest.mark.parametrize(
    "notify_socket",
    ["/nonexistent/ghostwatch/notify", "@ghostwatch-nobody-listens-" + uuid.uuid4().hex],
    ids=["missing-path", "missing-abstract"],
)
def test_send_errors_are_swallowed_and_counted(
    monkeypatch: pytest.MonkeyPatch, notify_socket: str
) -> None:
    """A $NOTIFY_SOCKET nobody listens on never raises: each failed send adds one to
    `failures` and leaves the reason in `last_error`."""
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket)
    notifier = Notifier()
    _call_everything(notifier)
    assert notifier.failures == 5
    assert notifier.last_error
    assert notifier.send("READY=1") is False
    assert notifier.failures == 6


@pytest.mark.parametrize(
    "notify_socket",
    ["relative/notify", "/" + "x" * 200, "/tmp/with\0nul"],
    ids=["relative", "too-long", "nul"],
)
def test_unusable_notify_socket_is_a_counted_failure(notify_socket: str) -> None:
    """A relative, too long or NUL-containing $NOTIFY_SOCKET is a counted failure, not
    an exception (libsystemd refuses the same values)."""
    notifier = Notifier({"NOTIFY_SOCKET": notify_socket})
    notifier.ready()
    assert notifier.failures == 1
    assert notifier.last_error


def test_send_to_a_socket_removed_meanwhile_is_counted() -> None:
    """The notify socket disappearing after start (systemd re-executed) is a counted
    failure too; the next send works again once it is back."""
    directory = tempfile.mkdtemp(prefix="gw-notify-")
    path = os.path.join(directory, "notify")
    try:
        notifier = Notifier({"NOTIFY_SOCKET": path})
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            notifier.watchdog()
            assert sock.recv(64) == b"WATCHDOG=1"
        os.unlink(path)
        notifier.watchdog()
        assert notifier.failures == 1
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            notifier.watchdog()
            assert sock.recv(64) == b"WATCHDOG=1"
        assert notifier.failures == 1
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "120000000"}, 60.0),
        ({"WATCHDOG_USEC": "1000000"}, 0.5),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "{pid}"}, 60.0),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "{other_pid}"}, None),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "not-a-pid"}, None),
        ({}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "2min"}, None),
        ({"WATCHDOG_PID": "{pid}"}, None),
    ],
    ids=[
        "120s-gives-60s",
        "1s-gives-half",
        "pid-matches",
        "pid-mismatch",
        "pid-garbage",
        "unset",
        "empty",
        "zero",
        "negative",
        "not-a-number",
        "pid-without-usec",
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: float | None
) -> None:
    """watchdog_interval() is half of $WATCHDOG_USEC in seconds (the recommended ping
    period), and None when the watchdog is off, the value is not a positive integer,
    or $WATCHDOG_PID is set to another process than ours."""
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    pid = os.getpid()
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(pid=pid, other_pid=pid + 1))
    assert Notifier().watchdog_interval() == expected


def test_watchdog_interval_needs_no_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """The watchdog period is read even without $NOTIFY_SOCKET (pinging then no-ops)."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier({"WATCHDOG_USEC": "30000000"})
    assert notifier.watchdog_interval() == 15.0
    notifier.watchdog()
    assert notifier.failures == 0
