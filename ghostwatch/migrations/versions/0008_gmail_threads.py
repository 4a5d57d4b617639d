"""index messages by X-GM-THRID: new Gmail mail re-threads only the threads it joins

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_account_gm_thrid", "messages", ["account", "gm_thrid"])


def downgrade() -> None:
    op.drop_index("ix_messages_account_gm_thrid", table_name="messages")
