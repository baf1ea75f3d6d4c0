"""loyalty mechanics: member progress, tier changes, reward grants, campaign budgets, occasion grants

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 17:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

import patron.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))

    op.create_table(
        "member_progress",
        sa.Column("member_id", Id, nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", patron.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_progress_member_id_members")),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_progress")),
    )
    op.create_table(
        "tier_changes",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("program_id", Id, nullable=False),
        sa.Column("member_id", Id, nullable=False),
        sa.Column("from_tier", sa.String(length=64), nullable=True),
        sa.Column("to_tier", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("occurred_at", patron.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("event_id", Id, nullable=True),
        sa.Column("recorded_at", patron.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_tier_changes_event_id_events")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_tier_changes_member_id_members")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_tier_changes_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_changes")),
    )
    op.create_index(op.f("ix_tier_changes_member_id_id"), "tier_changes", ["member_id", "id"], unique=False)
    op.create_table(
        "reward_grants",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("program_id", Id, nullable=False),
        sa.Column("member_id", Id, nullable=False),
        sa.Column("reward_id", sa.String(length=64), nullable=False),
        sa.Column("reward_kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("coupon_code", sa.String(length=32), nullable=False),
        sa.Column("event_id", Id, nullable=True),
        sa.Column("granted_at", patron.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_reward_grants_event_id_events")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_reward_grants_member_id_members")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_reward_grants_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_grants")),
        sa.UniqueConstraint("coupon_code", name=op.f("uq_reward_grants_coupon_code")),
    )
    op.create_index(op.f("ix_reward_grants_member_id_id"), "reward_grants", ["member_id", "id"], unique=False)
    op.create_table(
        "campaign_budgets",
        sa.Column("program_id", Id, nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("spent >= 0", name=op.f("ck_campaign_budgets_spent_not_negative")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_campaign_budgets_program_id_programs")),
        sa.PrimaryKeyConstraint("program_id", "campaign_id", name=op.f("pk_campaign_budgets")),
    )
    op.create_table(
        "occasion_grants",
        sa.Column("member_id", Id, nullable=False),
        sa.Column("occasion", sa.String(length=16), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("program_id", Id, nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", Id, nullable=True),
        sa.Column("granted_at", patron.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_occasion_grants_member_id_members")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_occasion_grants_program_id_programs")),
        sa.ForeignKeyConstraint(
            ["transaction_id"], ["journal.id"], name=op.f("fk_occasion_grants_transaction_id_journal")
        ),
        sa.PrimaryKeyConstraint("member_id", "occasion", "year", name=op.f("pk_occasion_grants")),
    )


def downgrade() -> None:
    op.drop_table("occasion_grants")
    op.drop_table("campaign_budgets")
    op.drop_index(op.f("ix_reward_grants_member_id_id"), table_name="reward_grants")
    op.drop_table("reward_grants")
    op.drop_index(op.f("ix_tier_changes_member_id_id"), table_name="tier_changes")
    op.drop_table("tier_changes")
    op.drop_table("member_progress")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("timezone")
