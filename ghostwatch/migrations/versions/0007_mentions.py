"""mentions and thread subject keys: re-thread only what new mail can affect

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Filled by the next analysis of each account (a full one, since it finds none).
    op.create_table(
        "mentions",
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("msgid", sa.String(length=998), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["message_pk"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("message_pk", "msgid"),
    )
    op.create_index("ix_mentions_account_msgid", "mentions", ["account", "msgid"])
    with op.batch_alter_table("threads") as batch:
        batch.add_column(sa.Column("subject_key", sa.String(length=40), nullable=True))
        batch.create_index("ix_threads_subject_key", ["account", "subject_key"])
    # Who wrote last, per address, without reading the whole mailbox.
    op.create_index("ix_messages_account_from", "messages", ["account", "from_addr"])
    # Which messages came into view (their date passed) since the last analysis.
    op.create_index("ix_messages_account_date", "messages", ["account", "date"])


def downgrade() -> None:
    op.drop_index("ix_messages_account_date", table_name="messages")
    op.drop_index("ix_messages_account_from", table_name="messages")
    with op.batch_alter_table("threads") as batch:
        batch.drop_index("ix_threads_subject_key")
        batch.drop_column("subject_key")
    op.drop_index("ix_mentions_account_msgid", table_name="mentions")
    op.drop_table("mentions")
