"""Many rows in one statement, and their ids chosen before they are written.

SQLAlchemy's multi-row INSERT ... RETURNING binds every value as a parameter: for a thousand rows psycopg
rewrites a query of ten thousand placeholders on every call (it is too long for its cache), which cost more than
the database took to run it. On PostgreSQL many rows go in with COPY (no statement text to build, and the server
parses plain column text rather than a JSON document), a few as one JSON parameter unpacked by json_to_recordset
(one round trip where COPY takes two); on SQLite the driver's executemany, which prepares the statement once,
given values its column types have already converted. Knowing the ids up front means the rows that point at each
other can be written complete, with no UPDATE after.
"""

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cache, lru_cache, partial
from typing import Any

from sqlalchemy import JSON, Column, Connection, Result, Select, Table, TextClause, bindparam, func, select, text, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeDecorator

from patron.store.json_text import dumps_plain
from patron.store.sets import set_value, texts_placeholder
from patron.store.types import MoneyColumn, UtcDateTime


def allocate_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """`count` new ids for `table`'s `id` column, ascending, for rows the caller then inserts with them.

    On SQLite the caller's transaction holds the write lock (BEGIN IMMEDIATE), so nobody else can take the ids
    above the current maximum before the rows are in.
    """
    if count == 0:
        return []
    if conn.dialect.name == "postgresql":
        drawn = conn.execute(_DRAW_IDS, {"table": table.name, "count": count}).scalars()
        return sorted(int(i) for i in drawn)
    highest = conn.execute(_highest_id(table)).scalar_one()
    return list(range(int(highest) + 1, int(highest) + 1 + count))


def allocate_ids_of(conn: Connection, wanted: Sequence[tuple[Table, int]]) -> list[list[int]]:
    """As `allocate_ids` for several tables at once (one round trip on PostgreSQL): the ids of each, in order."""
    if conn.dialect.name != "postgresql" or sum(1 for _, count in wanted if count) < 2:
        return [allocate_ids(conn, table, count) for table, count in wanted]
    drawn: list[list[int]] = [[] for _ in wanted]
    names = [table.name for table, _ in wanted]
    for position, value in conn.execute(_DRAW_IDS_OF, {"tables": names, "counts": [count for _, count in wanted]}):
        drawn[int(position) - 1].append(int(value))
    return [sorted(ids) for ids in drawn]


# The sequence is looked up once (a materialised CTE): as an argument of nextval, pg_get_serial_sequence would
# search the catalogue again for every id, which took most of the statement's time.
_DRAW_IDS = text(
    "WITH s AS MATERIALIZED (SELECT CAST(pg_get_serial_sequence(:table, 'id') AS regclass) AS seq) "
    "SELECT nextval(s.seq) FROM s, generate_series(1, :count)"
)


_DRAW_IDS_OF = text(
    "WITH s AS MATERIALIZED (SELECT t.position, CAST(pg_get_serial_sequence(t.name, 'id') AS regclass) AS seq, "
    "t.count FROM unnest(CAST(:tables AS text[]), CAST(:counts AS integer[])) WITH ORDINALITY AS t(name, count, "
    "position)) SELECT s.position, nextval(s.seq) FROM s, generate_series(1, s.count)"
)


@cache
def _highest_id(table: Table) -> Select[Any]:
    return select(func.coalesce(func.max(table.c.id), 0))


def insert_rows(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *, together: "Together | None" = None
) -> None:
    """Inserts rows that all name the same columns, with the same column types as `insert(table)` would. With
    `together`, a few rows on PostgreSQL wait to go in with its other writes."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        _executemany(conn, table, rows)
        return
    if len(rows) >= COPY_ROWS:
        if together is not None:
            together.flush()  # the rows may point at held ones: foreign keys are checked as COPY ends
        _copy_rows(conn, table, rows)
        return
    statement = _insert_recordset(table, tuple(rows[0]), conn.dialect)
    run_or_hold(conn, statement, {"rows": _recordset_json(conn, table, rows)}, together)


class Together:
    """PostgreSQL writes held back to go to the server as one statement, each a data-modifying CTE of it: the
    inserts of a few events cost one round trip instead of one each, most of the time of a small batch. On SQLite,
    where a statement costs no round trip, each write runs at once.

    The writes run with one snapshot: none may read or change rows another one writes (foreign keys are checked at
    the end of the statement, after all of them). `flush` sends them; a caller about to read what they write, or to
    rely on the order of writing, flushes first.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._holds = conn.dialect.name == "postgresql"
        self._writes: list[tuple[TextClause, dict[str, Any]]] = []

    def add(self, statement: TextClause, parameters: dict[str, Any]) -> None:
        if self._holds:
            self._writes.append((statement, parameters))
        else:
            self._conn.execute(statement, parameters)

    def flush(self) -> None:
        writes, self._writes = self._writes, []
        if len(writes) == 1:
            self._conn.execute(*writes[0])
        elif writes:
            parameters = {f"w{i}_{name}": value for i, (_, given) in enumerate(writes) for name, value in given.items()}
            self._conn.execute(_together(tuple(statement.text for statement, _ in writes)), parameters)


def run_or_hold(conn: Connection, statement: TextClause, parameters: dict[str, Any], together: Together | None) -> None:
    """Runs the statement now, or holds it in `together` if there is one."""
    if together is None:
        conn.execute(statement, parameters)
    else:
        together.add(statement, parameters)


@lru_cache(maxsize=64)
def _together(sqls: tuple[str, ...]) -> TextClause:
    renamed = [_BIND.sub(lambda found, i=i: f":w{i}_{found.group(1)}", sql) for i, sql in enumerate(sqls)]  # type: ignore[misc]
    return text("WITH " + ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(renamed)) + " SELECT 1")


_BIND = re.compile(r"(?<![:\w]):(\w+)")  # a bound parameter, not a :: cast


COPY_ROWS = 32  # below this, COPY's second round trip costs more than the JSON saves


def _executemany(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], on_conflict: str = "") -> None:
    """The driver's executemany with each value through its column type's own bind processing, as
    `conn.execute(insert(table), rows)` does, without SQLAlchemy's per-row work around it (three quarters of
    the time of a thousand rows on SQLite)."""
    columns = [table.c[name] for name in rows[0]]
    dialect = conn.dialect
    pairs = [(c.name, _bind_processor(c.type, dialect)) for c in columns]
    values = [tuple([row[n] if f is None else f(row[n]) for n, f in pairs]) for row in rows]
    quoted = ", ".join(f'"{c.name}"' for c in columns)  # names from the schema, never from input
    marks = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({quoted}) VALUES ({marks}){on_conflict}", values)  # noqa: S608


def _bind_processor(column_type: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    process: Callable[[Any], Any] | None = column_type.dialect_impl(dialect).bind_processor(dialect)
    if process is None or not isinstance(column_type, UtcDateTime | MoneyColumn):
        return process
    # The rows of a batch share a few moments and amounts (the time of writing, each event's time in several
    # tables), and turning a time into SQLite's text is most of the cost: each distinct value is converted once.
    seen: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        found = seen.get(value)
        if found is None:
            found = process(value)  # refuses a naive time, which never equals an aware one already seen
            if found is not None:
                seen[value] = found
        return found

    return convert


def _copy_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """COPY of dict rows; the values pass the columns' own conversions first, as they would in `insert(table)`."""
    columns = [table.c[name] for name in rows[0]]
    names = [c.name for c in columns]
    converters = [_to_copy_value(c.type, conn) for c in columns]
    if all(convert is None for convert in converters):
        values: Iterable[Sequence[Any]] = ([row[name] for name in names] for row in rows)
    else:
        pairs = list(zip(names, converters, strict=True))
        values = ([row[n] if f is None else f(row[n]) for n, f in pairs] for row in rows)
    copy_values(conn, table, names, values)


def copy_values(conn: Connection, table: Table, names: Sequence[str], values: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL only: COPY of rows given as plain values in the order of `names`, already what the columns
    store (no type conversion), on the caller's connection and so inside its transaction."""
    quoted = ", ".join(f'"{table.c[name].name}"' for name in names)  # names from the schema, never from input
    statement = f"COPY {table.name} ({quoted}) FROM STDIN"
    driver_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(statement) as copy:
            for row in values:
                copy.write_row(row)
    except driver_error as exc:
        # Raised as SQLAlchemy raises the driver's errors of every other statement: callers retry a lost race on
        # IntegrityError, and Database.run a deadlock or serialization failure on DBAPIError.
        raise DBAPIError.instance(statement, None, exc, driver_error, dialect=conn.dialect) from exc
    finally:
        cursor.close()


def _to_copy_value(column_type: Any, conn: Connection) -> Callable[[Any], Any] | None:
    """What a value becomes for COPY (None: nothing): JSON documents as their text (the server reads every
    COPY field as its column's type), a column type's own conversion (money to an integer count); times only
    refused when naive, since the server stores an aware time as the same instant whatever its zone."""
    if isinstance(column_type, JSON):
        return lambda value: None if value is None else dumps_plain(value)
    if isinstance(column_type, UtcDateTime):
        return partial(_aware, column_type, conn.dialect)
    if isinstance(column_type, TypeDecorator):
        return partial(column_type.process_bind_param, dialect=conn.dialect)
    return None


def _aware(column_type: UtcDateTime, dialect: Dialect, value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return column_type.process_bind_param(value, dialect)  # refuses it


def upsert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    replace: Sequence[str],
    together: "Together | None" = None,
) -> None:
    """As `insert_rows`, but a row whose `keys` are taken replaces the `replace` columns of the stored one."""
    if not rows:
        return
    conflict = ", ".join(f'"{table.c[k].name}"' for k in keys)
    updates = ", ".join(f'"{table.c[c].name}" = EXCLUDED."{table.c[c].name}"' for c in replace)
    if conn.dialect.name != "postgresql":
        _executemany(conn, table, rows, f" ON CONFLICT ({conflict}) DO UPDATE SET {updates}")
        return
    statement = _insert_recordset(
        table, tuple(rows[0]), conn.dialect, f" ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    )
    run_or_hold(conn, statement, {"rows": _recordset_json(conn, table, rows)}, together)


@lru_cache(maxsize=256)
def _insert_recordset(table: Table, names: tuple[str, ...], dialect: Dialect, suffix: str = "") -> TextClause:
    """INSERT of the rows of the one parameter `:rows` (a JSON array of objects with these names), built once
    for each shape: a text clause costs more to build than the server takes to run a few rows."""
    columns = [table.c[name] for name in names]
    quoted = ", ".join(f'"{c.name}"' for c in columns)
    shapes = ", ".join(f'"{c.name}" {c.type.compile(dialect=dialect)}' for c in columns)
    # json_to_recordset, not jsonb_: the text is parsed once as it stands, which took half the time of building
    # jsonb from it (mostly the stored receipts and messages nested in the rows). Names and types come from the
    # schema, never from input: the rows themselves are the one bound parameter.
    return text(
        f"INSERT INTO {table.name} ({quoted}) SELECT {quoted} "  # noqa: S608
        f"FROM json_to_recordset(CAST(:rows AS json)) AS r({shapes}){suffix}"
    )


def _recordset_json(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> str:
    """The rows as the JSON `_insert_recordset` reads, each value through its column's own conversion first."""
    converting = [
        (name, convert) for name in rows[0] if (convert := _to_json_value(table.c[name].type, conn)) is not None
    ]
    if converting:
        converted = []
        for row in rows:
            out = dict(row)
            for name, convert in converting:
                out[name] = convert(out[name])
            converted.append(out)
        rows = converted
    return dumps_plain(rows)


def _to_json_value(column_type: Any, conn: Connection) -> Callable[[Any], Any] | None:
    """What a value becomes before JSON (None: nothing, it goes as it is): a column type's own conversion (money
    to an integer count, times to UTC), then text that PostgreSQL reads back as the column's type."""
    if isinstance(column_type, JSON):
        return None  # nested as JSON itself: the recordset hands it to the column unchanged
    if isinstance(column_type, UtcDateTime):
        return _utc_text(column_type, conn)
    if isinstance(column_type, TypeDecorator):
        decorator = column_type

        def bind(value: Any) -> Any:
            return decorator.process_bind_param(value, conn.dialect)

        return bind
    return None


def _utc_text(column_type: UtcDateTime, conn: Connection) -> Callable[[datetime | None], str | None]:
    """The column's own conversion to UTC, as ISO text. The rows of a batch share a few moments (the time of
    writing, the events' times), so each distinct one is converted once."""
    seen: dict[datetime, str | None] = {}

    def convert(value: datetime | None) -> str | None:
        if value is None:
            return None
        found = seen.get(value)
        if found is None or value.tzinfo is None:  # a naive time is refused each time, whatever it equals
            bound = column_type.process_bind_param(value, conn.dialect)
            found = seen[value] = None if bound is None else bound.isoformat()
        return found

    return convert


def rows_by_key(
    conn: Connection,
    columns: Sequence[Column[Any]],
    *,
    scope: Column[int],
    scope_id: int,
    key: Column[str],
    values: Sequence[str],
) -> Result[Any]:
    """The rows (at most one per value) whose `key` is one of `values`, among those whose `scope` is `scope_id`
    (a program's rows, say); `scope` and `key` together must name a unique index.

    On PostgreSQL each value is looked up in that index on its own (a LATERAL subquery per value): `key =
    ANY(:values)` lets the planner scan every row of the scope and test each against the whole list, which it
    does on tables filled since their last ANALYZE (a first import) and in the generic plan psycopg's prepared
    statements come to, and which then grows with the table (2.5 s for 1,000 members out of 23,000).
    """
    statement = _rows_by_key(conn.dialect.name, tuple(columns), scope, key)
    return conn.execute(statement, {"scope_id": scope_id, "wanted": set_value(conn, values)})


@lru_cache(maxsize=64)
def _rows_by_key(dialect: str, columns: tuple[Column[Any], ...], scope: Column[int], key: Column[str]) -> Select[Any]:
    """The statement of `rows_by_key`, built once per shape: building the lateral join took 0.7 ms a call."""
    in_scope = scope == bindparam("scope_id")
    if dialect != "postgresql":
        return select(*columns).where(in_scope, texts_placeholder(dialect, key, "wanted"))
    wanted = func.unnest(bindparam("wanted", type_=ARRAY(key.type))).table_valued("value").render_derived("wanted")
    found = select(*columns).where(in_scope, key == wanted.c.value).limit(1).lateral("found")
    return select(*found.c).select_from(wanted.join(found, true()))
