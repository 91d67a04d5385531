"""strava links remember since when their error holds (retention of dead grants)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("strava_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_since", sa.DateTime(timezone=True), nullable=True))
    # Links already in error: the last sync that ran is when the error was found (a link that
    # waits for a reconnect is not synced again), or the link's creation if it never synced.
    op.execute(
        "UPDATE strava_links SET error_since = COALESCE(last_sync_at, linked_at) "
        "WHERE error_code IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("strava_links", schema=None) as batch_op:
        batch_op.drop_column("error_since")
