"""Tiers and rewards given for free: a member's tier history and granted coupons; the birthday, anniversary and
tier review jobs for schedulers that call over HTTP."""

import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from patron.api.auth import AdminKey, ReadKey
from patron.api.params import MemberIdPath
from patron.api.problems import responses
from patron.api.runtime import RuntimeDep
from patron.services import members, occasions, standing, tier_review
from patron.services.standing import StampCardView
from patron.services.views import GrantView, OccasionReportView, TierChangeView, TierReviewView

router = APIRouter(tags=["loyalty"], responses=responses(401, 403))


@router.get(
    "/v1/members/{member_id}/tier-changes",
    summary="Every tier change of a member, oldest first, each with its reason",
    responses=responses(404),
)
def get_tier_changes(member_id: MemberIdPath, key: ReadKey, runtime: RuntimeDep) -> list[TierChangeView]:
    with runtime.database.read() as conn:
        return standing.tier_history(conn, members.require(conn, key.program_id, member_id).id)


@router.get(
    "/v1/members/{member_id}/grants",
    summary="Rewards given to a member for free (full stamp cards, campaigns, birthdays), with their coupon codes",
    responses=responses(404),
)
def get_grants(member_id: MemberIdPath, key: ReadKey, runtime: RuntimeDep) -> list[GrantView]:
    with runtime.database.read() as conn:
        return standing.grants(conn, members.require(conn, key.program_id, member_id).id)


@router.get(
    "/v1/members/{member_id}/stamp-cards",
    summary="The member's stamp cards: stamps on the card in progress, its expiry, and how many were completed",
    responses=responses(404),
)
def get_stamp_cards(member_id: MemberIdPath, key: ReadKey, runtime: RuntimeDep) -> list[StampCardView]:
    with runtime.database.read() as conn:
        member = members.require(conn, key.program_id, member_id)
        return standing.stamp_cards(conn, key.program_id, member.id, now=runtime.now())


class OccasionRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: datetime.date | None = Field(
        default=None, description="the local date to grant for; default: each member's today"
    )


@router.post(
    "/v1/occasions/{occasion}/grant",
    summary="Grant birthdays or anniversaries due on a date (idempotent per member per year)",
    responses=responses(422),
)
def grant_occasion(
    occasion: Literal["birthday", "anniversary"], run: OccasionRun, key: AdminKey, runtime: RuntimeDep
) -> OccasionReportView:
    report = occasions.grant(runtime.database, runtime.cache, key.program_id, occasion, on=run.date, now=runtime.now())
    return OccasionReportView(
        occasion=report.occasion, members=report.members, points=report.points, coupons=report.coupons
    )


@router.post("/v1/tiers/review", summary="Apply the tier downgrades due now, each recorded with its reason")
def review_tiers(key: AdminKey, runtime: RuntimeDep) -> TierReviewView:
    report = tier_review.review(runtime.database, runtime.cache, key.program_id, now=runtime.now())
    return TierReviewView(members=report.members, changes=report.changes)
