"""Account leases for scale-out, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from ghostwatch.leases import release, renew
from ghostwatch.store import Lease, open_store

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=60)
ACCOUNTS = ["a1", "a2", "a3", "a4"]


def test_one_process_takes_every_account(db_url: str) -> None:
    sessions = open_store(db_url)
    with sessions() as db:
        assert renew(db, ACCOUNTS, "p1", T0, TTL) == set(ACCOUNTS)


def test_a_second_process_gets_a_fair_share_and_no_account_is_held_twice(db_url: str) -> None:
    """p2 appears: p1 gives back the excess at its next round and p2 takes it; at no
    point do both hold an account."""
    sessions = open_store(db_url)
    with sessions() as db:
        assert renew(db, ACCOUNTS, "p1", T0, TTL) == set(ACCOUNTS)
        first_p2 = renew(db, ACCOUNTS, "p2", T0 + timedelta(seconds=1), TTL)
        assert first_p2 == set()  # all taken, not expired: p2 waits
        p1 = renew(db, ACCOUNTS, "p1", T0 + timedelta(seconds=20), TTL)
        p2 = renew(db, ACCOUNTS, "p2", T0 + timedelta(seconds=21), TTL)
        assert len(p1) == 2 and len(p2) == 2
        assert p1.isdisjoint(p2) and p1 | p2 == set(ACCOUNTS)
        holders = {r.account: r.holder for r in db.execute(select(Lease.account, Lease.holder))}
        assert {a: holders[a] for a in ACCOUNTS} == {
            a: ("p1" if a in p1 else "p2") for a in ACCOUNTS
        }


def test_a_dead_processs_accounts_move_once_its_leases_expire(db_url: str) -> None:
    sessions = open_store(db_url)
    with sessions() as db:
        renew(db, ACCOUNTS, "p1", T0, TTL)
        renew(db, ACCOUNTS, "p2", T0 + timedelta(seconds=1), TTL)
        p1 = renew(db, ACCOUNTS, "p1", T0 + timedelta(seconds=20), TTL)
        p2 = renew(db, ACCOUNTS, "p2", T0 + timedelta(seconds=21), TTL)
        assert p1 and p2
        # p1 dies (no more renewals). Before expiry p2 cannot take its accounts...
        assert renew(db, ACCOUNTS, "p2", T0 + timedelta(seconds=60), TTL) == p2
        # ...after it, p2 (now alone) takes everything.
        assert renew(db, ACCOUNTS, "p2", T0 + timedelta(seconds=81), TTL) == set(ACCOUNTS)


def test_release_hands_everything_back_at_once(db_url: str) -> None:
    sessions = open_store(db_url)
    with sessions() as db:
        renew(db, ACCOUNTS, "p1", T0, TTL)
        release(db, "p1")
        assert renew(db, ACCOUNTS, "p2", T0 + timedelta(seconds=1), TTL) == set(ACCOUNTS)
