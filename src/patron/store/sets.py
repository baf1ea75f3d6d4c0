"""A set of values as ONE bound parameter: compiling `IN (:p1, ..., :p10000)` costs more than running it.

`id_in`/`text_in` put the values in the clause. For a statement built once and run many times (the hot paths of
ingestion), `ids_placeholder`/`texts_placeholder` give the clause with a named parameter and no value, and
`set_value` what to bind to it on each run.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.functions import func

from patron.store import json_text


def id_in(conn: Connection, id_column: ColumnElement[int], ids: Sequence[int]) -> ColumnElement[bool]:
    return _one_param_in(conn.dialect.name, id_column, f"set_{id_column.key}", BigInteger(), set_value(conn, ids))


def text_in(conn: Connection, text_column: ColumnElement[str], values: Sequence[str]) -> ColumnElement[bool]:
    return _one_param_in(conn.dialect.name, text_column, f"set_{text_column.key}", String(), set_value(conn, values))


def ids_placeholder(dialect: str, id_column: ColumnElement[int], name: str) -> ColumnElement[bool]:
    """`id_column` is one of the ids bound to `name` (with `set_value`) when the statement runs."""
    return _one_param_in(dialect, id_column, name, BigInteger(), None)


def texts_placeholder(dialect: str, text_column: ColumnElement[str], name: str) -> ColumnElement[bool]:
    """`text_column` is one of the texts bound to `name` (with `set_value`) when the statement runs."""
    return _one_param_in(dialect, text_column, name, String(), None)


def set_value(conn: Connection, values: Sequence[Any]) -> Any:
    """What a placeholder of these helpers is bound to: an array on PostgreSQL, a JSON text on SQLite."""
    return list(values) if conn.dialect.name == "postgresql" else json_text.dumps(list(values))


def _one_param_in(
    dialect: str, column: ColumnElement[Any], name: str, element_type: BigInteger | String, value: Any
) -> ColumnElement[bool]:
    # Without a value the parameter is required: a statement run without binding it fails instead of matching none.
    given = {} if value is None else {"value": value}
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(element_type), **given))
    # SQLite: the values travel as one JSON text and json_each unpacks them inside the engine.
    unpacked = func.json_each(bindparam(name, type_=String(), **given)).table_valued("value")
    return column.in_(select(unpacked.c.value))
