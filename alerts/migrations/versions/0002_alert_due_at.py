"""alerts.due_at: when an open alert's timers are next due

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 13:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_at", sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f("ix_alerts_due_at"), ["due_at"], unique=False)
    # Open alerts from before: due now, so the next tick looks at each once and stores
    # its real due time.
    op.execute("UPDATE alerts SET due_at = 0 WHERE open_key IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_due_at"))
        batch_op.drop_column("due_at")
