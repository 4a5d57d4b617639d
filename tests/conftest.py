"""Shared pytest fixtures for ghostwatch's tests."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

import mailstack as _mailstack
import pgcluster as _pgcluster
from mailstack import MailStack
from pgcluster import PgCluster

# ---------------------------------------------------------------------------
# Real servers: Dovecot + Postfix (tests/mailstack.py) and PostgreSQL
# (tests/pgcluster.py), one of each per test session. See ../shared/MAILSTACK.md.
# ---------------------------------------------------------------------------

#: Users the ``mailstack`` fixture creates, address -> password.
MAILSTACK_USERS: dict[str, str] = {
    "alice@example.test": "alice-pw",
    "bob@client.test": "bob-pw",
    "carol@client.test": "carol-pw",
    "owner@example.test": "owner-pw",
}


def server_unavailable(reason: str) -> NoReturn:
    """Fail the test on CI (``CI=true``), where a missing server is a broken build;
    skip it elsewhere, so a laptop without Dovecot still runs the unit tests."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _server_root(prefix: str) -> Path:
    # Not tmp_path_factory: pytest's base temp dir is mode 0700, and the servers'
    # unprivileged processes (nobody, postgres) must reach their files.
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def mailstack() -> Iterator[MailStack]:
    """A running Dovecot + Postfix with the users of ``MAILSTACK_USERS``."""
    missing = _mailstack.missing_binaries()
    if missing:
        server_unavailable(
            f"mail stack needs {', '.join(missing)}; install with: {_mailstack.INSTALL_COMMAND}"
        )
    if os.geteuid() != 0:
        server_unavailable("mail stack needs root (Dovecot and Postfix drop privileges)")
    root = _server_root("ghostwatch-mail-")
    stack = MailStack(root)
    for address, password in MAILSTACK_USERS.items():
        stack.add_user(address, password)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class TlsStack:
    """A second mail stack like a provider's: STARTTLS + AUTH on ``submission_port``,
    implicit TLS on ``smtps_port``, a certificate from a throwaway CA in ``ca_file``."""

    stack: MailStack
    ca_file: Path


@pytest.fixture(scope="session")
def tls_mailstack(mailstack: MailStack) -> Iterator[TlsStack]:
    """``mailstack`` is requested for its skip-or-fail check."""
    import trustme

    root = _server_root("ghostwatch-smtp-")
    ca = trustme.CA()
    chain, ca_file = root / "chain.pem", root / "ca.pem"
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(chain))
    ca.cert_pem.write_to_path(str(ca_file))
    stack = MailStack(root, submission=True, tls_chain=chain)
    try:
        stack.start()
        yield TlsStack(stack, ca_file)
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A running throwaway PostgreSQL 15 cluster; make databases with ``create_database``."""
    missing = _pgcluster.missing_binaries()
    if missing:
        server_unavailable(
            f"PostgreSQL needs {', '.join(missing)}; install with: {_pgcluster.INSTALL_COMMAND}"
        )
    root = _server_root("ghostwatch-pg-")
    cluster = PgCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- Stores on both backends ---------------------------------------------------------

_db_seq = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, empty database URL: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('store') / 'gw.db'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"gw_store_{next(_db_seq)}")
