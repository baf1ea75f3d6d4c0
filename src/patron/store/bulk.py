"""Many rows in one statement, and their ids chosen before they are written.

SQLAlchemy's multi-row INSERT ... RETURNING binds every value as a parameter: for a thousand rows psycopg
rewrites a query of ten thousand placeholders on every call (it is too long for its cache), which cost more than
the database took to run it. On PostgreSQL the rows travel instead as one JSON parameter unpacked by
jsonb_to_recordset; on SQLite the driver's executemany, which prepares the statement once, is already cheap.
Knowing the ids up front means the rows that point at each other can be written complete, with no UPDATE after.
"""

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Connection, Table, func, insert, select, text
from sqlalchemy.types import TypeDecorator


def allocate_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """`count` new ids for `table`'s `id` column, ascending, for rows the caller then inserts with them.

    On SQLite the caller's transaction holds the write lock (BEGIN IMMEDIATE), so nobody else can take the ids
    above the current maximum before the rows are in.
    """
    if count == 0:
        return []
    if conn.dialect.name == "postgresql":
        drawn = conn.execute(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
            {"table": table.name, "count": count},
        ).scalars()
        return sorted(int(i) for i in drawn)
    highest = conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    return list(range(int(highest) + 1, int(highest) + 1 + count))


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Inserts rows that all name the same columns, with the same column types as `insert(table)` would."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    columns = [table.c[name] for name in rows[0]]
    names = ", ".join(f'"{c.name}"' for c in columns)
    shapes = ", ".join(f'"{c.name}" {c.type.compile(dialect=conn.dialect)}' for c in columns)
    converters = [_to_json_value(c.type, conn) for c in columns]
    payload = json.dumps(
        [{c.name: convert(row[c.name]) for c, convert in zip(columns, converters, strict=True)} for row in rows],
        default=_json_default,
    )
    # Names and types come from the schema, never from input: the rows themselves are the one bound parameter.
    statement = f"INSERT INTO {table.name} ({names}) SELECT {names} FROM jsonb_to_recordset(CAST(:rows AS jsonb))"  # noqa: S608
    conn.execute(text(f"{statement} AS r({shapes})"), {"rows": payload})


def _to_json_value(column_type: Any, conn: Connection) -> Any:
    """What a value becomes before JSON: a column type's own conversion (money to an integer count, times to
    UTC), then text that PostgreSQL reads back as the column's type."""
    if isinstance(column_type, JSON):
        return lambda value: value  # nested as JSON itself: the recordset hands it to the column unchanged
    if isinstance(column_type, TypeDecorator):
        decorator = column_type

        def bind(value: Any) -> Any:
            return decorator.process_bind_param(value, conn.dialect)

        return bind
    return lambda value: value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} through insert_rows")
