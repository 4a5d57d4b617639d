"""The no-account demo: a shipped sample mailbox, replayed with a simulated clock."""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch.config import AccountSettings
from ghostwatch.policy import PolicySettings
from ghostwatch.replay import ReplayResult, replay
from ghostwatch.store import ThreadRow, Tracking

SAMPLES = Path(__file__).parent / "samples"
SAMPLE = SAMPLES / "demo.mbox"
DEMO_TZ = ZoneInfo("Europe/Rome")
DEMO_START = datetime(2026, 10, 1, 0, 0, tzinfo=DEMO_TZ)
DEMO_NOW = datetime(2026, 11, 27, 9, 0, tzinfo=DEMO_TZ)
DEMO_ACCOUNT = AccountSettings.model_validate(
    {
        "name": "demo",
        "address": "alice@rossi-studio.example",
        "display_name": "Alice Rossi",
        "imap": {
            # Never contacted: the demo reads the sample mbox only.
            "host": "imap.rossi-studio.example",
            "username": "alice@rossi-studio.example",
            "password_env": "GHOSTWATCH_DEMO_UNUSED",
        },
    }
)
# What Alice would have recorded with `ghostwatch track THREAD --invoice ...`.
DEMO_INVOICES = (
    ("2026-014", "1200.00", "EUR", date(2026, 10, 31)),
    ("2026-011", "850.00", "GBP", date(2026, 10, 30)),
)


def demo_policy() -> PolicySettings:
    with (SAMPLES / "demo.toml").open("rb") as fh:
        return PolicySettings.model_validate(tomllib.load(fh))


def _track_invoices(sessions: sessionmaker[Session], now: datetime) -> None:
    with sessions() as db:
        for number, amount, currency, due in DEMO_INVOICES:
            for row in db.scalars(select(ThreadRow).where(ThreadRow.subject.contains(number))):
                db.add(
                    Tracking(
                        account=row.account,
                        thread_id=row.thread_id,
                        stage="payment",
                        invoice_number=number,
                        amount=amount,
                        currency=currency,
                        due=due,
                        updated_at=now,
                    )
                )
        db.commit()


def run_demo(now: datetime = DEMO_NOW, source: Path = SAMPLE) -> ReplayResult:
    """Replay the sample from 1 Oct 2026 to ``now``; nothing is sent."""
    return replay(
        source,
        DEMO_ACCOUNT,
        demo_policy(),
        start=min(DEMO_START, now),
        end=now,
        setup=_track_invoices,
    )
