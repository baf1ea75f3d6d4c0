"""A shopping cart as a checkout sends it, before the order exists: what coupons and previews are judged on."""

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from patron.domain.amounts import Money
from patron.domain.events import OrderLine


class Cart(BaseModel):
    """`total` is what the customer pays for the goods (before any coupon); shipping is charged apart."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    total: Money
    lines: tuple[OrderLine, ...] = Field(default=(), max_length=1000)
    shipping: Money = Decimal(0)

    @model_validator(mode="after")
    def _lines_fit_total(self) -> "Cart":
        if self.lines and sum((line.amount for line in self.lines), Decimal(0)) > self.total:
            raise ValueError("the lines add up to more than the cart's total")
        return self

    def line_for(self, sku: str) -> OrderLine | None:
        return next((line for line in self.lines if line.sku == sku), None)
