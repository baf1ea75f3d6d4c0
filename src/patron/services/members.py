"""Enrolling members and reading them back with their points."""

from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, select

from patron.domain.members import MemberProfile
from patron.mail import outbox as mail_outbox
from patron.mail.kinds import MailKind, Welcome
from patron.services import cursors, standing
from patron.services.errors import Invalid, NotFound
from patron.services.views import Balance, HistoryEntry, HistoryPage, LotView, MemberPage, MemberView, PostingView
from patron.store import ledger
from patron.store import members as member_rows
from patron.store.database import Database
from patron.store.tables import journal, lots, members, postings

EXPIRING_SOON = timedelta(days=30)


def upsert(
    db: Database, program_id: int, external_id: str, profile: MemberProfile, *, now: datetime
) -> tuple[MemberView, bool]:
    """Creates the member, or replaces the profile of an existing one. Returns the member and whether it is new."""

    def work(conn: Connection) -> tuple[MemberView, bool]:
        row = member_rows.find(conn, program_id, external_id, lock=True)
        if row is None:
            row = member_rows.create(conn, program_id, external_id, profile, now)
            # Enrolment through the API only: members brought over by `patron import` already know the program.
            mail_outbox.queue(
                conn, program_id=program_id, member_id=row.id, kind=MailKind.WELCOME, context=Welcome(), now=now
            )
            created = True
        else:
            member_rows.update_profile(conn, row.id, profile, now)
            created = False
        return view(conn, program_id, external_id, now=now), created

    return db.run(work)


def require(conn: Connection, program_id: int, external_id: str, *, lock: bool = False) -> member_rows.MemberRow:
    row = member_rows.find(conn, program_id, external_id, lock=lock)
    if row is None:
        raise NotFound(f"no member {external_id!r} in this program", field="member_id")
    return row


def balance(conn: Connection, member_id: int) -> Balance:
    available, pending, debt = ledger.balance_of(conn, member_id)
    return Balance(available=available, pending=pending, owed=-debt)


def view(conn: Connection, program_id: int, external_id: str, *, now: datetime) -> MemberView:
    row = require(conn, program_id, external_id)
    soon = conn.execute(
        select(lots)
        .where(
            lots.c.member_id == row.id,
            lots.c.remaining > 0,
            lots.c.status == "available",
            lots.c.expires_at <= now + EXPIRING_SOON,
        )
        .order_by(lots.c.expires_at, lots.c.id)
    ).all()
    tier, recognition = standing.standing(conn, program_id, row.id, row.created_at, now=now)
    return MemberView(
        member_id=row.external_id,
        email=row.email,
        phone=row.phone,
        birthday=row.birthday,
        locale=row.locale,
        timezone=row.timezone,
        attributes=row.attributes,
        marketing_consent=row.marketing_consent,
        member_since=row.created_at,
        balance=balance(conn, row.id),
        expiring_soon=[_lot_view(lot) for lot in soon],
        tier=tier,
        recognition=recognition,
    )


def _lot_view(lot: object) -> LotView:
    return LotView.model_validate(lot, from_attributes=True)


def open_lots(conn: Connection, program_id: int, external_id: str) -> list[LotView]:
    row = require(conn, program_id, external_id)
    found = conn.execute(select(lots).where(lots.c.member_id == row.id, lots.c.remaining > 0).order_by(lots.c.id)).all()
    return [_lot_view(lot) for lot in found]


def page(conn: Connection, program_id: int, *, cursor: str | None, limit: int, now: datetime) -> MemberPage:
    after = cursors.decode(cursor)
    ids = conn.execute(
        select(members.c.id, members.c.external_id)
        .where(members.c.program_id == program_id, members.c.id > after)
        .order_by(members.c.id)
        .limit(limit + 1)
    ).all()
    more = len(ids) > limit
    shown = ids[:limit]
    return MemberPage(
        members=[view(conn, program_id, r.external_id, now=now) for r in shown],
        next_cursor=cursors.encode(shown[-1].id) if more else None,
    )


def history(conn: Connection, program_id: int, external_id: str, *, cursor: str | None, limit: int) -> HistoryPage:
    """The member's journal, newest first: every transaction that moved one of their accounts."""
    if limit < 1:
        raise Invalid(f"limit must be at least 1, not {limit}", field="limit")
    row = require(conn, program_id, external_id)
    before = cursors.decode(cursor) or None
    query = (
        select(
            journal.c.id,
            journal.c.kind,
            journal.c.memo,
            journal.c.reference,
            journal.c.occurred_at,
            journal.c.posted_at,
        )
        .where(journal.c.id.in_(select(postings.c.transaction_id).where(postings.c.member_id == row.id)))
        .order_by(journal.c.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(journal.c.id < before)
    entries = conn.execute(query).all()
    more = len(entries) > limit
    entries = entries[:limit]
    moved = conn.execute(
        select(postings.c.transaction_id, postings.c.account, postings.c.amount)
        .where(and_(postings.c.member_id == row.id, postings.c.transaction_id.in_([e.id for e in entries])))
        .order_by(postings.c.id)
    ).all()
    by_transaction: dict[int, list[PostingView]] = {}
    for p in moved:
        by_transaction.setdefault(p.transaction_id, []).append(PostingView(account=p.account, amount=p.amount))
    return HistoryPage(
        entries=[
            HistoryEntry(
                transaction_id=e.id,
                kind=e.kind,
                memo=e.memo,
                reference=e.reference,
                occurred_at=e.occurred_at,
                posted_at=e.posted_at,
                postings=by_transaction.get(e.id, []),
            )
            for e in entries
        ],
        next_cursor=cursors.encode(entries[-1].id) if more else None,
    )
