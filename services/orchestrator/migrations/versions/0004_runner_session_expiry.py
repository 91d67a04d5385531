"""runner sessions expire

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Sessions issued before expiry existed get the default lifetime from their creation.
DEFAULT_TTL_DAYS = 30


def upgrade() -> None:
    with op.batch_alter_table("runner_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        backfill = f"datetime(created_at, '+{DEFAULT_TTL_DAYS} days')"
    else:
        backfill = f"created_at + interval '{DEFAULT_TTL_DAYS} days'"
    op.execute(f"UPDATE runner_sessions SET expires_at = {backfill}")  # noqa: S608
    with op.batch_alter_table("runner_sessions", schema=None) as batch_op:
        batch_op.alter_column(
            "expires_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("runner_sessions", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
