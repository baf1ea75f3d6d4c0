"""The migrations: they build exactly the schema the code expects, and they move a database holding a ledger
down and up again without losing a point, on SQLite (where altering a table copies it) and on PostgreSQL."""

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from patron.services import adjustments, events
from patron.store.bulk import _rows_by_key
from patron.store.database import Database
from patron.store.migrate import migrate
from patron.store.tables import members, metadata, orders
from tests.conftest import POSTGRES_OFF, POSTGRES_URL, T0
from tests.helpers import check_invariants, ledger_dump, set_up
from tests.integration.test_scenarios import purchase

FIRST_REVISION = "0001"


@pytest.fixture
def fresh_db(backend: str, tmp_path: Path, testrun_uid: str) -> Iterator[Database]:
    """A database of this test's own, migrated from nothing: other tests share theirs, and this one downgrades."""
    if backend == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'patron.db'}")
        migrate(database)
        yield database
        database.dispose()
        return
    if POSTGRES_OFF:
        pytest.fail("this test needs PostgreSQL (PATRON_TEST_POSTGRES=off)")
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"patron_migrations_{testrun_uid[:8]}_{tmp_path.name[-12:]}".replace("-", "_").lower()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    database = Database(sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False))
    try:
        migrate(database)
        yield database
    finally:
        database.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_the_migrations_build_the_schema_the_code_declares(fresh_db: Database) -> None:
    with fresh_db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_a_database_with_a_ledger_goes_down_to_the_first_revision_and_up_again_intact(fresh_db: Database) -> None:
    s = set_up(fresh_db, now=T0)
    adjustments.adjust(fresh_db, s.cache, s.program_id, "m1", 300, "opening balance", actor="test", now=T0)
    events.ingest(fresh_db, s.cache, s.program_id, purchase(), now=T0)
    ledger_tables = ("journal", "postings", "lots", "balances", "orders", "events", "members")
    before = {name: rows for name, rows in ledger_dump(fresh_db).items() if name in ledger_tables}

    migrate(fresh_db, FIRST_REVISION)
    migrate(fresh_db)

    after = ledger_dump(fresh_db)
    for name, rows in before.items():
        if name == "members":  # columns added after the first revision come back with their defaults
            assert len(after[name]) == len(rows)
        else:
            assert after[name] == rows, name
    check_invariants(fresh_db)
    # The database still takes writes after the round trip.
    adjustments.adjust(fresh_db, s.cache, s.program_id, "m1", -100, "spend", actor="test", now=T0)
    check_invariants(fresh_db)


def test_the_rows_each_event_writes_keep_every_key_that_guards_the_ledger(fresh_db: Database) -> None:
    """Migration 0009 dropped only the keys to programs that other keys already imply."""
    inspector = sa.inspect(fresh_db.engine)

    def keys(table: str) -> set[tuple[str, str]]:
        return {(k["constrained_columns"][0], k["referred_table"]) for k in inspector.get_foreign_keys(table)}

    assert keys("postings") == {("transaction_id", "journal"), ("member_id", "members")}
    assert keys("lots") == {("transaction_id", "journal"), ("member_id", "members")}
    assert keys("journal") == {("program_id", "programs"), ("member_id", "members"), ("event_id", "events")}
    assert keys("events") == {("member_id", "members")}
    assert keys("orders") == {("member_id", "members")}
    assert keys("outbox") == {("member_id", "members")}
    assert keys("members") == {("program_id", "programs")}


@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.parametrize("orders_so_far", [100, 1_000])
def test_a_new_database_finds_an_order_by_its_key_not_among_all_the_programs_orders(
    fresh_db: Database, orders_so_far: int
) -> None:
    """Before autovacuum first analyzes the table, PostgreSQL had no statistics to tell the (program, member, time)
    index from the primary key, and read every order of the program for each order looked up (migration 0011)."""
    s = set_up(fresh_db, now=T0)
    with fresh_db.write() as conn:
        member_id = conn.execute(sa.select(members.c.id).where(members.c.external_id == "m1")).scalar_one()
        conn.execute(
            orders.insert(),
            [
                {
                    "program_id": s.program_id,
                    "order_id": f"o{n}",
                    "member_id": member_id,
                    "total": Decimal(1),
                    "earned": 1,
                    "refunded": Decimal(0),
                    "clawed_back": 0,
                    "occurred_at": T0,
                }
                for n in range(orders_so_far)
            ],
        )
    statement = _rows_by_key("postgresql", (orders.c.order_id, orders.c.total), orders.c.program_id, orders.c.order_id)
    compiled = statement.compile(dialect=fresh_db.engine.dialect)
    with fresh_db.read() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cursor:
            params = {**compiled.params, "scope_id": s.program_id, "wanted": ["o1", "o7"]}
            cursor.execute(f"EXPLAIN {compiled}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using pk_orders" in plan, plan
    assert "Filter" not in plan, plan
