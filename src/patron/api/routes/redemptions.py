"""Spending a member's points on a reward."""

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict

from patron.api.auth import RedeemKey
from patron.api.params import IdempotencyKey, MemberIdPath, answer_as_replay
from patron.api.problems import responses
from patron.api.runtime import RuntimeDep
from patron.api.text import RefuseNul
from patron.domain.program import Identifier
from patron.services import redemptions
from patron.services.views import RedemptionView

router = APIRouter(prefix="/v1/members", tags=["redemptions"], responses=responses(401, 403))


class RedemptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reward_id: Identifier


@router.post(
    "/{member_id}/redemptions",
    status_code=status.HTTP_201_CREATED,
    summary="Redeem a reward: 201 when redeemed now, 200 with the first reply when the Idempotency-Key repeats",
    description="409 when the member has too few available points, the gift is out of stock, the member's limit "
    "for the reward is reached, or the Idempotency-Key was used for a different request.",
    responses={
        200: {"model": RedemptionView, "description": "a retry with the same Idempotency-Key"},
        **responses(404, 409, 422),
    },
    dependencies=[RefuseNul],
)
def redeem(
    member_id: MemberIdPath,
    body: RedemptionRequest,
    key: RedeemKey,
    runtime: RuntimeDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RedemptionView:
    view, replayed = redemptions.redeem(
        runtime.database,
        runtime.cache,
        key.program_id,
        member_id,
        body.reward_id,
        now=runtime.now(),
        idempotency_key=idempotency_key,
    )
    answer_as_replay(response, replayed)
    return view
