"""raffles.opens_at: a raffle declared by a version that starts later opens when that version starts

Until now a raffle opened when the version declaring it was published, so a version dated next month let members
buy entries to its raffle at once. Raffles already made opened when they were made (their created_at).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 20:05:00.000000
"""

import sqlalchemy as sa
from alembic import op

from patron.store.types import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("raffles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opens_at", UtcDateTime(timezone=True), nullable=True))
    op.execute("UPDATE raffles SET opens_at = created_at")
    with op.batch_alter_table("raffles", schema=None) as batch_op:
        batch_op.alter_column("opens_at", existing_type=UtcDateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("raffles", schema=None) as batch_op:
        batch_op.drop_column("opens_at")
