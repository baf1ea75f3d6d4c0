"""Member progress rows (domain.progress.Progress as JSON): read them back."""

from collections.abc import Sequence

from sqlalchemy import Connection, select

from patron.domain.progress import EMPTY, Progress
from patron.store.sets import id_in
from patron.store.tables import member_progress


def load(conn: Connection, member_ids: Sequence[int]) -> dict[int, Progress]:
    """Each member's progress (members without a row have none yet)."""
    if not member_ids:
        return {}
    rows = conn.execute(
        select(member_progress.c.member_id, member_progress.c.state).where(
            id_in(conn, member_progress.c.member_id, list(member_ids))
        )
    ).all()
    return {r.member_id: Progress.from_json(r.state) for r in rows}


def load_one(conn: Connection, member_id: int) -> Progress:
    return load(conn, [member_id]).get(member_id, EMPTY)
