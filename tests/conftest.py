"""Fixtures shared by every test: a migrated database on SQLite or on a real PostgreSQL server, and a clock.

`backend` tests run once per database. PostgreSQL is required: when it cannot be reached the tests fail rather
than skip (PATRON_TEST_POSTGRES=off opts out locally, and is refused under CI).
"""

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from patron.store.database import Database
from patron.store.migrate import migrate
from patron.store.tables import metadata

POSTGRES_URL = os.environ.get("PATRON_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
POSTGRES_OFF = os.environ.get("PATRON_TEST_POSTGRES") == "off"
if POSTGRES_OFF and os.environ.get("CI") == "true":
    raise pytest.UsageError("PATRON_TEST_POSTGRES=off is not allowed in CI: the PostgreSQL tests must run")

BACKENDS = ["sqlite"] if POSTGRES_OFF else ["sqlite", "postgres"]
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once per session; each test copies the file (faster than migrating again)."""
    path = tmp_path_factory.mktemp("template") / "patron.db"
    db = Database(f"sqlite:///{path}")
    migrate(db)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url(testrun_uid: str) -> Iterator[str]:
    """A database of this test run and worker's own on the real server, migrated once. Named per run, so two
    runs on one machine (two developers, an editor's test watcher) never drop each other's database."""
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"patron_test_{testrun_uid[:8]}_{_worker()}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for these tests and is not reachable at {POSTGRES_URL}: {exc}")
    url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    migrate(db)
    db.dispose()
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def make_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "patron.db"
        shutil.copy(template, path)
        return Database(f"sqlite:///{path}")
    url: str = request.getfixturevalue("postgres_url")
    db = Database(url, pool_size=20)
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    return db


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = make_database(backend, request, tmp_path)
    yield database
    database.dispose()


@pytest.fixture
def pg_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """PostgreSQL only: for races between real concurrent connections."""
    if POSTGRES_OFF:
        pytest.fail("this test needs PostgreSQL (PATRON_TEST_POSTGRES=off)")
    database = make_database("postgres", request, tmp_path)
    yield database
    database.dispose()
