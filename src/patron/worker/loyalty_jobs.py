"""The loyalty mechanics' periodic jobs: birthday and anniversary grants, and the tier review at window ends.

Both run for every program with a version in force, and both are idempotent on their own (a member's occasion is
granted once a year; a tier window is reviewed once), so a restart or a second worker changes nothing.
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from patron.domain.program import ProgramDocument
from patron.services import occasions, tier_review
from patron.services.program_cache import ProgramCache
from patron.worker.registry import JobContext, JobKind, Schedule


def _in_force(ctx: JobContext, cache: ProgramCache) -> list[tuple[int, ProgramDocument]]:
    with ctx.db.read() as conn:
        return cache.all_in_force(conn, ctx.now)


def grant_occasions(ctx: JobContext) -> Mapping[str, Any]:
    """Grants what each member is due today, in their own time zone, for every program that gives anything."""
    cache = ProgramCache()
    granted: dict[str, int] = {"birthday": 0, "anniversary": 0, "points": 0, "coupons": 0}
    for program_id, document in _in_force(ctx, cache):
        due: tuple[occasions.OccasionName, ...] = ("birthday", "anniversary")
        for occasion in (o for o in due if getattr(document, o) is not None):
            report = occasions.grant(ctx.db, cache, program_id, occasion, on=None, now=ctx.now)
            granted[occasion] += report.members
            granted["points"] += report.points
            granted["coupons"] += report.coupons
        ctx.chunk_done()
    return granted


def review_tiers(ctx: JobContext) -> Mapping[str, Any]:
    """Applies the downgrades that fell due at a window's end to members with no event since."""
    cache = ProgramCache()
    reviewed = changes = 0
    for program_id, document in _in_force(ctx, cache):
        if document.tiers is None:
            continue
        report = tier_review.review(ctx.db, cache, program_id, now=ctx.now)
        reviewed += report.members
        changes += report.changes
        ctx.chunk_done()
    return {"members": reviewed, "changes": changes}


# Hourly, though each member's occasion comes once a day: members' local days start at every hour of the UTC day.
OCCASIONS = JobKind(
    "loyalty.grant_occasions",
    grant_occasions,
    "Grant birthdays and sign-up anniversaries due on each member's local date (once per member per year).",
    Schedule(timedelta(hours=1)),
)
TIER_REVIEW = JobKind(
    "loyalty.review_tiers",
    review_tiers,
    "Apply tier downgrades that fell due at the end of a qualification window (with its grace period).",
    Schedule(timedelta(days=1)),
)
