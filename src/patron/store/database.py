"""The database handle: engines for SQLite and PostgreSQL, transactions, and retry of lost races."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

from patron.store import json_text
from patron.store.checkpoints import Checkpointer

T = TypeVar("T")

# A pooled PostgreSQL connection idle longer than this is pinged before use (a server restart or an idle timeout
# may have closed it). Busy connections are not: pinging on every checkout, as pool_pre_ping does, cost a round
# trip per transaction, for connections that had answered a few milliseconds earlier.
IDLE_PING_SECONDS = 2.0

# SQLSTATEs that mean "the race was lost, run it again": serialization failure, deadlock, lock timeout.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


class Database:
    """One per process. `write()` for transactions that change data, `read()` for those that do not."""

    def __init__(
        self, url: str, *, pool_size: int = 10, echo: bool = False, background_checkpoints: bool = False
    ) -> None:
        """`background_checkpoints`: on a SQLite file, commits never checkpoint the write-ahead log; a thread does
        (store.checkpoints). For servers, where a commit that checkpoints holds up every request behind it."""
        self.url = make_url(url)
        path = self.url.database if self.url.get_backend_name() == "sqlite" else None
        apart = background_checkpoints and path not in (None, "", ":memory:")
        self.engine = _create_engine(url, pool_size=pool_size, echo=echo, autocheckpoint=not apart)
        self.checkpointer = Checkpointer(path) if apart and path is not None else None
        # SQLite lets one transaction write at a time. Writers of this process queue on a lock and start the moment
        # it is free, instead of sleeping in SQLite's busy handler (naps of up to 100 ms), which made the slowest
        # concurrent writes hundreds of milliseconds slower than the rest. Re-entrant: a thread never waits on itself.
        self._writer = threading.RLock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that commits when the block ends and rolls back if it raises.

        On SQLite it starts with BEGIN IMMEDIATE, taking the write lock up front, so two writers never both
        read a balance and then both spend it.
        """
        if self._writer is None:
            with self.engine.connect().execution_options(patron_write=True) as conn, conn.begin():
                yield conn
            return
        with self._writer, self.engine.connect().execution_options(patron_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def run(self, work: Callable[[Connection], T], *, attempts: int = 8) -> T:
        """Runs `work` in a write transaction, again (with backoff) if it lost a race to another transaction."""
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as conn:
                    return work(conn)
            except DBAPIError as exc:
                if attempt == attempts or not is_retryable(exc):
                    raise
                time.sleep(min(0.002 * 2**attempt, 0.2))
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()
        if self.checkpointer is not None:
            self.checkpointer.stop()


def is_retryable(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


# JSON columns written and read by orjson on both databases (store/json_text.py).
_JSON_TEXT: dict[str, Any] = {"json_serializer": json_text.dumps, "json_deserializer": json_text.loads}


def _create_engine(url: str, *, pool_size: int, echo: bool, autocheckpoint: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            echo=echo,
            # The sqlite3 module's own transaction handling is switched off so that we can say BEGIN IMMEDIATE.
            connect_args={"isolation_level": None, "timeout": 30, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size,
            **_JSON_TEXT,
        )
        event.listen(engine, "connect", _sqlite_pragmas if autocheckpoint else _sqlite_pragmas_checkpointed_apart)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, **_JSON_TEXT)
    event.listen(engine, "checkin", _note_return)
    dialect = engine.dialect
    event.listen(
        engine, "checkout", lambda dbapi_connection, record, _proxy: _ping_if_idle(dialect, dbapi_connection, record)
    )
    return engine


def plan_each_statement(conn: Connection) -> None:
    """For the rest of `conn`'s transaction, PostgreSQL plans every statement for the parameters it is run with.

    psycopg prepares a statement after its fifth run, and PostgreSQL may then settle on one generic plan for all
    later runs. Statements that take a list of keys as one parameter want a plan for how many keys there are: one
    settled on batches of a few keys made batches of 1,000 2-3x slower. Unprepared, a statement is planned for its
    own parameters, and no plan of it is cached. (`plan_cache_mode = force_custom_plan` would do that too, but also
    re-plans the cached queries that check foreign keys, at every row inserted.) The connection prepares again once
    it is back in the pool. Nothing to do on SQLite.
    """
    if conn.dialect.name != "postgresql":
        return
    pooled = conn.connection
    raw: Any = pooled.dbapi_connection
    if raw.prepare_threshold is not None:
        pooled.info["prepare_threshold"] = raw.prepare_threshold  # given back at check-in
        raw.prepare_threshold = None


def _note_return(dbapi_connection: Any, record: Any) -> None:
    record.info["returned_at"] = time.monotonic()
    threshold = record.info.pop("prepare_threshold", None)
    if threshold is not None and dbapi_connection is not None:
        dbapi_connection.prepare_threshold = threshold


def _ping_if_idle(dialect: Dialect, dbapi_connection: Any, record: Any) -> None:
    returned_at = record.info.get("returned_at")
    if returned_at is None or time.monotonic() - returned_at < IDLE_PING_SECONDS:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except Exception as exc:
        # The pool discards this connection and checks out another (a new one if need be).
        raise DisconnectionError("an idle pooled connection no longer answers") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_pragmas_checkpointed_apart(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")  # a Checkpointer does it (store.checkpoints)


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("patron_write") else "BEGIN")
