"""alerts: the figures behind an alert (the metric its value reads, the limit, usual level,
rate or total it is judged against), so device and area rules carry numbers too

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("value_metric", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("reference", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("reference_kind", sa.String(length=16), nullable=True))
    # An alert of a metric reads that metric.
    op.execute("UPDATE alerts SET value_metric = metric WHERE value IS NOT NULL")


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN (SQLite 3.35+) rather than a copy of the table: a copy
    # would drop the table the change feed's rows point at (foreign keys are on).
    with op.batch_alter_table("alerts", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("reference_kind")
        batch_op.drop_column("reference")
        batch_op.drop_column("value_metric")
