"""The program document: what a merchant publishes. Validated here; every error names the path of its field."""

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from patron.domain.amounts import Money, Rounding
from patron.domain.expressions import Expression, ExpressionError

BUILTIN_EVENTS = frozenset({"purchase", "refund", "signup"})
EXPRESSION_VARIABLES = frozenset({"event", "member"})
Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
PositiveDecimal = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=6, allow_inf_nan=False)]


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

    _when = field_validator("when")(_check_expression)

    @model_validator(mode="after")
    def _points_fit_event(self) -> "EarnRule":
        if self.event == "refund":
            raise ValueError("refunds claw points back; a rule cannot earn on them")
        if self.event != "purchase" and (self.points is None or isinstance(self.points, PerCurrencyUnit)):
            raise ValueError(f"rule on '{self.event}' has no amount to multiply: give points as fixed or expression")
        return self

    @property
    def waits_for_return_window(self) -> bool:
        return self.event == "purchase" if self.pending is None else self.pending


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

    @model_validator(mode="after")
    def _kind_has_its_fields(self) -> "Reward":
        needs = {RewardKind.COUPON: "value", RewardKind.FREE_PRODUCT: "sku", RewardKind.GIFT: "stock"}[self.kind]
        if getattr(self, needs) is None:
            raise ValueError(f"a {self.kind.value} reward needs '{needs}'")
        return self


class ExpireAfter(Strict):
    policy: Literal["after"]
    days: Annotated[int, Field(gt=0)] | None = None
    months: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one_length(self) -> "ExpireAfter":
        if (self.days is None) == (self.months is None):
            raise ValueError("give exactly one of days or months")
        return self


class ExpireEndOfPeriod(Strict):
    """E.g. points earned in March with after_months 12 expire at the end of March next year (period month)."""

    policy: Literal["end_of_period"]
    period: Literal["month", "quarter", "year"]
    after_months: Annotated[int, Field(ge=0)] = 0


class NeverExpire(Strict):
    policy: Literal["never"]


ExpiryPolicy = Annotated[ExpireAfter | ExpireEndOfPeriod | NeverExpire, Field(discriminator="policy")]


class RefundShortfall(StrEnum):
    """What happens when a refund claws back points the member has already spent."""

    NEGATIVE_BALANCE = "negative_balance"  # the member owes them; new points settle the debt first
    WRITE_OFF = "write_off"  # the merchant absorbs them, recorded in the program's write-off account


class Refunds(Strict):
    shortfall: RefundShortfall = RefundShortfall.NEGATIVE_BALANCE


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

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("rules", "rewards")
    @classmethod
    def _unique_ids(cls, items: tuple[EarnRule, ...] | tuple[Reward, ...]) -> tuple[object, ...]:
        seen: set[str] = set()
        for item in items:
            if item.id in seen:
                raise ValueError(f"id {item.id!r} is used twice")
            seen.add(item.id)
        return items

    def reward(self, reward_id: str) -> Reward | None:
        return next((r for r in self.rewards if r.id == reward_id), None)
