"""Scale-out on PostgreSQL: each account is served by exactly one process at a time.

A lease is a row (account, holder, expires_at). A process renews its own leases and
takes free or expired ones with one compare-and-set UPDATE each (or an INSERT for an
account never leased), so two processes can never both hold an account at the same
instant by the database's clock of record; when a process dies, its leases expire
and another takes them within ``ttl``. The send path does not rely on leases for
safety (its claim is a compare-and-set of its own): leases only keep two processes
from doing the same work.

Times are the caller's ``now``; all processes must agree on the time to within a
small fraction of ``ttl`` (NTP), which is checked nowhere else.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ghostwatch.store import Lease

__all__ = ["holder_id", "release", "renew"]


def holder_id() -> str:
    """This process: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def _take(db: Session, account: str, holder: str, now: datetime, until: datetime) -> bool:
    result = db.execute(
        update(Lease)
        .where(
            Lease.account == account,
            (Lease.holder == holder) | (Lease.expires_at <= now),
        )
        .values(holder=holder, expires_at=until)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return True
    try:
        with db.begin_nested():
            db.add(Lease(account=account, holder=holder, expires_at=until))
    except IntegrityError:
        return False  # held by someone else (or they inserted first)
    return True


def _beat_key(holder: str) -> str:
    # Heartbeats share the table; "@" cannot start an account name (config pattern).
    return ("@" + holder)[:64]


def renew(
    db: Session, accounts: Iterable[str], holder: str, now: datetime, ttl: timedelta
) -> set[str]:
    """One round: record that this process is alive, give back what exceeds its fair
    share (so a newly started process gets work), renew its leases and take free or
    expired ones up to the share. Returns the accounts it holds now. Commits."""
    until = now + ttl
    _take(db, _beat_key(holder), holder, now, until)
    live = db.scalar(
        select(func.count())
        .select_from(Lease)
        .where(Lease.account.startswith("@"), Lease.expires_at > now)
    )
    names = sorted(set(accounts))
    share = math.ceil(len(names) / max(int(live or 1), 1))
    own = sorted(
        db.scalars(
            select(Lease.account).where(
                Lease.holder == holder, ~Lease.account.startswith("@"), Lease.expires_at > now
            )
        )
    )
    for extra in own[share:]:
        db.execute(delete(Lease).where(Lease.account == extra, Lease.holder == holder))
    held: set[str] = set()
    for account in own[:share] + [a for a in names if a not in own]:
        if len(held) >= share:
            break
        if account in names and _take(db, account, holder, now, until):
            held.add(account)
    db.commit()
    return held


def release(db: Session, holder: str) -> None:
    """Give every lease of ``holder`` back (a clean shutdown): others take them at once."""
    db.execute(delete(Lease).where(Lease.holder == holder))
    db.commit()
