"""The tier review job: downgrades that fell due at a window's end for members with no event since."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from patron.domain import tiers
from patron.domain.engine import Decision
from patron.domain.progress import Progress
from patron.services import progress as progress_store
from patron.services.program_cache import ProgramCache
from patron.store.database import Database
from patron.store.tables import member_progress, members


@dataclass(frozen=True, slots=True)
class ReviewReport:
    members: int
    changes: int


def review(db: Database, cache: ProgramCache, program_id: int, *, now: datetime, chunk: int = 500) -> ReviewReport:
    """Applies the downgrades due by `now`, recording each with its reason. Safe to run again: a window is
    reviewed once (the member's progress remembers it), and events apply the same review on their own."""
    with db.read() as conn:
        program = cache.in_force(conn, program_id, now)
    ladder = program.document.tiers
    if ladder is None:
        return ReviewReport(0, 0)
    after = 0
    seen = changed = 0
    while True:

        def work(conn: Connection, start: int = after) -> tuple[int, int, int | None]:
            rows = conn.execute(
                select(members.c.id, member_progress.c.state)
                .join(member_progress, member_progress.c.member_id == members.c.id)
                .where(members.c.program_id == program_id, members.c.id > start)
                .order_by(members.c.id)
                .limit(chunk)
                # Progress is locked too (it only changes under the member's lock, so this waits for nothing more):
                # after waiting for a lock PostgreSQL gives the new version of the rows it locks and the old one of
                # the others, and a review of progress from before the wait would save it back over the events
                # counted meanwhile.
                .with_for_update(of=[members, member_progress])
            ).all()
            effects = []
            final: dict[int, Progress] = {}
            for row in rows:
                before = Progress.from_json(row.state)
                after_review, changes = tiers.review(ladder, before, now, program.zone, program.document.currency)
                if after_review != before:
                    final[row.id] = after_review
                if changes:
                    decision = Decision("tier_review", program.version, 0, tier_changes=tuple(changes))
                    effects.append(progress_store.Effects(row.id, None, now, decision))
            progress_store.record(conn, program_id, effects, final, {}, now=now)
            count = sum(len(e.decision.tier_changes) for e in effects)
            return len(rows), count, rows[-1].id if len(rows) == chunk else None

        n, c, last = db.run(work)
        seen, changed = seen + n, changed + c
        if last is None:
            return ReviewReport(seen, changed)
        after = last
