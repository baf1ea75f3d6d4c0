"""A set of values as ONE bound parameter: compiling `IN (:p1, ..., :p10000)` costs more than running it."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.functions import func

from patron.store import json_text


def id_in(conn: Connection, id_column: ColumnElement[int], ids: Sequence[int]) -> ColumnElement[bool]:
    return _one_param_in(conn, id_column, list(ids), BigInteger())


def text_in(conn: Connection, text_column: ColumnElement[str], values: Sequence[str]) -> ColumnElement[bool]:
    return _one_param_in(conn, text_column, list(values), String())


def _one_param_in(
    conn: Connection, column: ColumnElement[Any], values: list[Any], element_type: BigInteger | String
) -> ColumnElement[bool]:
    name = f"set_{column.key}"
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(name, values, type_=ARRAY(element_type)))
    # SQLite: the values travel as one JSON text and json_each unpacks them inside the engine.
    unpacked = func.json_each(bindparam(name, json_text.dumps(values))).table_valued("value")
    return column.in_(select(unpacked.c.value))
