"""The ledger's periodic jobs: activate pending points, expire lots, and remind members of points about to
expire. Each is idempotent: a second run in the same period (a restart, a second worker, a run by hand)
finds nothing left to do, because the work itself is conditional on the rows' state or deduplicated."""

from collections import defaultdict
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, select

from patron.domain.ledger import LotStatus
from patron.services import maintenance, outbox
from patron.services.maintenance import RunReport
from patron.services.outbox import Emitted, EventType
from patron.store.members import lock_many
from patron.store.sets import id_in
from patron.store.tables import lots
from patron.worker.registry import JobContext, JobKind, Schedule


def activate_pending(ctx: JobContext) -> Mapping[str, Any]:
    report = maintenance.activate(ctx.db, now=ctx.now, chunk=ctx.settings.job_chunk, progress=ctx.chunk_done)
    return _report(report)


def expire_lots(ctx: JobContext) -> Mapping[str, Any]:
    report = maintenance.expire(ctx.db, now=ctx.now, chunk=ctx.settings.job_chunk, progress=ctx.chunk_done)
    return _report(report)


def _report(report: RunReport) -> dict[str, int]:
    return {"lots": report.lots, "points": report.points, "members": report.members}


def remind_expiring(ctx: JobContext) -> Mapping[str, Any]:
    """points.expiring_soon, once per member and expiry date, for points expiring in the next N days.

    A member whose lots expire on three dates hears three times, each well ahead; the dedupe key (member and
    date) keeps a date from being announced twice however often the job runs.
    """
    horizon = ctx.now + timedelta(days=ctx.settings.reminder_days)
    expiring = (
        (lots.c.status == LotStatus.AVAILABLE.value)
        & (lots.c.remaining > 0)
        & (lots.c.expires_at > ctx.now)
        & (lots.c.expires_at <= horizon)
    )
    after = 0
    dates = seen = 0
    while True:
        with ctx.db.read() as conn:
            member_ids = [
                int(m)
                for m in conn.execute(
                    select(lots.c.member_id)
                    .where(expiring, lots.c.member_id > after)
                    .group_by(lots.c.member_id)
                    .order_by(lots.c.member_id)
                    .limit(ctx.settings.job_chunk)
                ).scalars()
            ]
        if not member_ids:
            return {"members": seen, "expiry_dates": dates}
        dates += ctx.db.run(lambda conn: _remind_chunk(conn, member_ids, expiring, ctx))  # noqa: B023 - run at once
        seen += len(member_ids)
        after = member_ids[-1]
        ctx.chunk_done(len(member_ids))


def _remind_chunk(conn: Connection, member_ids: list[int], expiring: Any, ctx: JobContext) -> int:
    lock_many(conn, member_ids)  # so the reminder takes its place in each member's order of events
    rows = conn.execute(
        select(lots.c.program_id, lots.c.member_id, lots.c.expires_at, lots.c.remaining).where(
            expiring, id_in(conn, lots.c.member_id, member_ids)
        )
    ).all()
    per_date: dict[tuple[int, int, str], list[Any]] = defaultdict(list)
    for row in rows:
        per_date[(row.program_id, row.member_id, row.expires_at.date().isoformat())].append(row)
    reminders = [
        Emitted(
            program_id,
            EventType.POINTS_EXPIRING_SOON,
            member_id,
            {
                "points": sum(int(r.remaining) for r in found),
                "expires_on": day,
                "expires_at": min(r.expires_at for r in found).isoformat(),
            },
            ctx.now,
            dedupe_key=f"{EventType.POINTS_EXPIRING_SOON.value}:{member_id}:{day}",
        )
        for (program_id, member_id, day), found in sorted(per_date.items())
    ]
    outbox.emit(conn, reminders, now=ctx.now)
    return len(reminders)


ACTIVATE = JobKind(
    "points.activate",
    activate_pending,
    "Make pending points available once their return window has passed.",
    Schedule(timedelta(minutes=15)),
)
EXPIRE = JobKind(
    "points.expire",
    expire_lots,
    "Expire what is left of every lot past its expiry date, in chunks.",
    Schedule(timedelta(hours=1)),
)
REMIND = JobKind(
    "points.remind_expiring",
    remind_expiring,
    "Announce points.expiring_soon once per member and expiry date, N days ahead (PATRON_REMINDER_DAYS).",
    Schedule(timedelta(days=1)),
)
