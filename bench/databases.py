"""Fresh, migrated databases for a benchmark run: a SQLite file and a PostgreSQL database of its own."""

import os
import tempfile
from pathlib import Path

import sqlalchemy as sa

from patron.store.database import Database
from patron.store.migrate import migrate

POSTGRES_ADMIN_URL = os.environ.get(
    "PATRON_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgres")


def fresh_url(backend: str, name: str) -> str:
    if backend == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix=f"patron-bench-{name}-"))
        return f"sqlite:///{directory / 'patron.db'}"
    database = f"patron_bench_{name}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    admin.dispose()
    return sa.make_url(POSTGRES_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


def fresh_database(backend: str, name: str, *, pool_size: int = 20) -> Database:
    db = Database(fresh_url(backend, name), pool_size=pool_size)
    migrate(db)
    return db
