"""Fresh, migrated databases for a benchmark run: a SQLite file and a PostgreSQL database of its own, removed
when the benchmark is done with them."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from patron.store.database import Database
from patron.store.migrate import migrate

POSTGRES_ADMIN_URL = os.environ.get(
    "PATRON_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgres")


@contextmanager
def fresh_url(backend: str, name: str) -> Iterator[str]:
    """A URL to an empty database. Named by process too, so a test run and a bench run never share one."""
    if backend == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix=f"patron-bench-{name}-"))
        try:
            yield f"sqlite:///{directory / 'patron.db'}"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    database = f"patron_bench_{os.getpid()}_{name}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
        yield sa.make_url(POSTGRES_ADMIN_URL).set(database=database).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.dispose()


def server_cpu_seconds(db: Database) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL process serving `db`'s database, read from /proc; empty where
    that cannot be read (SQLite, a server on another machine, a system without /proc)."""
    if db.engine.dialect.name != "postgresql":
        return {}
    with db.engine.connect() as conn:
        pids = conn.exec_driver_sql("SELECT pid FROM pg_stat_activity WHERE datname = current_database()").scalars()
        found = {}
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return found


@contextmanager
def fresh_database(backend: str, name: str, *, pool_size: int = 20) -> Iterator[Database]:
    with fresh_url(backend, name) as url:
        db = Database(url, pool_size=pool_size)
        try:
            migrate(db)
            yield db
        finally:
            db.dispose()
