"""The rewards catalog of the program version in force now."""

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from patron.api.auth import ReadKey
from patron.api.problems import responses
from patron.api.runtime import RuntimeDep
from patron.domain.amounts import Money
from patron.domain.program import RewardKind
from patron.services.errors import Invalid
from patron.store.tables import reward_stock

router = APIRouter(prefix="/v1/rewards", tags=["rewards"], responses=responses(401, 403))


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


class Catalog(BaseModel):
    program_version: int | None = Field(description="None until a program version is in force")
    rewards: list[RewardView]


@router.get("", summary="Rewards members can redeem now, with the stock left for gifts")
def list_rewards(key: ReadKey, runtime: RuntimeDep) -> Catalog:
    with runtime.database.read() as conn:
        try:
            program = runtime.cache.in_force(conn, key.program_id, runtime.now())
        except Invalid:
            # A program with no version in force yet offers nothing; that is not the caller's error.
            return Catalog(program_version=None, rewards=[])
        given = dict(
            conn.execute(
                select(reward_stock.c.reward_id, reward_stock.c.given).where(
                    reward_stock.c.program_id == key.program_id
                )
            ).all()
        )
    return Catalog(
        program_version=program.version,
        rewards=[
            RewardView(
                **reward.model_dump(
                    include={"id", "name", "kind", "cost", "value", "sku", "stock", "per_member_limit"}
                ),
                # A later version may lower the stock below what was already given: nothing is left, not less.
                remaining=None if reward.stock is None else max(reward.stock - given.get(reward.id, 0), 0),
            )
            for reward in program.document.rewards
        ],
    )
