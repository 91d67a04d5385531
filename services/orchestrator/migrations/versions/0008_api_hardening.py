"""each runner's share of the embedded rate budget (issue 10)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "strava_rate_budget_runners",
        sa.Column("runner_id", sa.Uuid(), nullable=False),
        sa.Column("short_window", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["runner_id"],
            ["runners.id"],
            name=op.f("fk_strava_rate_budget_runners_runner_id_runners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("runner_id", name=op.f("pk_strava_rate_budget_runners")),
    )


def downgrade() -> None:
    op.drop_table("strava_rate_budget_runners")
