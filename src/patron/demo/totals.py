"""A program's totals read from the ledger itself, for the summary the demo prints after loading CDNOW."""

from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from patron.domain.ledger import Account
from patron.store.tables import members, orders, postings


@dataclass(frozen=True, slots=True)
class ProgramTotals:
    members: int
    orders: int
    earned: int  # points ever issued by earning rules (what refunds clawed back is subtracted)
    expired: int
    redeemed: int
    available: int
    pending: int
    owed: int


def program_totals(conn: Connection, program_id: int) -> ProgramTotals:
    """Sums of the postings per account: the journal is the truth, cached balances are not consulted."""
    sums = {
        Account(account): int(total)
        for account, total in conn.execute(
            select(postings.c.account, func.sum(postings.c.amount))
            .where(postings.c.program_id == program_id)
            .group_by(postings.c.account)
        ).all()
    }
    count_members = conn.execute(select(func.count()).where(members.c.program_id == program_id)).scalar_one()
    count_orders = conn.execute(select(func.count()).where(orders.c.program_id == program_id)).scalar_one()
    return ProgramTotals(
        members=int(count_members),
        orders=int(count_orders),
        earned=-sums.get(Account.ISSUED, 0),  # issuing is a debit of the program's issued account
        expired=sums.get(Account.EXPIRED, 0),
        redeemed=sums.get(Account.REDEEMED, 0),
        available=sums.get(Account.AVAILABLE, 0),
        pending=sums.get(Account.PENDING, 0),
        owed=-sums.get(Account.DEBT, 0),
    )
