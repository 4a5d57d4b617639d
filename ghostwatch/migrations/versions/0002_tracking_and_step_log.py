"""tracking and step log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "step_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("thread_id", sa.String(length=32), nullable=False),
        sa.Column("anchor", sa.String(length=998), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account", "thread_id", "anchor", "step"),
    )
    op.create_table(
        "tracking",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("thread_id", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("invoice_number", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.String(length=32), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("due", sa.Date(), nullable=True),
        sa.Column("attachment", sa.Text(), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped", sa.Text(), nullable=True),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", "thread_id"),
    )
    with op.batch_alter_table("tracking", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tracking_invoice_number"), ["invoice_number"], unique=False
        )

    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("counterparts", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("first_unanswered_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:

    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.drop_column("first_unanswered_at")
        batch_op.drop_column("counterparts")

    with op.batch_alter_table("tracking", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracking_invoice_number"))

    op.drop_table("tracking")
    op.drop_table("step_log")
