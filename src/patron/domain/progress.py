"""What the engine remembers of a member beyond points: tier and its qualifying tallies, open stamp cards, the
categories and products they buy, the external references they already earned on.

A plain value, stored as one JSON document per member and carried forward in memory by replays, so production,
dry runs and the simulator decide on exactly the same state.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from patron.domain.values import quick_init


@quick_init
@dataclass(frozen=True, slots=True)
class Tally:
    """Qualifying amounts for tiers over one month (or a lifetime)."""

    points: int = 0
    spend: Decimal = Decimal(0)
    visits: int = 0

    def plus(self, other: "Tally") -> "Tally":
        return Tally(self.points + other.points, self.spend + other.spend, self.visits + other.visits)


@quick_init
@dataclass(frozen=True, slots=True)
class StampedLine:
    sku: str
    category: str
    quantity: int
    unit_price: Decimal


@quick_init
@dataclass(frozen=True, slots=True)
class StampedOrder:
    """The purchase a stamp was given for, as the card's condition saw it (less what was refunded since), so a
    partial refund can judge the condition again on what remains of the order."""

    at: datetime
    total: Decimal
    lines: tuple[StampedLine, ...] = ()
    channel: str = ""
    store: str = ""


@quick_init
@dataclass(frozen=True, slots=True)
class Stamp:
    order_id: str
    count: int
    order: StampedOrder | None = None  # None for stamps recorded before orders were kept with them


@quick_init
@dataclass(frozen=True, slots=True)
class OpenCard:
    """A stamp card being filled: its stamps, each with the order that earned it (so a refund can take it back)."""

    started_at: datetime
    stamps: tuple[Stamp, ...] = ()

    @property
    def count(self) -> int:
        return sum(s.count for s in self.stamps)


@quick_init
@dataclass(frozen=True, slots=True)
class Progress:
    tier: str | None = None
    tier_since: datetime | None = None
    reviewed_through: str | None = None  # the last window whose end was checked for a downgrade
    months: Mapping[str, Tally] = field(default_factory=dict)  # "2026-03", in the program's time zone
    lifetime: Tally = Tally()
    cards: Mapping[str, OpenCard] = field(default_factory=dict)
    categories: Mapping[str, int] = field(default_factory=dict)  # items bought per category
    skus: Mapping[str, int] = field(default_factory=dict)
    last_purchase_at: datetime | None = None
    references: frozenset[str] = frozenset()  # "rule id:external reference" already rewarded
    scores: Mapping[str, int] = field(default_factory=dict)  # latest score per custom event (e.g. NPS surveys)

    def to_json(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "tier_since": _time(self.tier_since),
            "reviewed_through": self.reviewed_through,
            "months": {k: _tally(v) for k, v in sorted(self.months.items())},
            "lifetime": _tally(self.lifetime),
            "cards": {
                k: {"started_at": _time(c.started_at), "stamps": [_stamp(s) for s in c.stamps]}
                for k, c in sorted(self.cards.items())
            },
            "categories": dict(self.categories),
            "skus": dict(self.skus),
            "last_purchase_at": _time(self.last_purchase_at),
            "references": sorted(self.references),
            "scores": dict(self.scores),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "Progress":
        if not data:
            return EMPTY
        return cls(
            tier=data.get("tier"),
            tier_since=_parse_time(data.get("tier_since")),
            reviewed_through=data.get("reviewed_through"),
            months={k: _parse_tally(v) for k, v in data.get("months", {}).items()},
            lifetime=_parse_tally(data.get("lifetime", {})),
            cards={
                k: OpenCard(datetime.fromisoformat(c["started_at"]), tuple(_parse_stamp(s) for s in c["stamps"]))
                for k, c in data.get("cards", {}).items()
            },
            categories=dict(data.get("categories", {})),
            skus=dict(data.get("skus", {})),
            last_purchase_at=_parse_time(data.get("last_purchase_at")),
            references=frozenset(data.get("references", ())),
            scores=dict(data.get("scores", {})),
        )

    def favourite(self, counts: Mapping[str, int]) -> str | None:
        """The most bought key (ties: alphabetical first), or None."""
        best = [k for k in counts if k]
        return min(best, key=lambda k: (-counts[k], k)) if best else None


EMPTY = Progress()


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _stamp(stamp: Stamp) -> list[Any]:
    if stamp.order is None:
        return [stamp.order_id, stamp.count]
    order = stamp.order
    return [
        stamp.order_id,
        stamp.count,
        {
            "at": order.at.isoformat(),
            "total": str(order.total),
            "lines": [[line.sku, line.category, line.quantity, str(line.unit_price)] for line in order.lines],
            "channel": order.channel,
            "store": order.store,
        },
    ]


def _parse_stamp(data: list[Any]) -> Stamp:
    if len(data) == 2:  # written before stamps kept their order
        return Stamp(data[0], data[1])
    order_id, count, order = data
    return Stamp(
        order_id,
        count,
        StampedOrder(
            datetime.fromisoformat(order["at"]),
            Decimal(order["total"]),
            tuple(
                StampedLine(sku, category, quantity, Decimal(price))
                for sku, category, quantity, price in order["lines"]
            ),
            order.get("channel", ""),
            order.get("store", ""),
        ),
    )


def _tally(tally: Tally) -> dict[str, Any]:
    return {"points": tally.points, "spend": str(tally.spend), "visits": tally.visits}


def _parse_tally(data: Mapping[str, Any]) -> Tally:
    return Tally(int(data.get("points", 0)), Decimal(data.get("spend", "0")), int(data.get("visits", 0)))
