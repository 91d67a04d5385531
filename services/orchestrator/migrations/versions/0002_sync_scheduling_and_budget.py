"""sync scheduling, retry backoff and the embedded rate budget

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("strava_links", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sync_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.create_index(
            batch_op.f("ix_strava_links_next_sync_at"), ["next_sync_at"], unique=False
        )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))

    budget = op.create_table(
        "strava_rate_budget",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("short_window", sa.BigInteger(), nullable=False),
        sa.Column("daily_window", sa.BigInteger(), nullable=False),
        sa.Column("short_overall", sa.Integer(), nullable=False),
        sa.Column("short_read", sa.Integer(), nullable=False),
        sa.Column("daily_overall", sa.Integer(), nullable=False),
        sa.Column("daily_read", sa.Integer(), nullable=False),
        sa.Column("overall_limit_short", sa.Integer(), nullable=True),
        sa.Column("overall_limit_daily", sa.Integer(), nullable=True),
        sa.Column("read_limit_short", sa.Integer(), nullable=True),
        sa.Column("read_limit_daily", sa.Integer(), nullable=True),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("blocked_window", sa.String(length=10), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strava_rate_budget")),
    )
    # The one row every worker locks (budget.DatabaseBudget).
    op.bulk_insert(
        budget,
        [
            {
                "id": 1,
                "short_window": 0,
                "daily_window": 0,
                "short_overall": 0,
                "short_read": 0,
                "daily_overall": 0,
                "daily_read": 0,
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("strava_rate_budget")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_column("enqueued_at")
        batch_op.drop_column("attempts")
    with op.batch_alter_table("strava_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_strava_links_next_sync_at"))
        batch_op.drop_column("sync_failures")
