"""The rewards catalog of the program version in force: stock left, and who may redeem each reward and from when."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field
from sqlalchemy import Connection, select

from patron.domain import tiers
from patron.domain.amounts import Money
from patron.domain.program import ProgramDocument, Reward, RewardKind
from patron.services import members as member_service
from patron.services.errors import Invalid
from patron.services.program_cache import ProgramCache
from patron.store.progress import load_one as load_progress
from patron.store.tables import reward_stock


class EarlyAccessView(BaseModel):
    tier: str
    tier_name: str
    available_from: datetime


class RewardView(BaseModel):
    id: str
    name: str
    kind: RewardKind
    cost: int
    value: Money | None
    sku: str | None
    stock: int | None
    remaining: Annotated[int | None, Field(description="gifts: how many can still be given")]
    per_member_limit: int | None
    min_tier: str | None = Field(description="only members of this tier or a higher one may redeem it")
    min_tier_name: str | None
    available_from: datetime | None = Field(description="when members without early access may redeem it")
    early_access: list[EarlyAccessView] = Field(description="earlier dates for a tier and the ones above it")
    refusal: str | None = Field(
        description="with ?member_id: why that member may not redeem it now (null when they may, or no member "
        "was named); points and stock are not judged here"
    )


class Catalog(BaseModel):
    program_version: int | None = Field(description="None until a program version is in force")
    member_id: str | None = Field(description="the member the refusals are for, when one was named")
    rewards: list[RewardView]


def catalog(
    conn: Connection, cache: ProgramCache, program_id: int, *, member_id: str | None = None, now: datetime
) -> Catalog:
    """The rewards in force at `now`; with `member_id`, each one's refusal for that member (tier rules only)."""
    member = member_service.require(conn, program_id, member_id) if member_id is not None else None
    try:
        program = cache.in_force(conn, program_id, now)
    except Invalid:
        # A program with no version in force yet offers nothing; that is not the caller's error.
        return Catalog(program_version=None, member_id=member_id, rewards=[])
    document = program.document
    tier = tiers.tier_at(document, load_progress(conn, member.id), now) if member is not None else None
    given = dict(
        conn.execute(
            select(reward_stock.c.reward_id, reward_stock.c.given).where(reward_stock.c.program_id == program_id)
        ).all()
    )
    return Catalog(
        program_version=program.version,
        member_id=member_id,
        rewards=[
            RewardView(
                **reward.model_dump(
                    include={"id", "name", "kind", "cost", "value", "sku", "stock", "per_member_limit"}
                ),
                # A later version may lower the stock below what was already given: nothing is left, not less.
                remaining=None if reward.stock is None else max(reward.stock - given.get(reward.id, 0), 0),
                min_tier=reward.min_tier,
                min_tier_name=_tier_name(document, reward.min_tier),
                available_from=reward.available_from,
                early_access=_early_access(document, reward),
                refusal=tiers.reward_refusal(document, reward, tier, now) if member is not None else None,
            )
            for reward in document.rewards
        ],
    )


def _tier_name(document: ProgramDocument, tier_id: str | None) -> str | None:
    if tier_id is None:
        return None
    level = document.tiers.level(tier_id) if document.tiers is not None else None
    return level.name if level is not None else tier_id


def _early_access(document: ProgramDocument, reward: Reward) -> list[EarlyAccessView]:
    return [
        EarlyAccessView(tier=a.tier, tier_name=_tier_name(document, a.tier) or a.tier, available_from=a.available_from)
        for a in sorted(reward.early_access, key=lambda a: a.available_from)
    ]
