"""the runner's physiology in the profile; workouts keep their weighted watts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Additive only. The profile's physiology feeds the training-load model (docs/training-load.md §2).
`workouts.weighted_average_watts` and `device_watts` let the power method read a column instead
of each row's raw JSON (the summary reads the window's workouts on every request); existing rows
are filled from the JSON they already hold.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only JSON numbers and booleans are copied: anything else in `raw` stays NULL (unknown).
BACKFILL = {
    "postgresql": """
        UPDATE workouts SET
          weighted_average_watts = CASE
            WHEN jsonb_typeof(raw -> 'weighted_average_watts') = 'number'
            THEN (raw ->> 'weighted_average_watts')::double precision END,
          device_watts = CASE WHEN jsonb_typeof(raw -> 'device_watts') = 'boolean'
            THEN (raw ->> 'device_watts')::boolean END
        WHERE raw ? 'weighted_average_watts' OR raw ? 'device_watts'
    """,
    "sqlite": """
        UPDATE workouts SET
          weighted_average_watts = CASE
            WHEN json_type(raw, '$.weighted_average_watts') IN ('integer', 'real')
            THEN json_extract(raw, '$.weighted_average_watts') END,
          device_watts = CASE json_type(raw, '$.device_watts')
            WHEN 'true' THEN 1 WHEN 'false' THEN 0 END
        WHERE json_type(raw, '$.weighted_average_watts') IS NOT NULL
           OR json_type(raw, '$.device_watts') IS NOT NULL
    """,
}


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sex", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("max_hr", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("resting_hr", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("threshold_hr", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("threshold_pace_s_per_km", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("ftp_w", sa.Integer(), nullable=True))
    with op.batch_alter_table("workouts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("weighted_average_watts", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("device_watts", sa.Boolean(), nullable=True))
    op.execute(sa.text(BACKFILL[op.get_bind().dialect.name]))


def downgrade() -> None:
    with op.batch_alter_table("workouts", schema=None) as batch_op:
        batch_op.drop_column("device_watts")
        batch_op.drop_column("weighted_average_watts")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_column("ftp_w")
        batch_op.drop_column("threshold_pace_s_per_km")
        batch_op.drop_column("threshold_hr")
        batch_op.drop_column("resting_hr")
        batch_op.drop_column("max_hr")
        batch_op.drop_column("sex")
