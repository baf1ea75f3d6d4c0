"""Seeded, reproducible ledgers at scale, written straight to the tables yet consistent with every invariant:
each member's available balance equals the sum of their lots, and the seeding transaction balances."""

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from tests.helpers import LONG_AGO, program_document

from patron.services import programs
from patron.store.database import Database
from patron.store.tables import balances, journal, lots, members, postings

SEEDED_AT = datetime(2025, 1, 1, tzinfo=UTC)


def seed_lots(db: Database, *, members_count: int, lots_per_member: int, points: int = 10, seed: int = 7) -> int:
    """Creates a program and members holding `lots_per_member` available lots each, all expiring before 2026."""
    program_id = programs.create_program(db, "bench", now=SEEDED_AT)
    programs.publish(db, program_id, program_document(), actor="bench", now=SEEDED_AT, effective_from=LONG_AGO)
    rng = random.Random(seed)
    with db.write() as conn:
        conn.execute(
            insert(members),
            [
                {
                    "id": m,
                    "program_id": program_id,
                    "external_id": f"m{m}",
                    "attributes": {},
                    "created_at": SEEDED_AT,
                    "updated_at": SEEDED_AT,
                }
                for m in range(1, members_count + 1)
            ],
        )
        per_member = lots_per_member * points
        conn.execute(
            insert(balances),
            [{"member_id": m, "available": per_member, "pending": 0, "debt": 0} for m in range(1, members_count + 1)],
        )
        conn.execute(
            insert(journal),
            {
                "id": 1,
                "program_id": program_id,
                "kind": "seed",
                "memo": "benchmark seed",
                "occurred_at": SEEDED_AT,
                "posted_at": SEEDED_AT,
            },
        )
        conn.execute(
            insert(postings),
            [
                {
                    "transaction_id": 1,
                    "program_id": program_id,
                    "member_id": m,
                    "account": "available",
                    "amount": per_member,
                }
                for m in range(1, members_count + 1)
            ]
            + [
                {
                    "transaction_id": 1,
                    "program_id": program_id,
                    "member_id": None,
                    "account": "issued",
                    "amount": -per_member * members_count,
                }
            ],
        )
        batch: list[dict[str, object]] = []
        for m in range(1, members_count + 1):
            for _ in range(lots_per_member):
                earned = SEEDED_AT + timedelta(minutes=rng.randrange(0, 60 * 24 * 300))
                batch.append(
                    {
                        "program_id": program_id,
                        "member_id": m,
                        "transaction_id": 1,
                        "order_id": None,
                        "points": points,
                        "remaining": points,
                        "status": "available",
                        "earned_at": earned,
                        "available_at": earned,
                        "expires_at": earned + timedelta(days=30),
                    }
                )
            if len(batch) >= 50_000:
                conn.execute(insert(lots), batch)
                batch = []
        if batch:
            conn.execute(insert(lots), batch)
        if conn.dialect.name == "postgresql":  # ids were given explicitly: move the sequences past them
            for table in ("members", "journal"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
    if db.engine.dialect.name == "postgresql":
        # A million rows just written have no statistics until autovacuum gets to them (and the benchmark server
        # runs without it): the ledger being measured is one a production database has long since analysed.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE members, balances, lots")
    return program_id
