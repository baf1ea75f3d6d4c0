"""A made-up context for every kind of message: `patron mail preview` shows them, the tests render them."""

from datetime import date
from decimal import Decimal

from patron.mail.kinds import (
    Birthday,
    CampaignOffer,
    Context,
    MailKind,
    PointsEarnedSummary,
    PointsExpiring,
    ProgramChange,
    ProgramChanged,
    ReferralSuccess,
    RewardRedeemed,
    TierChanged,
    Welcome,
)

SAMPLES: dict[MailKind, Context] = {
    MailKind.WELCOME: Welcome(balance=100),
    MailKind.POINTS_EARNED_SUMMARY: PointsEarnedSummary(
        period_start=date(2026, 11, 2), period_end=date(2026, 11, 8), points=25, spent=Decimal("250.00"), balance=1025
    ),
    MailKind.POINTS_EXPIRING: PointsExpiring(points=22, expires_on=date(2026, 12, 31), balance=400),
    MailKind.TIER_CHANGED: TierChanged(old_tier="Silver", new_tier="Gold", direction="up"),
    MailKind.REWARD_REDEEMED: RewardRedeemed(reward_name="Coffee", cost=5, coupon_code="KAWA-1234", balance=2),
    MailKind.BIRTHDAY: Birthday(bonus_points=50),
    MailKind.CAMPAIGN_OFFER: CampaignOffer(
        campaign_name="We miss you", ends_on=date(2027, 1, 31), bonus_points=200, multiplier=Decimal(2)
    ),
    MailKind.REFERRAL_SUCCESS: ReferralSuccess(points=3, friend="Anna"),
    MailKind.PROGRAM_CHANGED: ProgramChanged(
        version=2,
        effective_from=date(2027, 1, 1),
        changes=[
            ProgramChange(what="reward_added", name="Mug", new_cost=300),
            ProgramChange(what="reward_cost", name="Coffee", old_cost=100, new_cost=122),
            ProgramChange(what="expiry"),
        ],
    ),
}
