"""pending deauthorizations keep the refresh token

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    with op.batch_alter_table("strava_pending_deauthorizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refresh_token_ciphertext", sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column("access_token_expires_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:

    with op.batch_alter_table("strava_pending_deauthorizations", schema=None) as batch_op:
        batch_op.drop_column("access_token_expires_at")
        batch_op.drop_column("refresh_token_ciphertext")
