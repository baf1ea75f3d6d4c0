"""INSERT ... ON CONFLICT for the two dialects Patron runs on."""

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_or_ignore(conn: Connection, table: Table, values: dict[str, Any] | list[dict[str, Any]]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), values)


def insert_or_add(
    conn: Connection, table: Table, rows: list[dict[str, Any]], *, keys: list[str], add: list[str]
) -> None:
    """Inserts rows; where the key exists, adds the `add` columns to the stored ones."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={c: table.c[c] + statement.excluded[c] for c in add}
    )
    conn.execute(statement, rows)
