"""Coupon offers and whether one applies to a cart. Pure: the caller supplies the time and the usage counts.

Kinds:
- amount_off: a fixed amount off the cart (never more than the cart).
- percent_off: a percentage of the cart, rounded down to the cent (a coupon never gives more than it says).
- free_product: one unit of `sku` free; the cart must hold it.
- free_shipping: the cart's shipping charge off.
- spend_and_save: "spend 200, get 20 off": `amount` off once the cart reaches `min_spend` (required).
- trial: a new product to try: `percent` (default 100) off one unit of `sku`, once per member by default, and not
  for a member known to have bought it (when the program keeps what members buy: `recognition`).
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from patron.domain.amounts import Money

if TYPE_CHECKING:
    # Only named in signatures: the program document declares offers, and carts import the document's events.
    from patron.domain.carts import Cart

CENT = Decimal("0.01")
Percent = Annotated[Decimal, Field(gt=0, le=100, max_digits=5, decimal_places=2)]
Sku = Annotated[str, Field(min_length=1, max_length=128)]


class CouponKind(StrEnum):
    AMOUNT_OFF = "amount_off"
    PERCENT_OFF = "percent_off"
    FREE_PRODUCT = "free_product"
    FREE_SHIPPING = "free_shipping"
    SPEND_AND_SAVE = "spend_and_save"
    TRIAL = "trial"


_NEEDS: dict[CouponKind, tuple[str, ...]] = {
    CouponKind.AMOUNT_OFF: ("amount",),
    CouponKind.PERCENT_OFF: ("percent",),
    CouponKind.FREE_PRODUCT: ("sku",),
    CouponKind.FREE_SHIPPING: (),
    CouponKind.SPEND_AND_SAVE: ("amount", "min_spend"),
    CouponKind.TRIAL: ("sku",),
}
_ALLOWS: dict[CouponKind, frozenset[str]] = {
    CouponKind.AMOUNT_OFF: frozenset({"amount"}),
    CouponKind.PERCENT_OFF: frozenset({"percent"}),
    CouponKind.FREE_PRODUCT: frozenset({"sku"}),
    CouponKind.FREE_SHIPPING: frozenset(),
    CouponKind.SPEND_AND_SAVE: frozenset({"amount"}),
    CouponKind.TRIAL: frozenset({"sku", "percent"}),
}


class Offer(BaseModel):
    """What every code of a batch gives, and the limits on using it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: CouponKind
    amount: Annotated[Money, Field(gt=0)] | None = None
    percent: Percent | None = None
    sku: Sku | None = None
    min_spend: Money = Decimal(0)
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = Field(default=None, description="the first moment it is no longer valid")
    uses_per_code: Annotated[int, Field(gt=0, le=1_000_000)] = Field(default=1, description="1: single use")
    per_member_limit: Annotated[int, Field(gt=0, le=1_000_000)] | None = None

    @model_validator(mode="after")
    def _kind_has_its_fields(self) -> "Offer":
        for needed in _NEEDS[self.kind]:
            if not getattr(self, needed):
                raise ValueError(f"a {self.kind.value} coupon needs '{needed}'")
        for name in ("amount", "percent", "sku"):
            if getattr(self, name) is not None and name not in _ALLOWS[self.kind]:
                raise ValueError(f"a {self.kind.value} coupon has no '{name}'")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self

    @property
    def member_limit(self) -> int | None:
        """A trial is once per member unless the batch says otherwise."""
        if self.per_member_limit is None and self.kind is CouponKind.TRIAL:
            return 1
        return self.per_member_limit

    def describe(self, currency: str = "") -> str:
        unit = f" {currency}" if currency else ""
        match self.kind:
            case CouponKind.AMOUNT_OFF:
                return f"{self.amount}{unit} off"
            case CouponKind.PERCENT_OFF:
                return f"{self.percent}% off"
            case CouponKind.FREE_PRODUCT:
                return f"a free {self.sku}"
            case CouponKind.FREE_SHIPPING:
                return "free shipping"
            case CouponKind.SPEND_AND_SAVE:
                return f"spend {self.min_spend}{unit}, get {self.amount}{unit} off"
            case CouponKind.TRIAL:
                return f"try {self.sku}: {self.percent or 100}% off one"


@dataclass(frozen=True, slots=True)
class Usage:
    """How often the code has been used, and how often this member used a code of the batch."""

    code_uses: int = 0
    member_uses: int = 0
    bought_before: bool = False  # the member already bought the offer's product (trials are for new products)


@dataclass(frozen=True, slots=True)
class Verdict:
    applies: bool
    discount: Decimal
    reason: str
    field: str = "code"
    spend_more: Decimal | None = None  # what the cart lacks to reach the minimum spend, when that is all it lacks


def judge(offer: Offer, cart: "Cart", *, now: datetime, usage: Usage, member_known: bool = True) -> Verdict:
    """Whether the offer applies to the cart now, and the discount it gives."""
    if offer.valid_from is not None and now < offer.valid_from:
        return _no(f"not valid before {offer.valid_from.isoformat()}")
    if offer.valid_until is not None and now >= offer.valid_until:
        return _no(f"expired at {offer.valid_until.isoformat()}")
    if usage.code_uses >= offer.uses_per_code:
        return _no("already used" if offer.uses_per_code == 1 else f"used up ({offer.uses_per_code} uses)")
    limit = offer.member_limit
    if limit is not None:
        if not member_known:
            return _no(f"limited to {limit} per member: say which member is using it", field="member_id")
        if usage.member_uses >= limit:
            return _no(f"this member has used this offer {usage.member_uses} time(s), the limit is {limit}")
    if offer.kind is CouponKind.TRIAL and usage.bought_before:
        return _no(f"a trial is for a product new to the member, who has bought {offer.sku} before", field="member_id")
    if cart.total < offer.min_spend:
        short = offer.min_spend - cart.total
        return Verdict(False, Decimal(0), f"needs a spend of {offer.min_spend}: {short} more", "cart.total", short)
    discount, missing = _discount(offer, cart)
    if missing:
        return _no(missing, field="cart.lines")
    return Verdict(True, discount, offer.describe())


def _discount(offer: Offer, cart: "Cart") -> tuple[Decimal, str | None]:
    match offer.kind:
        case CouponKind.AMOUNT_OFF | CouponKind.SPEND_AND_SAVE:
            assert offer.amount is not None
            return min(offer.amount, cart.total), None
        case CouponKind.PERCENT_OFF:
            assert offer.percent is not None
            return _cents(cart.total * offer.percent / 100), None
        case CouponKind.FREE_SHIPPING:
            return cart.shipping, None
        case CouponKind.FREE_PRODUCT | CouponKind.TRIAL:
            assert offer.sku is not None
            line = cart.line_for(offer.sku)
            if line is None:
                return Decimal(0), f"the cart holds no {offer.sku}"
            share = offer.percent if offer.percent is not None else Decimal(100)
            return _cents(line.unit_price * share / 100), None


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_FLOOR)


def _no(reason: str, *, field: str = "code") -> Verdict:
    return Verdict(False, Decimal(0), reason, field)


# Crockford's base32 without I, L, O, U: codes read aloud at a till are not mistaken.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RANDOM_MARK = "#"
MIN_RANDOM_CHARACTERS = 8  # 40 bits: guessing one valid code of a million takes about a million tries
PATTERN = r"^[A-Z0-9#-]{1,64}$"
DEFAULT_PATTERN = "####-####-####"
MAX_BATCH = 100_000
# Batches the service makes for codes handed to one member each: a batch of the program's own never takes these names.
RESERVED_BATCH_PREFIXES = ("reward.", "raffle.")


class BadPattern(ValueError):
    pass


def check_pattern(pattern: str, count: int) -> None:
    """A pattern is literal characters with '#' where a random character goes (SPRING-####-####)."""
    random_characters = pattern.count(RANDOM_MARK)
    if random_characters < MIN_RANDOM_CHARACTERS:
        raise BadPattern(
            f"a pattern needs at least {MIN_RANDOM_CHARACTERS} '#' (random characters) to be unguessable; "
            f"{pattern!r} has {random_characters}"
        )
    # Codes must be sparse among the possible ones, or guessing any valid code becomes easy.
    if len(CODE_ALPHABET) ** random_characters < count * 1_000_000:
        raise BadPattern(f"{pattern!r} is too short for {count} codes: add '#'")


def fill_pattern(pattern: str, random_characters: str) -> str:
    """The pattern with its '#' replaced, in order, by the given characters."""
    chars = iter(random_characters)
    return "".join(next(chars) if c == RANDOM_MARK else c for c in pattern)


def normalize_code(code: str) -> str:
    """Codes are matched without regard to case or surrounding spaces, as a cashier types them."""
    return code.strip().upper()
