"""Cart evaluation for a checkout: earnings, applicable coupons and upsell hints, before the order exists."""

from fastapi import APIRouter

from patron.api.auth import ReadKey
from patron.api.params import MemberIdPath
from patron.api.problems import responses
from patron.api.runtime import RuntimeDep
from patron.services import cart
from patron.services.cart import CartEvaluation, CartRequest

router = APIRouter(prefix="/v1/members", tags=["cart"], responses=responses(401, 403))


@router.post(
    "/{member_id}/cart",
    summary="What this cart would earn (per rule), the coupons that apply, and how to earn more. Writes nothing",
    responses=responses(404, 422),
)
def evaluate(member_id: MemberIdPath, body: CartRequest, key: ReadKey, runtime: RuntimeDep) -> CartEvaluation:
    return cart.evaluate(runtime.database, runtime.cache, key.program_id, member_id, body, now=runtime.now())
