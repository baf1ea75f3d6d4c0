"""What happens to a member, as the merchant reports it. Strict: unknown fields are refused."""

from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from patron.domain.amounts import Money, minor_units
from patron.domain.program import BUILTIN_EVENTS, Identifier

ExternalId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]*$")]
Quantity = Annotated[int, Field(gt=0, le=1_000_000, strict=True)]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: ExternalId = Field(description="the client's id for this event; a retry sends the same one")
    member_id: ExternalId
    occurred_at: AwareDatetime


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Annotated[str, Field(min_length=1, max_length=128)]
    category: Annotated[str, Field(max_length=128)] = ""
    quantity: Quantity = 1
    unit_price: Money

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


class Purchase(_Event):
    type: Literal["purchase"] = "purchase"
    order_id: ExternalId
    total: Money
    lines: tuple[OrderLine, ...] = ()
    channel: Annotated[str, Field(max_length=64)] = ""
    store: Annotated[str, Field(max_length=64)] = ""


class Refund(_Event):
    """Give either the refunded amount or the refunded lines (their amounts are added up)."""

    type: Literal["refund"] = "refund"
    order_id: ExternalId
    amount: Annotated[Money, Field(gt=0)] | None = None
    lines: tuple[OrderLine, ...] = ()

    @model_validator(mode="after")
    def _amount_or_lines(self) -> "Refund":
        if (self.amount is None) == (not self.lines):
            raise ValueError("give exactly one of amount or lines")
        return self

    @property
    def refunded(self) -> Decimal:
        return self.amount if self.amount is not None else sum((line.amount for line in self.lines), Decimal(0))


class Signup(_Event):
    type: Literal["signup"] = "signup"


class Custom(_Event):
    """Reviews, social shares, surveys: anything the program's rules name."""

    type: Literal["custom"] = "custom"
    name: Identifier
    attributes: dict[str, Annotated[str | int | bool, Field()]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_builtin(self) -> "Custom":
        if self.name in BUILTIN_EVENTS:
            raise ValueError(f"'{self.name}' is a built-in event type; send it as type '{self.name}'")
        return self


Event = Annotated[Purchase | Refund | Signup | Custom, Field(discriminator="type")]


def rule_trigger(event: Purchase | Refund | Signup | Custom) -> str:
    """The name a rule's `on` matches."""
    # The type asked first: isinstance answering no costs a pydantic model's metaclass check on every event.
    kind = event.type
    return event.name if kind == "custom" and isinstance(event, Custom) else kind


def _purchase_lines(event: Purchase) -> list[dict[str, Any]]:
    if not event.lines:
        return []
    return [
        {
            "sku": line.sku,
            "category": line.category,
            "quantity": line.quantity,
            "unit_price_minor": minor_units(line.unit_price),
        }
        for line in event.lines
    ]


_COMMON_FIELDS: dict[str, Callable[[Any], Any]] = {
    "type": lambda e: e.type,
    "event_id": lambda e: e.event_id,
    "occurred_at": lambda e: e.occurred_at.isoformat(),
}
_FIELDS: dict[type, dict[str, Callable[[Any], Any]]] = {
    Purchase: _COMMON_FIELDS
    | {
        "order_id": lambda e: e.order_id,
        "total_minor": lambda e: minor_units(e.total),
        "channel": lambda e: e.channel,
        "store": lambda e: e.store,
        "item_count": lambda e: sum(line.quantity for line in e.lines),
        "lines": _purchase_lines,
    },
    Refund: _COMMON_FIELDS | {"order_id": lambda e: e.order_id},
    Signup: _COMMON_FIELDS,
    Custom: _COMMON_FIELDS | {"name": lambda e: e.name, "attributes": lambda e: dict(e.attributes)},
}


def as_expression_context(
    event: Purchase | Refund | Signup | Custom, fields: frozenset[str] | None = None
) -> dict[str, Any]:
    """The event as CEL sees it: money in integer minor units, never a float.

    Only `fields` are built (all when None): handing CEL a smaller context is what makes evaluation fast.
    """
    return {name: get(event) for name, get in expression_getters(type(event), fields)}


Getter = Callable[[Any], Any]


def expression_getters(
    event_type: type[Purchase | Refund | Signup | Custom], fields: frozenset[str] | None = None
) -> tuple[tuple[str, Getter], ...]:
    """How to read each of `fields` (all when None) of an event of `event_type` as CEL sees it: worked out once per
    program by the engine, which then builds each event's context with no set arithmetic."""
    getters = _FIELDS[event_type]
    wanted = getters.keys() if fields is None else fields & getters.keys()
    return tuple((name, getters[name]) for name in wanted)
