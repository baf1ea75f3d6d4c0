"""Referrals: a member's code, a new member signing up with one, and what a referrer sees of their referrals."""

from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from patron.api.auth import EventsKey, ReadKey
from patron.api.params import MemberIdPath
from patron.api.problems import responses
from patron.api.runtime import RuntimeDep
from patron.domain.events import ExternalId
from patron.domain.referrals import Fingerprint, IpAddress
from patron.services import referrals
from patron.services.referrals import ReferralCodeView, ReferralView

router = APIRouter(tags=["referrals"], responses=responses(401, 403))


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fingerprints: list[Fingerprint] = Field(
        default=[], max_length=20, description="hashed payment/device fingerprints of the member (never raw)"
    )


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: ExternalId = Field(description="the new member, already created with PUT /v1/members/{id}")
    code: Annotated[str, Field(min_length=1, max_length=32)]
    ip: IpAddress | None = None
    fingerprints: list[Fingerprint] = Field(default=[], max_length=20)


@router.post(
    "/v1/members/{member_id}/referral-code",
    status_code=status.HTTP_201_CREATED,
    summary="The member's referral code: 201 when made now, 200 when it already existed",
    responses={200: {"model": ReferralCodeView, "description": "the existing code"}, **responses(404, 422)},
)
def referral_code(
    member_id: MemberIdPath, key: EventsKey, runtime: RuntimeDep, response: Response, body: CodeRequest | None = None
) -> ReferralCodeView:
    view, created = referrals.code_for(
        runtime.database,
        key.program_id,
        member_id,
        fingerprints=(body or CodeRequest()).fingerprints,
        now=runtime.now(),
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return view


@router.post(
    "/v1/referrals",
    status_code=status.HTTP_201_CREATED,
    summary="A new member signed up with a referral code",
    description="201 with status pending (rewards come with the first qualifying purchase) or not_eligible with "
    "the reason (self-referral, the referrer's weekly cap, a burst from one IP). 404 for an unknown code, 422 for "
    "the member's own code, 409 when the member was already referred or is not new.",
    responses=responses(404, 409, 422),
)
def sign_up(body: SignupRequest, key: EventsKey, runtime: RuntimeDep) -> ReferralView:
    return referrals.sign_up(
        runtime.database,
        runtime.cache,
        key.program_id,
        body.member_id,
        body.code,
        ip=body.ip,
        fingerprints=body.fingerprints,
        now=runtime.now(),
    )


@router.get(
    "/v1/members/{member_id}/referrals",
    summary="The referrals a member made, with their status: pending, rewarded, or not eligible and why",
    responses=responses(404),
)
def made_by(member_id: MemberIdPath, key: ReadKey, runtime: RuntimeDep) -> list[ReferralView]:
    with runtime.database.read() as conn:
        return referrals.made_by(conn, runtime.cache, key.program_id, member_id, now=runtime.now())
