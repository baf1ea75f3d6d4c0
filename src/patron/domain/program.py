"""The program document: what a merchant publishes. Validated here; every error names the path of its field."""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from patron.domain.amounts import Money, Rounding
from patron.domain.coupons import (
    DEFAULT_PATTERN,
    MAX_BATCH,
    PATTERN,
    RESERVED_BATCH_PREFIXES,
    BadPattern,
    Offer,
    check_pattern,
)
from patron.domain.expressions import Expression, ExpressionError
from patron.domain.raffles import EntryCost, MaxEntries, Winners
from patron.domain.referrals import ReferralScheme

BUILTIN_EVENTS = frozenset({"purchase", "refund", "signup"})
EXPRESSION_VARIABLES = frozenset({"event", "member"})
Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
# Every rate and multiplier. Bounded so that the largest order times every multiplier that can stack (rule, tier,
# campaign) stays far inside the ledger's 64-bit columns: a version that could overflow them is refused at publish.
MAX_RATE = 1000
PositiveDecimal = Annotated[Decimal, Field(gt=0, le=MAX_RATE, max_digits=12, decimal_places=6, allow_inf_nan=False)]
# A hundred years: later dates leave the calendar for some time zones, and no program means to keep points longer.
MAX_DAYS = 36_600
MAX_MONTHS = 1_200


class Strict(BaseModel):
    """Unknown fields are errors: a typo in a program must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_expression(source: str | None) -> str | None:
    if source is not None:
        try:
            Expression.compile(source, allowed_variables=EXPRESSION_VARIABLES)
        except ExpressionError as exc:
            raise ValueError(f"invalid expression: {exc}") from exc
    return source


class Earning(Strict):
    points_per_unit: PositiveDecimal = Decimal(1)
    rounding: Rounding = Rounding.FLOOR


class CapPeriod(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    LIFETIME = "lifetime"


class Cap(Strict):
    """At most this many points, or this many firings, per member per period (in the program's time zone)."""

    period: CapPeriod
    max_points: Annotated[int, Field(gt=0)] | None = None
    max_times: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _limits_something(self) -> "Cap":
        if self.max_points is None and self.max_times is None:
            raise ValueError("a cap needs max_points, max_times or both")
        return self


class PerCurrencyUnit(Strict):
    per_currency_unit: PositiveDecimal


class Fixed(Strict):
    fixed: Annotated[int, Field(gt=0, le=1_000_000_000)]


class Formula(Strict):
    expression: str

    _compiled = field_validator("expression")(_check_expression)


PointsSpec = PerCurrencyUnit | Fixed | Formula


class EarnRule(Strict):
    id: Identifier
    description: str = ""
    # Not "on": YAML 1.1 reads that key as the boolean true.
    event: Identifier = Field(description="purchase, signup, or the name of a custom event such as review")
    when: str | None = Field(default=None, description="CEL condition over event and member")
    points: PointsSpec | None = Field(default=None, description="default: the program's earn rate (purchases)")
    multiplier: PositiveDecimal = Decimal(1)
    priority: int = Field(default=100, description="lower runs first")
    stop_after: bool = Field(default=False, description="when this rule fires, later rules are skipped")
    caps: tuple[Cap, ...] = ()
    pending: bool | None = Field(default=None, description="wait the return window; default: purchases only")
    unique_by: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")] | None = Field(
        default=None,
        description="custom events: the attribute holding an external reference (post URL, review id); "
        "the rule fires at most once per member per reference",
    )

    _when = field_validator("when")(_check_expression)

    @model_validator(mode="after")
    def _points_fit_event(self) -> "EarnRule":
        if self.event == "refund":
            raise ValueError("refunds claw points back; a rule cannot earn on them")
        if self.event != "purchase" and (self.points is None or isinstance(self.points, PerCurrencyUnit)):
            raise ValueError(f"rule on '{self.event}' has no amount to multiply: give points as fixed or expression")
        if self.unique_by is not None and self.event in BUILTIN_EVENTS:
            raise ValueError("unique_by deduplicates custom events by one of their attributes")
        return self

    @property
    def waits_for_return_window(self) -> bool:
        return self.event == "purchase" if self.pending is None else self.pending


class EarlyAccess(Strict):
    tier: Identifier = Field(description="this tier and the ones above it")
    available_from: datetime


class RewardKind(StrEnum):
    COUPON = "coupon"
    FREE_PRODUCT = "free_product"
    GIFT = "gift"


class Reward(Strict):
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    cost: Annotated[int, Field(gt=0, le=1_000_000_000)]
    kind: RewardKind
    value: Money | None = Field(default=None, description="coupons: the amount off")
    sku: str | None = Field(default=None, description="free products: the product given")
    stock: Annotated[int, Field(ge=0)] | None = Field(default=None, description="gifts: how many exist in all")
    per_member_limit: Annotated[int, Field(gt=0)] | None = None
    min_tier: Identifier | None = Field(default=None, description="only members of this tier or a higher one")
    available_from: datetime | None = Field(default=None, description="when members without early access may")
    early_access: tuple[EarlyAccess, ...] = Field(default=(), description="earlier dates for some tiers")

    @model_validator(mode="after")
    def _kind_has_its_fields(self) -> "Reward":
        needs = {RewardKind.COUPON: "value", RewardKind.FREE_PRODUCT: "sku", RewardKind.GIFT: "stock"}[self.kind]
        if getattr(self, needs) is None:
            raise ValueError(f"a {self.kind.value} reward needs '{needs}'")
        return self


class ExpireAfter(Strict):
    policy: Literal["after"]
    days: Annotated[int, Field(gt=0, le=MAX_DAYS)] | None = None
    months: Annotated[int, Field(gt=0, le=MAX_MONTHS)] | None = None

    @model_validator(mode="after")
    def _one_length(self) -> "ExpireAfter":
        if (self.days is None) == (self.months is None):
            raise ValueError("give exactly one of days or months")
        return self


class ExpireEndOfPeriod(Strict):
    """E.g. points earned in March with after_months 12 expire at the end of March next year (period month)."""

    policy: Literal["end_of_period"]
    period: Literal["month", "quarter", "year"]
    after_months: Annotated[int, Field(ge=0, le=MAX_MONTHS)] = 0


class NeverExpire(Strict):
    policy: Literal["never"]


ExpiryPolicy = Annotated[ExpireAfter | ExpireEndOfPeriod | NeverExpire, Field(discriminator="policy")]


class RefundShortfall(StrEnum):
    """What happens when a refund claws back points the member has already spent."""

    NEGATIVE_BALANCE = "negative_balance"  # the member owes them; new points settle the debt first
    WRITE_OFF = "write_off"  # the merchant absorbs them, recorded in the program's write-off account


class Refunds(Strict):
    shortfall: RefundShortfall = RefundShortfall.NEGATIVE_BALANCE


class TierMetric(StrEnum):
    """What qualifies a member for a tier. Points are those earned, never the balance: spending never demotes."""

    POINTS = "points"
    SPEND = "spend"
    VISITS = "visits"


class TierWindow(StrEnum):
    CALENDAR_YEAR = "calendar_year"
    ROLLING_12_MONTHS = "rolling_12_months"
    LIFETIME = "lifetime"


class TierLevel(Strict):
    id: Identifier
    name: str = Field(min_length=1, max_length=100)
    threshold: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False)]
    earn_multiplier: PositiveDecimal = Decimal(1)
    free_shipping: bool = False
    dedicated_service: bool = False


class NeverDowngrade(Strict):
    policy: Literal["never"]


class DowngradeAtWindowEnd(Strict):
    """At the end of each window a member below their tier's threshold keeps it `grace_days` more, then drops
    one level."""

    policy: Literal["window_end"]
    grace_days: Annotated[int, Field(ge=0, le=366)] = 0


DowngradePolicy = Annotated[NeverDowngrade | DowngradeAtWindowEnd, Field(discriminator="policy")]


class Tiers(Strict):
    qualify_on: TierMetric
    window: TierWindow
    downgrade: DowngradePolicy = NeverDowngrade(policy="never")
    levels: tuple[TierLevel, ...] = Field(min_length=1, description="lowest first, thresholds rising")

    @model_validator(mode="after")
    def _levels_rise(self) -> "Tiers":
        ids = [level.id for level in self.levels]
        if len(set(ids)) != len(ids):
            raise ValueError("tier ids must be unique")
        thresholds = [level.threshold for level in self.levels]
        if any(b <= a for a, b in pairwise(thresholds)):
            raise ValueError("tier thresholds must rise from the first level to the last")
        if self.qualify_on is not TierMetric.SPEND and any(t != t.to_integral_value() for t in thresholds):
            raise ValueError(f"{self.qualify_on.value} thresholds are whole numbers")
        return self

    def rank(self, tier_id: str | None) -> int:
        """0 for no tier, 1 for the first level, and so on."""
        if tier_id is None:
            return 0
        return next((i + 1 for i, level in enumerate(self.levels) if level.id == tier_id), 0)

    def level(self, tier_id: str | None) -> TierLevel | None:
        if tier_id is None:  # no tier: the engine asks on every purchase of a member without one
            return None
        return next((level for level in self.levels if level.id == tier_id), None)


class StampCard(Strict):
    """A punch card: `stamps` per qualifying purchase; at `size` stamps the reward is given and a new card starts."""

    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    when: str = Field(description="CEL condition: which purchases earn a stamp")
    stamps: Annotated[int, Field(gt=0, le=1000)] = 1
    size: Annotated[int, Field(gt=0, le=1000)]
    reward: Identifier = Field(description="the reward (a coupon or free product) the full card gives")
    expires_after_days: Annotated[int, Field(gt=0, le=MAX_DAYS)] | None = Field(
        default=None, description="a card not completed this long after its first stamp starts over"
    )

    _when = field_validator("when")(_check_expression)


class Occasion(Strict):
    """A grant on a date the member gives (birthday) or earns (sign-up anniversary), once a year."""

    points: Annotated[int, Field(gt=0, le=1_000_000)] | None = None
    reward: Identifier | None = Field(default=None, description="a coupon or free product given for free")
    days_before: Annotated[int, Field(ge=0, le=60)] = 0

    @model_validator(mode="after")
    def _gives_something(self) -> "Occasion":
        if self.points is None and self.reward is None:
            raise ValueError("an occasion gives points, a reward or both")
        return self


class CampaignTarget(Strict):
    """Who the campaign is for; every given part must hold (nothing given: all members)."""

    tier: Identifier | None = Field(default=None, description="this tier or a higher one")
    when: str | None = Field(default=None, description="CEL condition over event and member")
    lapsed_days: Annotated[int, Field(gt=0, le=MAX_DAYS)] | None = Field(
        default=None, description="no purchase in so many days"
    )

    _when = field_validator("when")(_check_expression)


class CampaignEffect(Strict):
    multiplier: PositiveDecimal | None = Field(default=None, description="of the points the purchase earns")
    bonus_points: Annotated[int, Field(gt=0, le=1_000_000)] | None = None
    reward: Identifier | None = Field(default=None, description="a coupon or free product given for free")

    @model_validator(mode="after")
    def _does_something(self) -> "CampaignEffect":
        if self.multiplier is None and self.bonus_points is None and self.reward is None:
            raise ValueError("an effect needs multiplier, bonus_points or reward")
        return self


class Campaign(Strict):
    """A promotion on purchases between `starts_at` and `ends_at`. Applied by priority (lower first); an
    exclusive campaign applies only alone, and stops the ones after it."""

    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    starts_at: datetime
    ends_at: datetime
    target: CampaignTarget = CampaignTarget()
    effect: CampaignEffect
    budget_points: Annotated[int, Field(gt=0)] | None = Field(default=None, description="stops when spent")
    priority: int = 100
    exclusive: bool = False

    @model_validator(mode="after")
    def _ends_after_start(self) -> "Campaign":
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class CouponBatch(Strict):
    """A batch of unique codes that all give `offer`, made when the first version declaring it is published.

    Its codes, once made, are out in the world: a later version may raise `count` (the missing codes are made) but
    not lower it, nor change the offer or the pattern; one that leaves the batch out does not withdraw its codes.
    """

    id: Identifier = Field(description="the batch's name, as the API and the CLI show it")
    offer: Offer
    count: Annotated[int, Field(strict=True, ge=0, le=MAX_BATCH)] = Field(
        description="codes anyone holding one may use; 0 for a batch whose codes go to one member each (referrals)"
    )
    pattern: Annotated[str, Field(pattern=PATTERN)] = Field(
        default=DEFAULT_PATTERN, description="'#' marks a random character; at least 8"
    )

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.startswith(RESERVED_BATCH_PREFIXES):
            raise ValueError(f"names beginning {' or '.join(RESERVED_BATCH_PREFIXES)} are kept for prize codes")
        return value

    @field_validator("pattern")
    @classmethod
    def _unguessable(cls, value: str, info: ValidationInfo) -> str:
        count = info.data.get("count")
        if count is not None:  # else count itself is at fault, and named
            try:
                check_pattern(value, count)
            except BadPattern as exc:
                raise ValueError(str(exc)) from exc
        return value


class RaffleTerms(Strict):
    """What members buy entries on: the same for a raffle the program declares and one an admin opens ad hoc."""

    prize_reward_id: Identifier = Field(description="the catalog reward (in rewards) each winner receives")
    winners: Winners
    entry_cost: EntryCost
    max_entries_per_member: MaxEntries
    draws_at: AwareDatetime = Field(description="entries close at this moment; the draw can run from then on")
    refund_losers: bool = Field(default=False, description="give non-winners their points back at the draw")


# The terms a later version may not change once members have bought entries on them.
RAFFLE_TERMS = tuple(RaffleTerms.model_fields)


class Raffle(RaffleTerms):
    """A points raffle, made when the first version declaring it is published: its secret seed is drawn then and
    its SHA-256 published. Its terms never change afterwards (members bought entries on them)."""

    id: Identifier = Field(description="the raffle's name, as the API and the CLI show it")


def _field_error(loc: tuple[str | int, ...], message: str, value: object) -> ValidationError:
    """An error located at one field of the document (raffles.0.prize_reward_id), from a check over the whole."""
    error = PydanticCustomError("value_error", "{message}", {"message": message})
    return ValidationError.from_exception_data("ProgramDocument", [InitErrorDetails(type=error, loc=loc, input=value)])


class ProgramDocument(Strict):
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    timezone: str = "UTC"
    earning: Earning = Earning()
    pending_days: Annotated[int, Field(ge=0, le=365)] = 0
    expiry: ExpiryPolicy = NeverExpire(policy="never")
    refunds: Refunds = Refunds()
    rules: tuple[EarnRule, ...] = ()
    rewards: tuple[Reward, ...] = ()
    referrals: ReferralScheme | None = Field(default=None, description="rewards for members who bring members")
    tiers: Tiers | None = None
    stamp_cards: tuple[StampCard, ...] = ()
    birthday: Occasion | None = None
    anniversary: Occasion | None = None
    campaigns: tuple[Campaign, ...] = ()
    coupon_batches: tuple[CouponBatch, ...] = Field(default=(), description="codes made when published")
    raffles: tuple[Raffle, ...] = Field(
        default=(), description="points raffles: made when published, open to entries from when the version starts"
    )
    recognition: bool = Field(
        default=False, description="keep each member's visits and most bought products and categories"
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("rules", "rewards", "stamp_cards", "campaigns", "coupon_batches", "raffles")
    @classmethod
    def _unique_ids(
        cls,
        items: tuple[EarnRule, ...]
        | tuple[Reward, ...]
        | tuple[StampCard, ...]
        | tuple[Campaign, ...]
        | tuple[CouponBatch, ...]
        | tuple[Raffle, ...],
    ) -> tuple[object, ...]:
        seen: set[str] = set()
        for item in items:
            if item.id in seen:
                raise ValueError(f"id {item.id!r} is used twice")
            seen.add(item.id)
        return items

    @model_validator(mode="after")
    def _references_exist(self) -> "ProgramDocument":
        tier_ids = {level.id for level in self.tiers.levels} if self.tiers else set()
        reward_ids = {r.id for r in self.rewards}
        free = {r.id for r in self.rewards if r.kind in (RewardKind.COUPON, RewardKind.FREE_PRODUCT)}
        wanted_tiers = [
            *((f"rewards.{r.id}.min_tier", r.min_tier) for r in self.rewards),
            *((f"rewards.{r.id}.early_access", e.tier) for r in self.rewards for e in r.early_access),
            *((f"campaigns.{c.id}.target.tier", c.target.tier) for c in self.campaigns),
        ]
        for path, tier in wanted_tiers:
            if tier is not None and tier not in tier_ids:
                raise ValueError(f"{path}: no tier {tier!r} in tiers.levels")
        wanted_rewards = [
            *((f"stamp_cards.{c.id}.reward", c.reward) for c in self.stamp_cards),
            ("birthday.reward", self.birthday.reward if self.birthday else None),
            ("anniversary.reward", self.anniversary.reward if self.anniversary else None),
            *((f"campaigns.{c.id}.effect.reward", c.effect.reward) for c in self.campaigns),
        ]
        for path, reward in wanted_rewards:
            if reward is not None and reward not in reward_ids:
                raise ValueError(f"{path}: no reward {reward!r} in rewards")
            if reward is not None and reward not in free:
                raise ValueError(f"{path}: {reward!r} must be a coupon or free product to be given away")
        for index, raffle in enumerate(self.raffles):
            if raffle.prize_reward_id not in reward_ids:
                message = f"no reward {raffle.prize_reward_id!r} in rewards"
                raise _field_error(("raffles", index, "prize_reward_id"), message, raffle.prize_reward_id)
        return self

    def reward(self, reward_id: str) -> Reward | None:
        return next((r for r in self.rewards if r.id == reward_id), None)
