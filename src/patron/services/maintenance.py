"""Set-based ledger jobs: activating pending points and expiring lots, in chunks of many members at a time.

Each chunk is one transaction: it locks the chunk's members in id order (the lock every other points change takes
first), changes the lots with one UPDATE, and posts one balanced journal transaction per program with a posting
per member. A second run, or one beside redemptions, finds nothing left to do for the lots already handled.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, func, select, update

from patron.domain.ledger import Account, LotStatus, Posting, plan_spend
from patron.services import announcements, outbox
from patron.services.outbox import EventType
from patron.store import ledger
from patron.store.database import Database
from patron.store.members import lock_many
from patron.store.sets import id_in
from patron.store.tables import balances, lots

DEFAULT_CHUNK = 10_000
Counts = tuple[int, int, int, int]  # lots, points, member postings, journal transactions
ChunkWork = Callable[[Connection, ColumnElement[bool]], Counts]
Moves = Callable[[int, int], list[ledger.MemberPosting]]


@dataclass(frozen=True, slots=True)
class RunReport:
    lots: int
    points: int
    members: int
    transactions: int


def expire(
    db: Database,
    *,
    now: datetime,
    chunk: int = DEFAULT_CHUNK,
    program_id: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunReport:
    """Moves what is left of every lot past its expiry from the member's available points to `expired`."""
    due = (lots.c.status == LotStatus.AVAILABLE.value) & (lots.c.remaining > 0) & (lots.c.expires_at <= now)
    return _run_chunks(db, due, program_id, chunk, progress, _expire_chunk(now))


def activate(
    db: Database,
    *,
    now: datetime,
    chunk: int = DEFAULT_CHUNK,
    program_id: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunReport:
    """Makes pending points available once their return window has passed; settles refund debts first."""
    due = (lots.c.status == LotStatus.PENDING.value) & (lots.c.remaining > 0) & (lots.c.available_at <= now)
    return _run_chunks(db, due, program_id, chunk, progress, _activate_chunk(now))


def expire_due_lots_of(conn: Connection, member_id: int, *, now: datetime) -> int:
    """Expires a member's lots that are past due but not yet reached by `expire`; returns the points expired.

    Whoever spends points calls this first, holding the member lock: points due to expire are not spendable,
    even in the hours before the expiry job gets to them.
    """
    due = (
        (lots.c.member_id == member_id)
        & (lots.c.status == LotStatus.AVAILABLE.value)
        & (lots.c.remaining > 0)
        & (lots.c.expires_at <= now)
    )
    return _expire_chunk(now)(conn, due)[1]


def _run_chunks(
    db: Database,
    due: ColumnElement[bool],
    program_id: int | None,
    chunk: int,
    progress: Callable[[int], None] | None,
    work: ChunkWork,
) -> RunReport:
    def one_chunk(conn: Connection, after: int) -> tuple[Counts, int] | None:
        window = select(lots.c.id, lots.c.member_id).where(due, lots.c.id > after)
        if program_id is not None:
            window = window.where(lots.c.program_id == program_id)
        first = window.order_by(lots.c.id).limit(chunk).subquery()
        # The database sums up the chunk: Python handles a row per member, not a row per lot.
        per_member = conn.execute(select(first.c.member_id, func.max(first.c.id)).group_by(first.c.member_id)).all()
        if not per_member:
            return None
        member_ids = [row[0] for row in per_member]
        upper = max(row[1] for row in per_member)
        lock_many(conn, member_ids)
        # Read again under the member locks: a redemption may have spent some of these lots since the first
        # look. Every writer of lots holds the member lock, so what is read now stays true until commit. A lot
        # of another member that fell due inside the id range meanwhile is left for the next run.
        chunk_lots = (lots.c.id > after) & (lots.c.id <= upper) & due & id_in(conn, lots.c.member_id, member_ids)
        return work(conn, chunk_lots), upper

    totals = [0, 0, 0, 0]
    after = 0
    while (done := db.run(lambda conn: one_chunk(conn, after))) is not None:  # noqa: B023 - called at once
        counts, after = done
        totals = [t + c for t, c in zip(totals, counts, strict=True)]
        if progress is not None:
            progress(counts[0])
    return RunReport(*totals)


def _due_per_member(conn: Connection, chunk_lots: ColumnElement[bool]) -> Sequence[Row[Any, Any, Any, Any]]:
    return conn.execute(
        select(lots.c.program_id, lots.c.member_id, func.sum(lots.c.remaining), func.count())
        .where(chunk_lots)
        .group_by(lots.c.program_id, lots.c.member_id)
    ).all()


def _expire_chunk(now: datetime) -> ChunkWork:
    def work(conn: Connection, chunk_lots: ColumnElement[bool]) -> Counts:
        due = _due_per_member(conn, chunk_lots)
        conn.execute(update(lots).where(chunk_lots).values(remaining=0, status=LotStatus.EXPIRED.value))
        outbox.emit(conn, announcements.lots_moved(EventType.POINTS_EXPIRED, due, now), now=now)
        return _post_per_program(conn, due, now, kind="expire", moves=_expiry_moves)

    return work


def _activate_chunk(now: datetime) -> ChunkWork:
    def work(conn: Connection, chunk_lots: ColumnElement[bool]) -> Counts:
        due = _due_per_member(conn, chunk_lots)
        conn.execute(update(lots).where(chunk_lots).values(status=LotStatus.AVAILABLE.value))
        outbox.emit(conn, announcements.lots_moved(EventType.POINTS_ACTIVATED, due, now), now=now)
        counts = _post_per_program(conn, due, now, kind="activate", moves=_activation_moves)
        _settle_debts(conn, sorted({row[1] for row in due}), now)
        return counts

    return work


def _expiry_moves(member_id: int, points: int) -> list[ledger.MemberPosting]:
    return [ledger.MemberPosting(member_id, Account.AVAILABLE, -points)]


def _activation_moves(member_id: int, points: int) -> list[ledger.MemberPosting]:
    return [
        ledger.MemberPosting(member_id, Account.PENDING, -points),
        ledger.MemberPosting(member_id, Account.AVAILABLE, points),
    ]


def _post_per_program(
    conn: Connection, due: Sequence[Row[Any, Any, Any, Any]], now: datetime, *, kind: str, moves: Moves
) -> Counts:
    """`due` has a row (program, member, points, lots) per member of the chunk."""
    per_program: dict[int, dict[int, int]] = defaultdict(dict)
    for program, member, points, _ in due:
        per_program[program][member] = int(points)
    points = 0
    for program_id, per_member in sorted(per_program.items()):
        total = sum(per_member.values())
        points += total
        ledger.post(
            conn,
            program_id=program_id,
            member_id=None,
            kind=kind,
            occurred_at=now,
            posted_at=now,
            memo=f"{kind}: {total} points of {len(per_member)} member(s)",
            member_postings=[p for member, n in sorted(per_member.items()) for p in moves(member, n)],
            program_postings=[Posting(Account.EXPIRED, total)] if kind == "expire" else [],
        )
    return sum(row[3] for row in due), points, sum(len(m) for m in per_program.values()), len(per_program)


def _settle_debts(conn: Connection, member_ids: list[int], now: datetime) -> None:
    """Members who owe points from a refund pay them from what just became available."""
    owing = conn.execute(
        select(balances.c.member_id, balances.c.debt, balances.c.available, lots.c.program_id)
        .join(lots, lots.c.member_id == balances.c.member_id)
        .where(balances.c.member_id.in_(member_ids), balances.c.debt < 0, balances.c.available > 0)
        .distinct()
    ).all()
    for row in owing:
        settle = min(-row.debt, row.available)
        ledger.post(
            conn,
            program_id=row.program_id,
            member_id=row.member_id,
            kind="settle",
            occurred_at=now,
            posted_at=now,
            memo=f"{settle} points settle points owed from a refund",
            member_postings=[
                ledger.MemberPosting(row.member_id, Account.AVAILABLE, -settle),
                ledger.MemberPosting(row.member_id, Account.DEBT, settle),
            ],
        )
        ledger.debit_lots(conn, plan_spend(ledger.open_lots(conn, row.member_id), settle))
