"""A throwaway PostgreSQL 15 cluster on loopback, for integration tests and benchmarks.

Durability is switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``):
the cluster lives for one test session in a temporary directory.

PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` user (or ``nobody`` where that doesn't exist) via ``runuser``, and
``root`` is handed over to that user. Its parent directories must be searchable
by that user: ``tempfile.mkdtemp()`` works, pytest's ``tmp_path`` does not.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["INSTALL_COMMAND", "PG_BIN", "PgCluster", "PgClusterError", "missing_binaries"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
INSTALL_COMMAND = "sudo bash scripts/install-system-deps.sh"
SUPERUSER = "ghostwatch"
_START_ATTEMPTS = 3
# sockaddr_un.sun_path is 108 bytes; the socket is "<dir>/.s.PGSQL.<port>".
_MAX_SOCKET_DIR_LEN = 90


class PgClusterError(RuntimeError):
    """The cluster failed to start or stop; the message includes the server log."""


def missing_binaries() -> list[str]:
    """Programs this helper needs (PostgreSQL 15, and runuser as root) that are missing."""
    missing = [
        str(PG_BIN / n) for n in ("initdb", "pg_ctl", "postgres") if not (PG_BIN / n).exists()
    ]
    if os.geteuid() == 0 and _runuser() is None:
        missing.append("runuser")
    return missing


def _runuser() -> str | None:
    # /usr/sbin is not on every PATH (e.g. a non-login shell of a CI runner).
    return shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"--- {path}: (missing)"
    return f"--- {path} (last {lines} lines):\n" + "\n".join(text.splitlines()[-lines:])


class PgCluster:
    """``initdb`` + ``pg_ctl start`` in ``root``; ``stop()`` leaves no process behind.

    Usage::

        with PgCluster(tmpdir) as pg:
            url = pg.create_database("ghostwatch_test")  # a SQLAlchemy URL
    """

    host = "127.0.0.1"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_file = self.root / "postgres.log"
        self.port = 0
        self.superuser = SUPERUSER
        self._os_user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
                self._os_user = "postgres"
            except KeyError:
                self._os_user = "nobody"
        self._running = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` maintenance database."""
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of database ``dbname``."""
        return f"postgresql+psycopg://{self.superuser}@{self.host}:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """libpq connection string for ``psycopg.connect()``."""
        return f"host={self.host} port={self.port} user={self.superuser} dbname={dbname}"

    def start(self) -> None:
        """Create the cluster (first time only) and start it on a free loopback port."""
        if self._running:
            raise PgClusterError("PgCluster already started")
        missing = missing_binaries()
        if missing:
            raise PgClusterError(f"missing: {', '.join(missing)}; install with: {INSTALL_COMMAND}")
        if len(str(self.socket_dir)) > _MAX_SOCKET_DIR_LEN:
            raise PgClusterError(f"{self.socket_dir} is too long for a unix socket path")
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self._os_user is not None:
            self._check_reachable()
            for path in (self.root, self.socket_dir):
                shutil.chown(path, user=self._os_user)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D", str(self.data_dir),
                "-U", self.superuser,
                "--auth=trust",  # loopback and our own socket dir only
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )  # fmt: skip
        for _attempt in range(_START_ATTEMPTS):
            self.port = _free_port()
            options = " ".join(
                [
                    f"-p {self.port}",
                    "-c listen_addresses=127.0.0.1",
                    f"-k '{self.socket_dir}'",  # pg_ctl runs it through sh
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                ]
            )
            result = self._run(
                "pg_ctl", "start", "-w", "-t", "30",
                "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options,
                check=False,
            )  # fmt: skip
            if result.returncode == 0:
                self._running = True
                return
            # Another process took the "free" port between our probe and the bind.
            if "already in use" not in _tail(self.log_file, 10):
                break
        raise PgClusterError(
            f"PostgreSQL did not start (pg_ctl: {result.stdout.strip()})\n" + _tail(self.log_file)
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown) and wait until its processes are gone."""
        if not self._running:
            return
        pid_file = self.data_dir / "postmaster.pid"
        pid: int | None = None
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            pid = int(pid_file.read_text().split()[0])
        result = self._run(
            "pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data_dir), check=False
        )
        self._running = False
        if pid is not None:
            deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
                raise PgClusterError(f"postmaster {pid} ignored pg_ctl stop: {result.stdout}")

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name``; return its SQLAlchemy URL."""
        import psycopg  # the only user of psycopg here; keep the import lazy
        from psycopg import sql

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def _run(
        self, program: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [str(PG_BIN / program), *args]
        if self._os_user is not None:
            command = [_runuser() or "runuser", "-u", self._os_user, "--", *command]
        # cwd: the tools fail if the current directory isn't readable by their user.
        result = subprocess.run(
            command,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            # pg_ctl start -l sends the server's output to the log, so the
            # pipes close when pg_ctl exits.
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise PgClusterError(
                f"{program} failed ({result.returncode}): {result.stdout}{result.stderr}\n"
                + _tail(self.log_file)
            )
        return result

    def _check_reachable(self) -> None:
        for parent in self.root.parents:
            if parent.exists() and not parent.stat().st_mode & 0o001:
                raise PgClusterError(
                    f"{parent} is not world-searchable, so PostgreSQL (user {self._os_user}) "
                    f"cannot reach {self.root}; use a directory such as tempfile.mkdtemp()"
                )


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
