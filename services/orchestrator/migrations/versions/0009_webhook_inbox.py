"""webhook inbox and confirmed revocations (issue 11)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("runner_id", sa.Uuid(), nullable=False),
        sa.Column("object_type", sa.String(length=20), nullable=False),
        sa.Column("object_id", sa.BigInteger(), nullable=False),
        sa.Column("aspect_type", sa.String(length=20), nullable=False),
        sa.Column(
            "updates", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["runner_id"],
            ["runners.id"],
            name=op.f("fk_inbox_events_runner_id_runners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_events")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_inbox_events_dedupe_key")),
    )
    op.create_index(
        "ix_inbox_events_runner_id_state", "inbox_events", ["runner_id", "state"], unique=False
    )
    op.create_index(
        "ix_inbox_events_state_next_attempt_at",
        "inbox_events",
        ["state", "next_attempt_at"],
        unique=False,
    )
    op.create_table(
        "strava_revocations",
        sa.Column("runner_id", sa.Uuid(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["runner_id"],
            ["runners.id"],
            name=op.f("fk_strava_revocations_runner_id_runners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("runner_id", name=op.f("pk_strava_revocations")),
    )


def downgrade() -> None:
    op.drop_table("strava_revocations")
    op.drop_index("ix_inbox_events_state_next_attempt_at", table_name="inbox_events")
    op.drop_index("ix_inbox_events_runner_id_state", table_name="inbox_events")
    op.drop_table("inbox_events")
