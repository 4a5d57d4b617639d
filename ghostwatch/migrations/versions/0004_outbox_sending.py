"""outbox: what sending needs (thread headers, client, retry time, why now)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("client", sa.String(length=320), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("to_name", sa.String(length=320), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("in_reply_to", sa.String(length=998), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("references", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("locale", sa.String(length=8), nullable=False, server_default="en")
        )
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("in_drafts", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        for name in (
            "in_drafts",
            "next_attempt_at",
            "reason",
            "locale",
            "references",
            "in_reply_to",
            "to_name",
            "client",
        ):
            batch_op.drop_column(name)
