"""``ghostwatch`` with a kill switch: SIGKILL at one failpoint of the send path.

Usage: ``python tests/crashrun.py POINT ghostwatch-args...``. The process sends
itself SIGKILL (no cleanup, no atexit, no finally) the first time the send path
reaches ``POINT`` (one of :data:`ghostwatch.failpoints.POINTS`), as a power cut or
the OOM killer would.
"""

from __future__ import annotations

import os
import signal
import sys

from ghostwatch import failpoints
from ghostwatch.cli import main


def _kill_at(point: str) -> None:
    if point not in failpoints.POINTS:
        raise SystemExit(f"unknown failpoint {point!r}; known: {', '.join(failpoints.POINTS)}")

    def handler(reached: str) -> None:
        if reached == point:
            os.kill(os.getpid(), signal.SIGKILL)

    failpoints.handler = handler


if __name__ == "__main__":
    _kill_at(sys.argv[1])
    main(sys.argv[2:], prog_name="ghostwatch")
