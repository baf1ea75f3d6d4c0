"""Member progress rows (domain.progress.Progress as JSON): read them back."""

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, select

from patron.domain.progress import EMPTY, Progress
from patron.store.sets import ids_placeholder, set_value
from patron.store.tables import member_progress


def load(conn: Connection, member_ids: Sequence[int]) -> dict[int, Progress]:
    """Each member's progress (members without a row have none yet)."""
    if not member_ids:
        return {}
    rows = conn.execute(_query(conn.dialect.name), {"member_ids": set_value(conn, list(member_ids))}).all()
    return {r.member_id: Progress.from_json(r.state) for r in rows}


@cache
def _query(dialect: str) -> Select[Any]:
    # Built once: every batch of events reads progress, and building the query cost more than running it.
    return select(member_progress.c.member_id, member_progress.c.state).where(
        ids_placeholder(dialect, member_progress.c.member_id, "member_ids")
    )


def load_one(conn: Connection, member_id: int) -> Progress:
    return load(conn, [member_id]).get(member_id, EMPTY)
