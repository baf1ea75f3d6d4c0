"""The rewards catalog of the program version in force now, with who may redeem each reward and from when."""

from typing import Annotated

from fastapi import APIRouter, Query

from patron.api.auth import ReadKey
from patron.api.problems import responses
from patron.api.runtime import RuntimeDep
from patron.domain.events import ExternalId
from patron.services import rewards
from patron.services.rewards import Catalog

router = APIRouter(prefix="/v1/rewards", tags=["rewards"], responses=responses(401, 403))


@router.get(
    "",
    summary="Rewards members can redeem now, with the stock left for gifts and the tier rules of each",
    description="`min_tier` marks a reward only a tier (or a higher one) may redeem; `early_access` lists tiers "
    "that may redeem it before `available_from`, when everyone else may. With `member_id`, each reward's `refusal` "
    "says why that member may not redeem it now.",
    responses=responses(404),
)
def list_rewards(
    key: ReadKey,
    runtime: RuntimeDep,
    member_id: Annotated[ExternalId | None, Query(description="judge the tier rules for this member")] = None,
) -> Catalog:
    with runtime.database.read() as conn:
        return rewards.catalog(conn, runtime.cache, key.program_id, member_id=member_id, now=runtime.now())
