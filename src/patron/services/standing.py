"""A member's tier, progress to the next one, their stamp cards, and what staff need to greet a regular: for the
member read model."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel
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


class StampCardView(BaseModel):
    """A stamp card of the program in force, as the member stands on it ("3 of 9 stamps")."""

    card: str
    name: str
    reward: str
    stamps: int
    size: int
    started_at: datetime | None  # None: no card in progress
    expires_at: datetime | None  # None: the card never expires, or none is in progress
    expired: bool  # past its expiry: the next stamp starts a new card
    completed: int  # cards filled so far, each given its reward


def stamp_cards(conn: Connection, program_id: int, member_id: int, *, now: datetime) -> list[StampCardView]:
    """Every stamp card of the program in force: the one in progress (stamps, expiry) and how many were completed.
    The completed ones' rewards are among the member's grants (source stamp_card:ID)."""
    document = document_in_force(conn, program_id, now)
    if document is None or not document.stamp_cards:
        return []
    progress = load_one(conn, member_id)
    completed: dict[str, int] = {
        source: int(times)
        for source, times in conn.execute(
            select(reward_grants.c.source, func.count())
            .where(reward_grants.c.member_id == member_id, reward_grants.c.source.like("stamp_card:%"))
            .group_by(reward_grants.c.source)
        ).all()
    }
    views = []
    for card in document.stamp_cards:
        open_card = progress.cards.get(card.id)
        started_at = open_card.started_at if open_card is not None and open_card.count else None
        expires_at = None
        if started_at is not None and card.expires_after_days is not None:
            expires_at = started_at + timedelta(days=card.expires_after_days)
        views.append(
            StampCardView(
                card=card.id,
                name=card.name,
                reward=card.reward,
                stamps=open_card.count if open_card is not None else 0,
                size=card.size,
                started_at=started_at,
                expires_at=expires_at,
                # The engine starts a new card at the first stamp on or after this instant.
                expired=expires_at is not None and now >= expires_at,
                completed=completed.get(f"stamp_card:{card.id}", 0),
            )
        )
    return views
