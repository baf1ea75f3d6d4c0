"""campaign offers to lapsed members

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 18:52:00.000000
"""

import sqlalchemy as sa
from alembic import op

import patron.store.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "campaign_offers",
        sa.Column("program_id", Id, nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", Id, nullable=False),
        sa.Column("offered_at", patron.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_campaign_offers_member_id_members")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_campaign_offers_program_id_programs")),
        sa.PrimaryKeyConstraint("program_id", "campaign_id", "member_id", name=op.f("pk_campaign_offers")),
    )


def downgrade() -> None:
    op.drop_table("campaign_offers")
