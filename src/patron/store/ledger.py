"""Writes to the journal, postings, cached balances and lots. Every write here runs inside the caller's
transaction; nothing commits on its own."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, select, text, update

from patron.domain.engine import NewLot
from patron.domain.ledger import Account, Lot, LotDebit, LotStatus, Posting, balanced
from patron.store import json_text
from patron.store.bulk import COPY_ROWS, Together, copy_values, run_or_hold
from patron.store.tables import balances, journal, lots, postings


@dataclass(frozen=True, slots=True)
class MemberPosting:
    """A posting on some member's account, for transactions that span members (expiry, activation)."""

    member_id: int
    account: Account
    amount: int


def post(
    conn: Connection,
    *,
    program_id: int,
    member_id: int | None,
    kind: str,
    occurred_at: datetime,
    posted_at: datetime,
    memo: str,
    member_postings: Sequence[MemberPosting] = (),
    program_postings: Sequence[Posting] = (),
    event_row_id: int | None = None,
    program_version: int | None = None,
    reference: str | None = None,
) -> int:
    """Writes one balanced journal transaction and moves the cached balances with it. Returns its id."""
    return post_reading_balance(
        conn,
        program_id=program_id,
        member_id=member_id,
        kind=kind,
        occurred_at=occurred_at,
        posted_at=posted_at,
        memo=memo,
        member_postings=member_postings,
        program_postings=program_postings,
        event_row_id=event_row_id,
        program_version=program_version,
        reference=reference,
    )[0]


def post_reading_balance(
    conn: Connection,
    *,
    program_id: int,
    member_id: int | None,
    kind: str,
    occurred_at: datetime,
    posted_at: datetime,
    memo: str,
    member_postings: Sequence[MemberPosting] = (),
    program_postings: Sequence[Posting] = (),
    event_row_id: int | None = None,
    program_version: int | None = None,
    reference: str | None = None,
) -> tuple[int, tuple[int, int, int] | None]:
    """As `post`, and the balance (available, pending, debt) it leaves when it moves one member's accounts, read
    from the balance update itself rather than by a query more."""
    balanced([Posting(p.account, p.amount) for p in member_postings] + list(program_postings))
    transaction_id = conn.execute(
        _INSERT_JOURNAL,
        {
            "program_id": program_id,
            "member_id": member_id,
            "kind": kind,
            "event_id": event_row_id,
            "program_version": program_version,
            "reference": reference,
            "memo": memo,
            "occurred_at": occurred_at,
            "posted_at": posted_at,
        },
    ).scalar_one()
    rows = [
        {
            "transaction_id": transaction_id,
            "program_id": program_id,
            "member_id": p.member_id,
            "account": p.account.value,
            "amount": p.amount,
        }
        for p in member_postings
        if p.amount
    ] + [
        {
            "transaction_id": transaction_id,
            "program_id": program_id,
            "member_id": None,
            "account": p.account.value,
            "amount": p.amount,
        }
        for p in program_postings
        if p.amount
    ]
    if len(rows) > _BULK_ROWS:
        insert_postings(conn, program_id, [[transaction_id, r["member_id"], r["account"], r["amount"]] for r in rows])
    elif rows:
        conn.execute(_INSERT_POSTINGS, rows)
    return int(transaction_id), move_balances(conn, member_postings)


# Built once: a statement object reused keeps its cache key, so executing it skips building and keying it anew.
_INSERT_JOURNAL = insert(journal).returning(journal.c.id)
_INSERT_POSTINGS = insert(postings)
_INSERT_LOTS = insert(lots)


def member_postings(member_id: int, decided: Iterable[Posting]) -> tuple[list[MemberPosting], list[Posting]]:
    """Splits an engine decision's postings into the member's side and the program's side."""
    mine, program = [], []
    for p in decided:
        if p.account.is_member_account:
            mine.append(MemberPosting(member_id, p.account, p.amount))
        else:
            program.append(p)
    return mine, program


def move_balances(
    conn: Connection, moves: Sequence[MemberPosting], *, together: Together | None = None
) -> tuple[int, int, int] | None:
    """Returns the new (available, pending, debt) when the moves concern one member, None otherwise. With
    `together`, the moves go with its other writes, and nothing is returned."""
    deltas: dict[int, list[int]] = {}
    for p in moves:
        delta = deltas.setdefault(p.member_id, [0, 0, 0])
        delta[_BALANCE_COLUMN[p.account]] += p.amount
    if len(deltas) == 1 and together is None:
        ((member_id, (available, pending, debt)),) = deltas.items()
        row = conn.execute(
            _MOVE_ONE,
            {"moved_member": member_id, "add_available": available, "add_pending": pending, "add_debt": debt},
        ).one()
        return int(row.available), int(row.pending), int(row.debt)
    if deltas:
        # Many members at once (a batch of events, expiry, activation): one statement joining the list of deltas,
        # instead of one UPDATE per member.
        ordered = sorted(deltas.items())
        if conn.dialect.name == "postgresql":
            # As arrays, not JSON: the planner knows how many rows unnest gives and looks each member up by the
            # key. Told 100 rows by jsonb_array_elements, it read the whole balances table for a batch of 8.
            columns = {"members": [m for m, _ in ordered]}
            columns |= {name: [d[i] for _, d in ordered] for i, name in enumerate(("available", "pending", "debt"))}
            run_or_hold(conn, _BULK_MOVE["postgresql"], columns, together)
        else:
            deltas_json = json_text.dumps([[m, *d] for m, d in ordered])
            run_or_hold(conn, _BULK_MOVE["sqlite"], {"deltas": deltas_json}, together)
    return None


_MOVE_ONE = (
    update(balances)
    .where(balances.c.member_id == bindparam("moved_member"))
    .values(
        available=balances.c.available + bindparam("add_available"),
        pending=balances.c.pending + bindparam("add_pending"),
        debt=balances.c.debt + bindparam("add_debt"),
    )
    .returning(balances.c.available, balances.c.pending, balances.c.debt)
)


_BULK_ROWS = 32
_BULK_POSTINGS = {
    "postgresql": text(
        """
        INSERT INTO postings (transaction_id, program_id, member_id, account, amount)
        SELECT (r.value->>0)::bigint, :program_id, (r.value->>1)::bigint, r.value->>2, (r.value->>3)::bigint
        FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r
    """
    ),
    "sqlite": text(
        """
        INSERT INTO postings (transaction_id, program_id, member_id, account, amount)
        SELECT r.value ->> 0, :program_id, r.value ->> 1, r.value ->> 2, r.value ->> 3
        FROM json_each(:rows) AS r
    """
    ),
}


def insert_postings(
    conn: Connection, program_id: int, rows: list[list[Any]], *, together: Together | None = None
) -> None:
    """Postings given as [transaction id, member id or None, account, amount], in one statement: many
    transactions' worth (a batch of events, an expiry chunk) cost one round trip, not a bind per row."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_ROWS:
        # A batch's thousands of postings: COPY took a tenth of the time the server spent unpacking them from JSON.
        if together is not None:
            together.flush()  # the postings' journal rows may be held: foreign keys are checked as COPY ends
        names = ("transaction_id", "program_id", "member_id", "account", "amount")
        copy_values(conn, postings, names, ([t, program_id, m, account, amount] for t, m, account, amount in rows))
        return
    parameters = {"program_id": program_id, "rows": json_text.dumps(rows)}
    run_or_hold(conn, _BULK_POSTINGS[conn.dialect.name], parameters, together)


_BALANCE_COLUMN = {Account.AVAILABLE: 0, Account.PENDING: 1, Account.DEBT: 2}
_BULK_MOVE = {
    "postgresql": text(
        """
        UPDATE balances AS b
        SET available = b.available + d.available, pending = b.pending + d.pending, debt = b.debt + d.debt
        FROM unnest(
            CAST(:members AS bigint[]), CAST(:available AS bigint[]), CAST(:pending AS bigint[]),
            CAST(:debt AS bigint[])
        ) AS d(member_id, available, pending, debt)
        WHERE b.member_id = d.member_id
    """
    ),
    "sqlite": text(
        """
        UPDATE balances
        SET available = available + d.value ->> 1,
            pending = pending + d.value ->> 2,
            debt = debt + d.value ->> 3
        FROM json_each(:deltas) AS d
        WHERE balances.member_id = d.value ->> 0
    """
    ),
}


def add_lots(
    conn: Connection,
    *,
    program_id: int,
    member_id: int,
    transaction_id: int,
    new: Iterable[NewLot],
    earned_at: datetime,
) -> None:
    rows = [
        {
            "program_id": program_id,
            "member_id": member_id,
            "transaction_id": transaction_id,
            "order_id": lot.order_id,
            "points": lot.points,
            "remaining": lot.points,
            "status": (LotStatus.PENDING if lot.pending else LotStatus.AVAILABLE).value,
            "earned_at": earned_at,
            "available_at": lot.available_at,
            "expires_at": lot.expires_at,
        }
        for lot in new
    ]
    if rows:
        conn.execute(_INSERT_LOTS, rows)


def debit_lots(conn: Connection, debits: Sequence[LotDebit]) -> None:
    """Takes points out of lots; refuses (raises) if any lot would go below zero. Callers hold the member lock,
    so a refusal means a bug, not a race."""
    for debit in debits:
        result = conn.execute(
            update(lots)
            .where(and_(lots.c.id == debit.lot_id, lots.c.remaining >= debit.points))
            .values(remaining=lots.c.remaining - debit.points)
        )
        if result.rowcount != 1:
            raise RuntimeError(f"lot {debit.lot_id} changed under a locked member: cannot take {debit.points}")


def open_lots(conn: Connection, member_id: int, *, statuses: Sequence[LotStatus] = (LotStatus.AVAILABLE,)) -> list[Lot]:
    rows = conn.execute(
        select(
            lots.c.id,
            lots.c.points,
            lots.c.remaining,
            lots.c.status,
            lots.c.earned_at,
            lots.c.expires_at,
            lots.c.order_id,
        )
        .where(lots.c.member_id == member_id, lots.c.remaining > 0, lots.c.status.in_([s.value for s in statuses]))
        .order_by(lots.c.id)
    ).all()
    return [Lot(r.id, r.points, r.remaining, LotStatus(r.status), r.earned_at, r.expires_at, r.order_id) for r in rows]


def balance_of(conn: Connection, member_id: int) -> tuple[int, int, int]:
    row = conn.execute(
        select(balances.c.available, balances.c.pending, balances.c.debt).where(balances.c.member_id == member_id)
    ).one()
    return int(row.available), int(row.pending), int(row.debt)
