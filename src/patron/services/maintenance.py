"""Set-based ledger jobs: activating pending points and expiring lots, in chunks of many members at a time.

Each chunk is one transaction: it locks the chunk's members in id order (the lock every other points change takes
first), changes the lots with one UPDATE, and posts one balanced journal transaction per program with a posting
per member. A second run, or one beside redemptions, finds nothing left to do for the lots already handled.

Expiry writes its postings, balance moves and outbox messages with one statement each from the chunk's per-member
sums, handed over as arrays (PostgreSQL) or one JSON text (SQLite): no Python object per member or per lot.
"""

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, bindparam, func, insert, select, text, update

from patron.domain.ledger import Account, LotStatus, Posting, balanced, plan_spend
from patron.services import announcements, outbox
from patron.services.outbox import EventType
from patron.store import json_text, ledger
from patron.store.database import Database
from patron.store.members import lock_many
from patron.store.sets import id_in
from patron.store.tables import balances, journal, lots, postings
from patron.store.types import UtcDateTime

DEFAULT_CHUNK = 10_000
DEFAULT_WORKERS = 2
Counts = tuple[int, int, int, int]  # lots, points, member postings, journal transactions
Moves = Callable[[int, int], list[ledger.MemberPosting]]


@dataclass(frozen=True, slots=True)
class _Scope:
    """The lots a unit of work may change, all of members it holds locked: a chunk's id range, narrowed to the
    chunk's members, or every lot of one member."""

    after: int = 0
    upper: int = 0
    members: Sequence[int] = ()
    member: int | None = None

    def where(self, conn: Connection) -> ColumnElement[bool]:
        if self.member is not None:
            return lots.c.member_id == self.member
        return (lots.c.id > self.after) & (lots.c.id <= self.upper) & id_in(conn, lots.c.member_id, self.members)


ChunkWork = Callable[[Connection, _Scope], Counts]


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
    workers: int = DEFAULT_WORKERS,
) -> RunReport:
    """Moves what is left of every lot past its expiry from the member's available points to `expired`.

    On PostgreSQL `workers` chunks run at once, each in its own transaction (SQLite writes one at a time).
    """
    return _run_chunks(db, _expiring(now), program_id, chunk, progress, _expire_chunk(now), workers=workers)


def activate(
    db: Database,
    *,
    now: datetime,
    chunk: int = DEFAULT_CHUNK,
    program_id: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunReport:
    """Makes pending points available once their return window has passed; settles refund debts first."""
    return _run_chunks(db, _activating(now), program_id, chunk, progress, _activate_chunk(now))


def expire_due_lots_of(conn: Connection, member_id: int, *, now: datetime) -> int:
    """Expires a member's lots that are past due but not yet reached by `expire`; returns the points expired.

    Whoever spends points calls this first, holding the member lock: points due to expire are not spendable,
    even in the hours before the expiry job gets to them.
    """
    return _expire_chunk(now)(conn, _Scope(member=member_id))[1]


def _run_chunks(
    db: Database,
    due: ColumnElement[bool],
    program_id: int | None,
    chunk: int,
    progress: Callable[[int], None] | None,
    work: ChunkWork,
    *,
    workers: int = 1,
) -> RunReport:
    def first_look(conn: Connection, after: int) -> _Scope | None:
        window = select(lots.c.id, lots.c.member_id).where(due, lots.c.id > after)
        if program_id is not None:
            window = window.where(lots.c.program_id == program_id)
        first = window.order_by(lots.c.id).limit(chunk).subquery()
        # The database sums up the chunk: Python handles a row per member, not a row per lot.
        per_member = conn.execute(select(first.c.member_id, func.max(first.c.id)).group_by(first.c.member_id)).all()
        if not per_member:
            return None
        return _Scope(after=after, upper=max(row[1] for row in per_member), members=[row[0] for row in per_member])

    def locked_work(conn: Connection, scope: _Scope) -> Counts:
        lock_many(conn, list(scope.members))
        # The work reads the lots again under the member locks: a redemption may have spent some of them since
        # the first look. Every writer of lots holds the member lock, so what is read now stays true until
        # commit. A lot of another member that fell due inside the id range meanwhile is left for the next run.
        return work(conn, scope)

    totals = [0, 0, 0, 0]

    def add(counts: Counts) -> None:
        totals[:] = [t + c for t, c in zip(totals, counts, strict=True)]
        if progress is not None:
            progress(counts[0])

    if workers > 1 and not db.is_sqlite:
        _run_in_parallel(db, first_look, locked_work, add, workers)
        return RunReport(*totals)

    def one_chunk(conn: Connection, after: int) -> tuple[Counts, int] | None:
        scope = first_look(conn, after)
        return None if scope is None else (locked_work(conn, scope), scope.upper)

    after = 0
    while (done := db.run(lambda conn: one_chunk(conn, after))) is not None:  # noqa: B023 - called at once
        counts, after = done
        add(counts)
    return RunReport(*totals)


def _run_in_parallel(
    db: Database,
    first_look: Callable[[Connection, int], _Scope | None],
    locked_work: ChunkWork,
    add: Callable[[Counts], None],
    workers: int,
) -> None:
    """Chunks on `workers` connections at once: the database does nearly all of a chunk's work, one CPU per
    connection. This thread takes the first looks, one read transaction each, and hands each chunk (a lot id
    range and its members) to a worker, whose transaction locks the members and does the work. Chunks are
    disjoint id ranges, so running them side by side changes nothing but the order of their commits; two chunks
    sharing a member queue on its lock (taken in id order by both, so never a deadlock)."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="patron-chunks") as pool:
        submitted: deque[Future[Counts]] = deque()
        try:
            after = 0
            while True:
                with db.read() as conn:
                    scope = first_look(conn, after)
                if scope is None:
                    break
                after = scope.upper
                submitted.append(pool.submit(db.run, lambda conn, scope=scope: locked_work(conn, scope)))
                # One chunk waits beyond those running, so a worker that finishes starts the next one at once.
                while len(submitted) > workers:
                    add(submitted.popleft().result())
            while submitted:
                add(submitted.popleft().result())
        except BaseException:
            for waiting in submitted:
                waiting.cancel()
            raise


def _due_per_member(conn: Connection, chunk_lots: ColumnElement[bool]) -> Sequence[Row[Any, Any, Any, Any]]:
    return conn.execute(
        select(lots.c.program_id, lots.c.member_id, func.sum(lots.c.remaining), func.count())
        .where(chunk_lots)
        .group_by(lots.c.program_id, lots.c.member_id)
    ).all()


def _expire_chunk(now: datetime) -> ChunkWork:
    def work(conn: Connection, scope: _Scope) -> Counts:
        if conn.dialect.name == "postgresql":
            due = _take_due_lots_postgres(conn, scope, now)
        else:
            chunk_lots = scope.where(conn) & _expiring(now)
            due = [(int(p), int(m), int(n), int(c)) for p, m, n, c in _due_per_member(conn, chunk_lots)]
            conn.execute(update(lots).where(chunk_lots).values(remaining=0, status=LotStatus.EXPIRED.value))
        return _post_expiries(conn, due, now)

    return work


def _expiring(now: datetime) -> ColumnElement[bool]:
    return (lots.c.status == LotStatus.AVAILABLE.value) & (lots.c.remaining > 0) & (lots.c.expires_at <= now)


def _activating(now: datetime) -> ColumnElement[bool]:
    return (lots.c.status == LotStatus.PENDING.value) & (lots.c.remaining > 0) & (lots.c.available_at <= now)


# One statement reads the due lots once and expires them by their row address. The scan of `lots` sees only the
# id range (or the member), behind OFFSET 0, so the planner always walks the primary key (or the member index):
# with the other conditions in view it would, on estimates alone, AND in a bitmap of the whole expires_at index
# (400 ms a chunk when every lot is due) or visit the chunk through the member index (3 times the pages). The
# UPDATE's subquery shares the statement's snapshot, so it changes exactly the rows summed. The members are a
# hashed set: `= ANY (array)` would compare each lot with the whole array in turn.
_TAKE_DUE = """
WITH due AS MATERIALIZED (
    SELECT l.ctid AS address, l.program_id, l.member_id, l.remaining
    FROM (SELECT ctid, program_id, member_id, remaining, status, expires_at FROM lots WHERE {scan} OFFSET 0) AS l
    WHERE l.status = :available AND l.remaining > 0 AND l.expires_at <= :now{members}
), expired AS (
    UPDATE lots SET remaining = 0, status = :expired WHERE ctid = ANY (ARRAY(SELECT address FROM due)) RETURNING 1
)
SELECT program_id, member_id, sum(remaining), count(*), (SELECT count(*) FROM expired)
FROM due
GROUP BY program_id, member_id
"""
_RANGE_OF_MEMBERS = _TAKE_DUE.format(
    scan="id > :after AND id <= :upper", members=" AND l.member_id IN (SELECT unnest(CAST(:members AS bigint[])))"
)
_ONE_MEMBER = _TAKE_DUE.format(scan="member_id = :member", members="")


def _take_due_lots_postgres(conn: Connection, scope: _Scope, now: datetime) -> list[tuple[int, int, int, int]]:
    """Expires the scope's due lots; returns (program, member, points, lots) per member."""
    statement, params = (
        (_ONE_MEMBER, {"member": scope.member})
        if scope.member is not None
        else (_RANGE_OF_MEMBERS, {"after": scope.after, "upper": scope.upper, "members": _array_text(scope.members)})
    )
    rows = conn.execute(
        text(statement).bindparams(bindparam("now", type_=UtcDateTime())),
        {**params, "now": now, "available": LotStatus.AVAILABLE.value, "expired": LotStatus.EXPIRED.value},
    ).all()
    summed = sum(int(row[3]) for row in rows)
    changed = int(rows[0][4]) if rows else 0
    if changed != summed:  # every writer of lots holds the member lock: a difference is a bug, not a race
        raise RuntimeError(f"expiry summed {summed} lots but changed {changed}")
    return [(int(program), int(member), int(points), int(count)) for program, member, points, count, _ in rows]


def _post_expiries(conn: Connection, due: Sequence[tuple[int, int, int, int]], now: datetime) -> Counts:
    """`due` has a row (program, member, points, lots) per member. Per program: one journal transaction taking
    each member's due points from `available` to the program's `expired` account, the members' balances moved with
    it, and a points.expired message per member."""
    per_program: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for program, member, points, count in due:
        per_program[program].append((member, points, count))
    points_total = 0
    for program_id, moved in sorted(per_program.items()):
        moved.sort()
        total = sum(points for _, points, _ in moved)
        balanced([Posting(Account.AVAILABLE, -total), Posting(Account.EXPIRED, total)])
        points_total += total
        transaction_id = conn.execute(
            insert(journal).returning(journal.c.id),
            {
                "program_id": program_id,
                "member_id": None,
                "kind": "expire",
                "memo": f"expire: {total} points of {len(moved)} member(s)",
                "occurred_at": now,
                "posted_at": now,
            },
        ).scalar_one()
        params = {
            "transaction_id": transaction_id,
            "program_id": program_id,
            "now": now,
            "type": EventType.POINTS_EXPIRED.value,
            **_per_member_rows(conn, moved),
        }
        for statement in _EXPIRY_WRITES[conn.dialect.name]:
            conn.execute(statement, params)
        conn.execute(
            insert(postings),
            {
                "transaction_id": transaction_id,
                "program_id": program_id,
                "member_id": None,
                "account": Account.EXPIRED.value,
                "amount": total,
            },
        )
    lots_total = sum(count for moved in per_program.values() for _, _, count in moved)
    return lots_total, points_total, sum(len(m) for m in per_program.values()), len(per_program)


def _per_member_rows(conn: Connection, moved: list[tuple[int, int, int]]) -> dict[str, Any]:
    """(member, points, lots) rows and a new message id for each, as the parameters `_EXPIRY_WRITES` unpack."""
    message_ids = [outbox.new_message_id() for _ in moved]
    if conn.dialect.name == "postgresql":
        return {
            "members": _array_text(m for m, _, _ in moved),
            "points": _array_text(p for _, p, _ in moved),
            "lots": _array_text(n for _, _, n in moved),
            "message_ids": _array_text(message_ids),
        }
    return {"rows": json_text.dumps([[*row, message] for row, message in zip(moved, message_ids, strict=True)])}


def _array_text(values: Iterable[int | str]) -> str:
    """A PostgreSQL array literal of integers or message ids (neither ever needs quoting): psycopg's own list
    adapter looks at every element, which cost more client time than the statements took on the server."""
    return "{" + ",".join(map(str, values)) + "}"


_MOVED = {
    "postgresql": """unnest(CAST(:members AS bigint[]), CAST(:points AS bigint[]), CAST(:lots AS bigint[]),
        CAST(:message_ids AS text[])) AS d(member_id, points, lots, message_id)""",
    "sqlite": """(SELECT r.value ->> 0 AS member_id, r.value ->> 1 AS points, r.value ->> 2 AS lots,
        r.value ->> 3 AS message_id FROM json_each(:rows) AS r) AS d""",
}
_OBJECT = {"postgresql": "json_build_object", "sqlite": "json_object"}
_EXPIRY_WRITES = {
    dialect: (
        text(f"""INSERT INTO postings (transaction_id, program_id, member_id, account, amount)
        SELECT :transaction_id, :program_id, d.member_id, '{Account.AVAILABLE.value}', -d.points FROM {moved}"""),  # noqa: S608 - constants
        text(f"""UPDATE balances SET available = balances.available - d.points
        FROM {moved} WHERE balances.member_id = d.member_id"""),  # noqa: S608 - constants
        text(f"""INSERT INTO outbox (message_id, program_id, member_id, type, data, occurred_at, created_at)
        SELECT d.message_id, :program_id, d.member_id, :type, {_OBJECT[dialect]}('points', d.points, 'lots', d.lots),
            :now, :now
        FROM {moved}""").bindparams(bindparam("now", type_=UtcDateTime())),  # noqa: S608 - constants
    )
    for dialect, moved in _MOVED.items()
}


def _activate_chunk(now: datetime) -> ChunkWork:
    def work(conn: Connection, scope: _Scope) -> Counts:
        chunk_lots = scope.where(conn) & _activating(now)
        due = _due_per_member(conn, chunk_lots)
        conn.execute(update(lots).where(chunk_lots).values(status=LotStatus.AVAILABLE.value))
        outbox.emit(conn, announcements.lots_moved(EventType.POINTS_ACTIVATED, due, now), now=now)
        counts = _post_per_program(conn, due, now, kind="activate", moves=_activation_moves)
        _settle_debts(conn, sorted({row[1] for row in due}), now)
        return counts

    return work


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
