"""Referrals: the scheme a program document configures, the fraud screen, and when a purchase qualifies. Pure.

A referral is judged twice. At sign-up, the screen may find it not eligible (self-referral, the referrer's weekly
cap, a burst of sign-ups from one IP address); the reason is recorded and shown to the referrer. Otherwise it waits
for the new member's first purchase that reaches the minimum spend within the window; then both sides are
rewarded. If that order is refunded (below the minimum spend, or entirely), the rewards are clawed back.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from patron.domain.amounts import Money

# A hashed payment or device fingerprint, as the merchant computes it: never a card number or a raw device id.
Fingerprint = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/=_:.-]{16,128}$")]
# The address a sign-up came from, as the merchant saw it (IPv4 or IPv6 text), for the burst check.
IpAddress = Annotated[str, Field(max_length=45, pattern=r"^[0-9A-Fa-f:.]+$")]
WEEK = timedelta(days=7)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReferralReward(_Strict):
    points: Annotated[int, Field(gt=0, le=1_000_000)] | None = None
    coupon_batch: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")] | None = Field(
        default=None, description="a new code of this coupon batch, for this member only"
    )

    @model_validator(mode="after")
    def _gives_something(self) -> "ReferralReward":
        if self.points is None and self.coupon_batch is None:
            raise ValueError("a referral reward needs points, a coupon_batch, or both")
        return self


class IpBurst(_Strict):
    """More than `max_signups` referred sign-ups from one IP address within `minutes` are not eligible."""

    max_signups: Annotated[int, Field(gt=0, le=10_000)] = 3
    minutes: Annotated[int, Field(gt=0, le=10_080)] = 60


class ReferralScheme(_Strict):
    referrer: ReferralReward
    referee: ReferralReward
    min_spend: Money = Decimal(0)
    within_days: Annotated[int, Field(gt=0, le=365)] = 30
    max_per_referrer_per_week: Annotated[int, Field(gt=0, le=10_000)] | None = 10
    ip_burst: IpBurst | None = IpBurst()


class Status(StrEnum):
    PENDING = "pending"  # waiting for the first qualifying purchase
    REWARDED = "rewarded"
    NOT_ELIGIBLE = "not_eligible"  # refused by the screen; `reason` says why
    EXPIRED = "expired"  # no qualifying purchase within the window
    CLAWED_BACK = "clawed_back"  # the qualifying order was refunded


@dataclass(frozen=True, slots=True)
class Party:
    email: str | None
    phone: str | None
    fingerprints: frozenset[str]


@dataclass(frozen=True, slots=True)
class Recent:
    """Counts the screen needs: the referrer's referrals in the last 7 days (not refused), and referred sign-ups
    from this IP address within the burst window."""

    by_referrer_this_week: int
    from_ip: int


def screen(scheme: ReferralScheme, referrer: Party, referee: Party, recent: Recent) -> str | None:
    """Why the referral is not eligible, or None when it may proceed."""
    if referrer.email and referee.email and referrer.email.strip().lower() == referee.email.strip().lower():
        return "self-referral: same email address as the referrer"
    if referrer.phone and referee.phone and _digits(referrer.phone) == _digits(referee.phone):
        return "self-referral: same phone number as the referrer"
    if referrer.fingerprints & referee.fingerprints:
        return "self-referral: same payment or device fingerprint as the referrer"
    cap = scheme.max_per_referrer_per_week
    if cap is not None and recent.by_referrer_this_week >= cap:
        return f"the referrer reached the cap of {cap} referrals per week"
    burst = scheme.ip_burst
    if burst is not None and recent.from_ip >= burst.max_signups:
        return f"too many sign-ups from one IP address: {burst.max_signups} in {burst.minutes} minutes"
    return None


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


class Outcome(StrEnum):
    QUALIFIES = "qualifies"
    TOO_SMALL = "too_small"  # below the minimum spend: a later purchase may still qualify
    TOO_LATE = "too_late"  # after the window: the referral expires
    BEFORE = "before"  # occurred before the sign-up (reported late): it does not count


def judge_purchase(scheme: ReferralScheme, signed_up_at: datetime, total: Decimal, occurred_at: datetime) -> Outcome:
    if occurred_at < signed_up_at:
        return Outcome.BEFORE
    if occurred_at > signed_up_at + timedelta(days=scheme.within_days):
        return Outcome.TOO_LATE
    if total < scheme.min_spend:
        return Outcome.TOO_SMALL
    return Outcome.QUALIFIES


def refund_undoes(scheme: ReferralScheme, total: Decimal, refunded: Decimal) -> bool:
    """Whether the qualifying order, after its refunds, no longer earns the referral."""
    kept = total - refunded
    return kept <= 0 or kept < scheme.min_spend
