"""Granting birthdays and sign-up anniversaries: once per member per year, on the member's own local date."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from patron.domain.engine import MemberState, decide_occasion
from patron.domain.occasions import due_year
from patron.services import outbox
from patron.services import progress as progress_store
from patron.services.errors import Invalid
from patron.services.program_cache import ProgramCache
from patron.store import ledger
from patron.store.database import Database
from patron.store.tables import members, occasion_grants

OccasionName = Literal["birthday", "anniversary"]


@dataclass(frozen=True, slots=True)
class OccasionReport:
    occasion: str
    members: int
    points: int
    coupons: int


def grant(
    db: Database,
    cache: ProgramCache,
    program_id: int,
    occasion: OccasionName,
    *,
    on: date | None,
    now: datetime,
    chunk: int = 500,
) -> OccasionReport:
    """Grants the occasion to every member it is due for on `on` (default: each member's local today).

    Idempotent: a member's occasion of a year is granted once, however often this runs (the primary key of
    occasion_grants decides, in the transaction that posts the points)."""
    with db.read() as conn:
        program = cache.in_force(conn, program_id, now)
    spec = program.document.birthday if occasion == "birthday" else program.document.anniversary
    if spec is None:
        raise Invalid(f"the program gives nothing on a member's {occasion}", field="occasion")
    totals = [0, 0, 0]
    after = 0
    while True:

        def work(conn: Connection, start: int = after) -> tuple[int, int, int, int | None]:
            query = (
                select(
                    members.c.id,
                    members.c.external_id,
                    members.c.attributes,
                    members.c.birthday,
                    members.c.timezone,
                    members.c.created_at,
                )
                .where(members.c.program_id == program_id, members.c.id > start)
                .order_by(members.c.id)
                .limit(chunk)
                .with_for_update()
            )
            if occasion == "birthday":
                query = query.where(members.c.birthday.is_not(None))
            rows = conn.execute(query).all()
            granted = points = coupons = 0
            for row in rows:
                zone = ZoneInfo(row.timezone) if row.timezone else program.zone
                today = on or now.astimezone(zone).date()
                joined = row.created_at.astimezone(zone).date()
                day = row.birthday if occasion == "birthday" else joined
                year = due_year(spec, day, today, first_year=joined.year if occasion == "anniversary" else None)
                if year is None or not _claim(conn, program_id, row.id, occasion, year, now):
                    continue
                _, _, debt = ledger.balance_of(conn, row.id)
                decision = decide_occasion(
                    program, MemberState(row.external_id, row.attributes, owed=-debt), occasion, year, now
                )
                transaction_id = None
                if decision.postings:
                    mine, theirs = ledger.member_postings(row.id, decision.postings)
                    transaction_id = ledger.post(
                        conn,
                        program_id=program_id,
                        member_id=row.id,
                        kind=occasion,
                        occurred_at=now,
                        posted_at=now,
                        memo=f"{occasion} {year}: {decision.points:+d} points",
                        member_postings=mine,
                        program_postings=theirs,
                        program_version=program.version,
                        reference=f"{occasion}:{year}",
                    )
                    ledger.add_lots(
                        conn,
                        program_id=program_id,
                        member_id=row.id,
                        transaction_id=transaction_id,
                        new=decision.new_lots,
                        earned_at=now,
                    )
                conn.execute(
                    update(occasion_grants)
                    .where(
                        occasion_grants.c.member_id == row.id,
                        occasion_grants.c.occasion == occasion,
                        occasion_grants.c.year == year,
                    )
                    .values(points=decision.points, transaction_id=transaction_id)
                )
                codes = progress_store.record(
                    conn, program_id, [progress_store.Effects(row.id, None, now, decision)], {}, {}, now=now
                )
                if occasion == "birthday":
                    data = {"year": year, "points": decision.points, "coupon_codes": codes}
                    outbox.emit(
                        conn,
                        [outbox.Emitted(program_id, outbox.EventType.MEMBER_BIRTHDAY, row.id, data, now)],
                        now=now,
                    )
                granted += 1
                points += decision.points
                coupons += len(codes)
            return granted, points, coupons, rows[-1].id if len(rows) == chunk else None

        granted, points, coupons, last = db.run(work)
        totals = [totals[0] + granted, totals[1] + points, totals[2] + coupons]
        if last is None:
            break
        after = last
    return OccasionReport(occasion, *totals)


def _claim(conn: Connection, program_id: int, member_id: int, occasion: str, year: int, now: datetime) -> bool:
    """Inserts the (member, occasion, year) row; False when it was already there (granted before)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # RETURNING says whether the row went in: psycopg reports no rowcount for ON CONFLICT DO NOTHING.
    inserted = conn.execute(
        dialect.insert(occasion_grants).on_conflict_do_nothing().returning(occasion_grants.c.member_id),
        {
            "member_id": member_id,
            "occasion": occasion,
            "year": year,
            "program_id": program_id,
            "points": 0,
            "transaction_id": None,
            "granted_at": now,
        },
    )
    return inserted.first() is not None
