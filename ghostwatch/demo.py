"""The no-account demo: a shipped sample mailbox, judged at a fixed instant."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ghostwatch.analyze import analyze_account
from ghostwatch.config import AccountSettings
from ghostwatch.localsource import ingest
from ghostwatch.store import ThreadRow, open_store

SAMPLE = Path(__file__).parent / "samples" / "demo.mbox"
DEMO_NOW = datetime(2026, 11, 27, 9, 0, tzinfo=ZoneInfo("Europe/Rome"))
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


def run_demo(now: datetime = DEMO_NOW, source: Path = SAMPLE) -> list[ThreadRow]:
    """Ingest the sample into a throwaway store, judge it at ``now``, return threads."""
    with tempfile.TemporaryDirectory(prefix="ghostwatch-demo-") as tmp:
        sessions = open_store(f"sqlite:///{Path(tmp) / 'demo.db'}")
        ingest(source, DEMO_ACCOUNT, sessions, now)
        analyze_account(sessions, DEMO_ACCOUNT, now)
        with sessions() as db:
            rows = list(db.scalars(select(ThreadRow)))
        sessions.kw["bind"].dispose()
    order = {"awaiting_reply": 0, "answered_elsewhere": 1, "answered": 2, "owed_by_user": 3}
    rows.sort(key=lambda r: (order.get(r.state, 9), r.awaiting_since or r.last_activity))
    return rows
