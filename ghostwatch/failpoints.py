"""Named points on the send path where a test may stop the process dead.

The send path calls :func:`hit` at each point where a crash would leave a
different trace (before SMTP, after the message data, after the server's 250,
after the copy to Sent, before the final commit). In production :func:`hit` does
nothing. The crash-injection tests run the real send path in a subprocess that
replaces :data:`handler` with one that sends itself SIGKILL at a chosen point,
then restart ghostwatch and check that nothing went out twice.
"""

from __future__ import annotations

from collections.abc import Callable

#: The points, in the order a send passes them.
POINTS = ("before_smtp", "after_data", "after_250", "after_append", "before_commit")


def _nothing(_point: str) -> None:
    return None


handler: Callable[[str], None] = _nothing


def hit(point: str) -> None:
    """Mark that the send path has reached ``point`` (one of :data:`POINTS`)."""
    handler(point)
