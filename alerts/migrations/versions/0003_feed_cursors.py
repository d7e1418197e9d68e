"""the change feed as the one outbox: consumer cursors, snapshots, a keyed delivery log

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feed_cursors",
        sa.Column("consumer", sa.String(length=255), nullable=False),
        sa.Column("change_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", name=op.f("pk_feed_cursors")),
    )
    with op.batch_alter_table("alert_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snapshot", sa.JSON(), nullable=True))
    # One row per (change, channel, target): keep the newest of any repeats logged before.
    op.execute(
        "DELETE FROM deliveries WHERE id NOT IN "
        "(SELECT max(id) FROM deliveries GROUP BY change_id, channel, target)"
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_change_id"))
        batch_op.create_index(
            batch_op.f("ix_deliveries_change_id_channel_target"),
            ["change_id", "channel", "target"],
            unique=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_change_id_channel_target"))
        batch_op.create_index(batch_op.f("ix_deliveries_change_id"), ["change_id"], unique=False)
    with op.batch_alter_table("alert_events", schema=None) as batch_op:
        batch_op.drop_column("snapshot")
    op.drop_table("feed_cursors")
