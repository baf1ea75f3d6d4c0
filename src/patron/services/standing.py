"""A member's tier, progress to the next one, and what staff need to greet a regular: for the member read model."""

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from patron.domain import tiers
from patron.domain.program import ProgramDocument
from patron.services.views import GrantView, RecognitionView, TierChangeView, TierView
from patron.store.progress import load_one
from patron.store.tables import orders, program_versions, reward_grants, tier_changes


def document_in_force(conn: Connection, program_id: int, at: datetime) -> ProgramDocument | None:
    found = conn.execute(
        select(program_versions.c.document)
        .where(program_versions.c.program_id == program_id, program_versions.c.effective_from <= at)
        .order_by(program_versions.c.effective_from.desc(), program_versions.c.version.desc())
        .limit(1)
    ).scalar_one_or_none()
    return None if found is None else ProgramDocument.model_validate(found)


def standing(
    conn: Connection, program_id: int, member_id: int, member_since: datetime, *, now: datetime
) -> tuple[TierView | None, RecognitionView]:
    document = document_in_force(conn, program_id, now)
    progress = load_one(conn, member_id)
    tier_view = None
    tier_name = None
    if document is not None and document.tiers is not None:
        ladder = document.tiers
        found = tiers.standing(ladder, progress, now, ZoneInfo(document.timezone), document.currency)
        level = found.level
        tier_name = level.name if level is not None else None
        tier_view = TierView(
            tier=level.id if level is not None else None,
            name=tier_name,
            since=found.since if level is not None else None,
            qualify_on=ladder.qualify_on.value,
            window=ladder.window.value,
            qualifying=tiers.amount(ladder, found.qualifying, document.currency),
            next_tier=found.next_level.id if found.next_level is not None else None,
            missing=tiers.amount(ladder, found.missing, document.currency) if found.missing is not None else None,
            progress=found.message,
            earn_multiplier=str(level.earn_multiplier) if level is not None else "1",
            free_shipping=level.free_shipping if level is not None else False,
            dedicated_service=level.dedicated_service if level is not None else False,
        )
    visits, last_visit = conn.execute(
        select(func.count(), func.max(orders.c.occurred_at)).where(
            orders.c.program_id == program_id, orders.c.member_id == member_id
        )
    ).one()
    recognition = RecognitionView(
        usual_sku=progress.favourite(progress.skus),
        usual_category=progress.favourite(progress.categories),
        visits=int(visits),
        last_visit=last_visit,
        member_since=member_since,
        tier=tier_name,
        scores=dict(progress.scores),
    )
    return tier_view, recognition


def tier_history(conn: Connection, member_id: int) -> list[TierChangeView]:
    """Every tier change of the member, oldest first, each with its reason."""
    rows = conn.execute(
        select(tier_changes.c.from_tier, tier_changes.c.to_tier, tier_changes.c.reason, tier_changes.c.occurred_at)
        .where(tier_changes.c.member_id == member_id)
        .order_by(tier_changes.c.id)
    ).all()
    return [TierChangeView.model_validate(r, from_attributes=True) for r in rows]


def grants(conn: Connection, member_id: int) -> list[GrantView]:
    """Rewards the member was given for free, newest first."""
    rows = conn.execute(
        select(
            reward_grants.c.reward_id,
            reward_grants.c.reward_kind,
            reward_grants.c.source,
            reward_grants.c.reason,
            reward_grants.c.coupon_code,
            reward_grants.c.granted_at,
        )
        .where(reward_grants.c.member_id == member_id)
        .order_by(reward_grants.c.id.desc())
    ).all()
    return [GrantView.model_validate(r, from_attributes=True) for r in rows]
