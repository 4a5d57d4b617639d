"""One ``ghostwatch run`` per database.

Two daemons on one store would both send: the second one refuses to start. For
SQLite the lock is a file next to the database (``filelock``, an ``flock`` that the
kernel releases when the process dies, even by SIGKILL); for PostgreSQL it is a
session-level advisory lock held on a dedicated connection for the life of the
process (released by the server when that connection goes away).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from filelock import FileLock, Timeout
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ghostwatch.errors import GhostwatchError

__all__ = ["AlreadyRunningError", "InstanceLock"]


class AlreadyRunningError(GhostwatchError):
    """Another ghostwatch process holds this database."""


def _pg_key(url: str) -> int:
    # A stable signed 64-bit key per database, the range pg_try_advisory_lock takes.
    digest = hashlib.sha256(b"ghostwatch-run:" + url.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class InstanceLock:
    """Held while the daemon runs; ``acquire`` raises :class:`AlreadyRunningError`."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self._file: FileLock | None = None
        self._conn: Any = None

    def acquire(self) -> None:
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite":
            self._acquire_file(parsed.database)
        else:
            self._acquire_pg()

    def _acquire_file(self, database: str | None) -> None:
        if not database or database == ":memory:":
            return  # a private in-memory store cannot be shared anyway
        path = Path(database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout as exc:
            raise AlreadyRunningError(
                f"another `ghostwatch run` is already using {path} (lock file {lock.lock_file}); "
                "stop it first (systemctl stop ghostwatch), or give this one its own "
                "[database] url"
            ) from exc
        self._file = lock

    def _acquire_pg(self) -> None:
        from ghostwatch.store import make_engine

        engine = make_engine(self.url)
        conn = engine.connect()
        got = conn.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": _pg_key(self.url)}
        ).scalar()
        conn.commit()
        if not got:
            conn.close()
            raise AlreadyRunningError(
                "another `ghostwatch run` is already using this PostgreSQL database "
                f"({make_url(self.url).render_as_string(hide_password=True)})"
            )
        self._conn = conn

    def release(self) -> None:
        if self._file is not None:
            self._file.release()
            self._file = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
