"""Manual corrections of a member's points, by an admin key, with a reason for the audit trail."""

from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from patron.api.auth import AdminKey
from patron.api.params import IdempotencyKey, MemberIdPath, answer_as_replay
from patron.api.problems import responses
from patron.api.runtime import RuntimeDep
from patron.api.text import RefuseNul
from patron.services import adjustments
from patron.services.views import AdjustmentView

MAX_ADJUSTMENT = 1_000_000_000  # as for every points amount: sums stay inside a signed 64-bit column

router = APIRouter(prefix="/v1/members", tags=["adjustments"], responses=responses(401, 403))


def _not_zero(points: int) -> int:
    if points == 0:
        raise ValueError("an adjustment of 0 points changes nothing")
    return points


class AdjustmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # strict: 1.0, "5" and true are refused rather than quietly read as whole points.
    points: Annotated[
        int,
        Field(strict=True, ge=-MAX_ADJUSTMENT, le=MAX_ADJUSTMENT, description="added if positive, removed if negative"),
        AfterValidator(_not_zero),
    ]
    reason: Annotated[str, Field(min_length=1, max_length=500, description="why: it is kept in the audit log")]


@router.post(
    "/{member_id}/adjustments",
    status_code=status.HTTP_201_CREATED,
    summary="Add or remove points by hand (admin): 201, or 200 with the first reply when the Idempotency-Key repeats",
    description="The API key's name is recorded as the actor. Removing more points than are available is a 409.",
    responses={
        200: {"model": AdjustmentView, "description": "a retry with the same Idempotency-Key"},
        **responses(404, 409, 422),
    },
    dependencies=[RefuseNul],
)
def adjust(
    member_id: MemberIdPath,
    body: AdjustmentRequest,
    key: AdminKey,
    runtime: RuntimeDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> AdjustmentView:
    view, replayed = adjustments.adjust(
        runtime.database,
        runtime.cache,
        key.program_id,
        member_id,
        body.points,
        body.reason,
        actor=key.name,
        now=runtime.now(),
        idempotency_key=idempotency_key,
    )
    answer_as_replay(response, replayed)
    return view
