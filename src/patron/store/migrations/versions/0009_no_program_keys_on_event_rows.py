"""no foreign key to programs on events, postings, lots, orders and outbox

These are the tables every ingested event writes rows to, and checking each row's program_id against programs
was a large share of their inserts' time on PostgreSQL (a batch of 1,000 purchases: 88 of 130 ms of the postings
INSERT went to foreign-key checks). The check guards nothing the ledger relies on:
- events, lots and orders rows name a member (NOT NULL, its key kept) and the member names its program;
- postings name their journal transaction (NOT NULL, key kept), and journal keeps its key to programs;
- outbox rows are messages written in the transaction of the change they announce, under the same program;
- programs are never deleted, so no key could have stopped a delete leaving these rows behind.
Every key that guards the ledger stays: postings to journal and members, lots to journal and members, journal
to programs, members and events, events and orders to members.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 15:40:00.000000
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = ("events", "postings", "lots", "orders", "outbox")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_program_id_programs", type_="foreignkey")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(f"fk_{table}_program_id_programs", "programs", ["program_id"], ["id"])
