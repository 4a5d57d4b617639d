"""sd_notify(3) without libsystemd: tell systemd we are ready, alive, reloading, stopping.

A message is one datagram of newline-separated ``KEY=VALUE`` assignments, sent to the
AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract
namespace). Outside systemd (no ``$NOTIFY_SOCKET``) every method does nothing.
Nothing here ever raises: a failed send is counted in ``Notifier.failures``, because
the daemon must not stop mailing over a lost status update.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

#: Seconds a send may block when systemd's receive queue is full.
SEND_TIMEOUT = 2.0


class Notifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET``; a no-op when it is unset."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        """Read the environment (``os.environ`` unless ``environ`` is given) once."""
        env = os.environ if environ is None else environ
        self._socket_name = env.get("NOTIFY_SOCKET", "")
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")
        #: Sends that failed (socket gone, queue full, bad ``$NOTIFY_SOCKET``).
        self.failures = 0
        #: Why the last failed send failed, for a log line.
        self.last_error: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether systemd is listening (``$NOTIFY_SOCKET`` is set)."""
        return bool(self._socket_name)

    def ready(self) -> None:
        """Start-up (or a reload) is complete: ``READY=1``."""
        self.send("READY=1")

    def watchdog(self) -> None:
        """Keep-alive ping for ``WatchdogSec=``: ``WATCHDOG=1``."""
        self.send("WATCHDOG=1")

    def status(self, text: str) -> None:
        """One line for ``systemctl status``; line breaks become spaces."""
        self.send("STATUS=" + " ".join(text.splitlines()))

    def stopping(self) -> None:
        """Shutdown has begun: ``STOPPING=1``."""
        self.send("STOPPING=1")

    def reloading(self) -> None:
        """A reload has begun: ``RELOADING=1`` and ``MONOTONIC_USEC`` (systemd 253+).

        Send ``ready()`` when it is done.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def watchdog_interval(self) -> float | None:
        """Seconds between ``watchdog()`` pings (half of ``$WATCHDOG_USEC``), or None.

        None when the watchdog is off, ``$WATCHDOG_USEC`` is not a positive integer, or
        ``$WATCHDOG_PID`` names another process.
        """
        try:
            usec = int(self._watchdog_usec)
            if self._watchdog_pid and int(self._watchdog_pid) != os.getpid():
                return None
        except ValueError:
            return None
        if usec <= 0:
            return None
        return usec / 2 / 1_000_000

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments as one datagram; True if systemd got it."""
        if not self._socket_name:
            return False
        address = self._socket_name
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace
        elif not address.startswith("/"):
            return self._failed(f"NOTIFY_SOCKET={address!r} is neither a path nor @name")
        data = "\n".join(assignments).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(SEND_TIMEOUT)
                sock.sendto(data, address)
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
            return self._failed(str(exc))
        return True

    def _failed(self, reason: str) -> bool:
        self.failures += 1
        self.last_error = reason
        return False
