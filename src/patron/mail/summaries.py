"""The periodic summary of points earned: one message per consenting member who earned points in the period.

Points earned are what the program issued to the member (earning, bonuses, occasions, referrals) less what
refunds took back, read from the journal's `issued` postings; spending is the member's orders less refunds.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, and_, func, select, true

from patron.domain.ledger import Account
from patron.mail import outbox
from patron.mail.kinds import MailKind, PointsEarnedSummary
from patron.store.database import Database
from patron.store.tables import balances, journal, members, orders, postings
from patron.store.types import MoneyColumn

CHUNK = 1_000


@dataclass(frozen=True, slots=True)
class SummaryRun:
    members: int = 0
    queued: int = 0


def queue_earned_summaries(db: Database, *, start: datetime, end: datetime, now: datetime) -> SummaryRun:
    """Queues the summary of [start, end) for every member of every program who may get it, a chunk of
    members per transaction. Running it again for the same period queues nothing new."""
    after = 0
    seen = queued = 0
    while True:
        found = db.run(lambda conn: _queue_chunk(conn, start, end, now, after))  # noqa: B023 -- called at once
        if found is None:
            return SummaryRun(seen, queued)
        last, members_seen, members_queued = found
        after = last
        seen += members_seen
        queued += members_queued


def _queue_chunk(
    conn: Connection, start: datetime, end: datetime, now: datetime, after: int
) -> tuple[int, int, int] | None:
    chunk = list(
        conn.execute(
            select(members.c.id, members.c.program_id)
            .where(members.c.id > after, members.c.email.is_not(None), members.c.marketing_consent == true())
            .order_by(members.c.id)
            .limit(CHUNK)
        )
    )
    if not chunk:
        return None
    first, last = chunk[0].id, chunk[-1].id
    issued: dict[int, int] = dict(
        conn.execute(
            select(journal.c.member_id, -func.sum(postings.c.amount))
            .join(postings, postings.c.transaction_id == journal.c.id)
            .where(
                journal.c.member_id.between(first, last),
                journal.c.posted_at >= start,
                journal.c.posted_at < end,
                postings.c.account == Account.ISSUED.value,
                postings.c.member_id.is_(None),
            )
            .group_by(journal.c.member_id)
        ).all()
    )
    spent: dict[int, Decimal] = dict(
        conn.execute(
            select(orders.c.member_id, func.sum(orders.c.total - orders.c.refunded, type_=MoneyColumn()))
            .where(
                and_(orders.c.member_id.between(first, last), orders.c.occurred_at >= start, orders.c.occurred_at < end)
            )
            .group_by(orders.c.member_id)
        ).all()
    )
    available: dict[int, int] = dict(
        conn.execute(
            select(balances.c.member_id, balances.c.available).where(balances.c.member_id.between(first, last))
        ).all()
    )
    queued = 0
    for member in chunk:
        points = int(issued.get(member.id) or 0)
        if points <= 0:
            continue
        summary = PointsEarnedSummary(
            period_start=start.date(),
            period_end=(end - timedelta(microseconds=1)).date(),  # the last day inside the period
            points=points,
            spent=max(spent.get(member.id) or Decimal(0), Decimal(0)),
            balance=int(available.get(member.id, 0)),
        )
        if outbox.queue(
            conn,
            program_id=member.program_id,
            member_id=member.id,
            kind=MailKind.POINTS_EARNED_SUMMARY,
            context=summary,
            now=now,
            dedupe_key=f"{MailKind.POINTS_EARNED_SUMMARY.value}:{start.date().isoformat()}:{member.id}",
        ):
            queued += 1
    return last, len(chunk), queued
