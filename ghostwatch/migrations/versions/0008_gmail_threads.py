"""Gmail threads analysed incrementally: messages by X-GM-THRID, keys of joined parts

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_account_gm_thrid", "messages", ["account", "gm_thrid"])
    # Filled by full analyses. A Gmail account's threads were joined before it
    # existed: dropping its mentions index makes its next analysis a full one.
    op.execute(
        "DELETE FROM mentions WHERE account IN "
        "(SELECT DISTINCT account FROM messages WHERE gm_thrid IS NOT NULL)"
    )
    op.create_table(
        "thread_keys",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("thread_id", sa.String(length=32), nullable=False),
        sa.Column("subject_key", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("account", "thread_id", "subject_key"),
    )
    op.create_index("ix_thread_keys_account_key", "thread_keys", ["account", "subject_key"])


def downgrade() -> None:
    op.drop_index("ix_thread_keys_account_key", table_name="thread_keys")
    op.drop_table("thread_keys")
    op.drop_index("ix_messages_account_gm_thrid", table_name="messages")
