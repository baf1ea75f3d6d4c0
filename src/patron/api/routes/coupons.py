"""Coupon batches (admin) and the two calls a checkout makes: validate a code against a cart, then redeem it."""

from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from patron.api.auth import AdminKey, ReadKey, RedeemKey
from patron.api.params import IdempotencyKey, answer_as_replay
from patron.api.problems import responses
from patron.api.runtime import RuntimeDep
from patron.domain.carts import Cart
from patron.domain.coupons import DEFAULT_PATTERN, MAX_BATCH, PATTERN, Offer
from patron.domain.events import ExternalId
from patron.domain.program import Identifier
from patron.services import coupons
from patron.services.coupons import BatchDetail, BatchView, CouponCheck, CouponRedemptionView

router = APIRouter(tags=["coupons"], responses=responses(401, 403))

CodePath = Annotated[str, Path(min_length=1, max_length=64, description="the coupon code, in any case")]


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Identifier
    offer: Offer
    count: Annotated[int, Field(strict=True, ge=1, le=MAX_BATCH)]
    pattern: Annotated[str, Field(pattern=PATTERN, description="'#' marks a random character; at least 8")] = (
        DEFAULT_PATTERN
    )


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, Field(min_length=1, max_length=64)]
    cart: Cart
    member_id: ExternalId | None = None


class CouponRedemptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cart: Cart
    member_id: ExternalId | None = None
    order_id: ExternalId | None = None


@router.post(
    "/v1/coupon-batches",
    status_code=status.HTTP_201_CREATED,
    summary="Create a batch of unique, unguessable codes that all give the same offer",
    responses=responses(409, 422),
)
def create_batch(body: BatchRequest, key: AdminKey, runtime: RuntimeDep) -> BatchDetail:
    return coupons.create_batch(
        runtime.database,
        key.program_id,
        body.name,
        body.offer,
        count=body.count,
        pattern=body.pattern,
        actor=f"api-key:{key.name}",
        now=runtime.now(),
    )


@router.get("/v1/coupon-batches", summary="The program's coupon batches, with how many codes are used")
def list_batches(key: ReadKey, runtime: RuntimeDep) -> list[BatchView]:
    with runtime.database.read() as conn:
        return coupons.batches(conn, key.program_id)


@router.get("/v1/coupon-batches/{name}", summary="One batch with its codes", responses=responses(404))
def show_batch(name: Annotated[str, Path(max_length=64)], key: ReadKey, runtime: RuntimeDep) -> BatchDetail:
    with runtime.database.read() as conn:
        return coupons.batch_detail(conn, key.program_id, name)


@router.post(
    "/v1/coupons/validate",
    summary="Would this code apply to this cart now, and what would it take off? Writes nothing",
    description="200 with applies false and the reason when it would not apply (expired, used, spend too low); "
    "404 for a code that does not exist.",
    responses=responses(404, 422),
)
def validate(body: ValidateRequest, key: ReadKey, runtime: RuntimeDep) -> CouponCheck:
    return coupons.validate(
        runtime.database, key.program_id, body.code, body.cart, member_external_id=body.member_id, now=runtime.now()
    )


@router.post(
    "/v1/coupons/{code}/redemptions",
    status_code=status.HTTP_201_CREATED,
    summary="Use a code on a cart: 201 when used now, 200 with the first reply when the Idempotency-Key repeats",
    description="409 when the code cannot be applied (outside its window, used up, the member's limit reached, "
    "the cart below the minimum spend or without the product) or the Idempotency-Key was used for another request.",
    responses={
        200: {"model": CouponRedemptionView, "description": "a retry with the same Idempotency-Key"},
        **responses(404, 409, 422),
    },
)
def redeem(
    code: CodePath,
    body: CouponRedemptionRequest,
    key: RedeemKey,
    runtime: RuntimeDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> CouponRedemptionView:
    view, replayed = coupons.redeem(
        runtime.database,
        key.program_id,
        code,
        body.cart,
        member_external_id=body.member_id,
        order_id=body.order_id,
        now=runtime.now(),
        idempotency_key=idempotency_key,
    )
    answer_as_replay(response, replayed)
    return view
