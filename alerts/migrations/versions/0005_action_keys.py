"""action_keys: Idempotency-Key of the alert actions, so a retried action is a no-op

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "action_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "idempotency_key", name=op.f("pk_action_keys")),
    )
    with op.batch_alter_table("action_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_action_keys_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("action_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_keys_created_at"))
    op.drop_table("action_keys")
