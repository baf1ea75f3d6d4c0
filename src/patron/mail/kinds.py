"""The messages Patron sends, what each one says (its context), and whether it is marketing.

Transactional mail tells a member about their own account and goes whatever their marketing consent:
the welcome that confirms enrolment, a redemption receipt, points about to expire (value they hold is about to
be lost), a tier change (their benefits change), a referral that earned them points, and a change of the
program's terms (which members must be told of). Marketing mail goes only to members who consented: the
periodic summary of points earned, the birthday greeting, and a win-back offer to a lapsed member.
"""

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Category(StrEnum):
    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


class MailKind(StrEnum):
    WELCOME = "welcome"
    POINTS_EARNED_SUMMARY = "points_earned_summary"
    POINTS_EXPIRING = "points_expiring"
    TIER_CHANGED = "tier_changed"
    REWARD_REDEEMED = "reward_redeemed"
    BIRTHDAY = "birthday"
    REFERRAL_SUCCESS = "referral_success"
    PROGRAM_CHANGED = "program_changed"
    CAMPAIGN_OFFER = "campaign_offer"

    @property
    def category(self) -> Category:
        marketing = {MailKind.POINTS_EARNED_SUMMARY, MailKind.BIRTHDAY, MailKind.CAMPAIGN_OFFER}
        return Category.MARKETING if self in marketing else Category.TRANSACTIONAL


class Context(BaseModel):
    """What a template needs beyond the program and the member, stored as JSON in the mail outbox."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Welcome(Context):
    balance: int = 0


class PointsEarnedSummary(Context):
    period_start: date
    period_end: date
    points: int
    spent: Decimal = Field(default=Decimal(0), ge=0)
    balance: int


class PointsExpiring(Context):
    points: int
    expires_on: date
    balance: int


class TierChanged(Context):
    old_tier: str | None
    new_tier: str
    direction: Literal["up", "down"]


class RewardRedeemed(Context):
    reward_name: str
    cost: int
    coupon_code: str | None = None
    balance: int


class Birthday(Context):
    bonus_points: int = 0


class ReferralSuccess(Context):
    points: int
    friend: str | None = None


class ProgramChange(BaseModel):
    """One change a member should know of; `what` picks the sentence, the rest fills it in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    what: Literal["reward_added", "reward_removed", "reward_cost", "earning", "expiry", "tiers", "refunds", "other"]
    name: str | None = None
    old_cost: int | None = None
    new_cost: int | None = None


class CampaignOffer(Context):
    campaign_name: str
    ends_on: date  # the campaign's last day
    bonus_points: int = 0
    multiplier: Decimal | None = None
    reward_name: str | None = None


class ProgramChanged(Context):
    version: int
    effective_from: date
    changes: list[ProgramChange]


CONTEXTS: dict[MailKind, type[Context]] = {
    MailKind.WELCOME: Welcome,
    MailKind.POINTS_EARNED_SUMMARY: PointsEarnedSummary,
    MailKind.POINTS_EXPIRING: PointsExpiring,
    MailKind.TIER_CHANGED: TierChanged,
    MailKind.REWARD_REDEEMED: RewardRedeemed,
    MailKind.BIRTHDAY: Birthday,
    MailKind.REFERRAL_SUCCESS: ReferralSuccess,
    MailKind.PROGRAM_CHANGED: ProgramChanged,
    MailKind.CAMPAIGN_OFFER: CampaignOffer,
}
