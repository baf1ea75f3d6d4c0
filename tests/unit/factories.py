"""Small builders for engine unit tests: a compiled program from a few fields, events, member states, lots."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from patron.domain.engine import CompiledProgram, Decision, MemberState
from patron.domain.events import Custom, OrderLine, Purchase, Refund, Signup
from patron.domain.ledger import Account, Lot, LotStatus
from patron.domain.program import ProgramDocument

T = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday, noon UTC


def document(**fields: Any) -> ProgramDocument:
    return ProgramDocument.model_validate({"name": "Test", "currency": "USD", "timezone": "UTC", **fields})


def program(**fields: Any) -> CompiledProgram:
    return CompiledProgram.compile(document(**fields), 1)


def purchase(
    total: str | Decimal = "10.00",
    *,
    order_id: str = "o1",
    at: datetime = T,
    lines: tuple[dict[str, Any], ...] = (),
    **extra: Any,
) -> Purchase:
    return Purchase(
        event_id=f"p-{order_id}",
        member_id="m1",
        occurred_at=at,
        order_id=order_id,
        total=Decimal(total),
        lines=tuple(OrderLine.model_validate(line) for line in lines),
        **extra,
    )


def refund(amount: str | None = None, *, order_id: str = "o1", at: datetime = T, lines: tuple = ()) -> Refund:
    return Refund(
        event_id=f"r-{order_id}-{amount}",
        member_id="m1",
        occurred_at=at,
        order_id=order_id,
        amount=None if amount is None else Decimal(amount),
        lines=tuple(OrderLine.model_validate(line) for line in lines),
    )


def signup(at: datetime = T) -> Signup:
    return Signup(event_id="s1", member_id="m1", occurred_at=at)


def custom(name: str, at: datetime = T, **attributes: Any) -> Custom:
    return Custom(event_id=f"c-{name}", member_id="m1", occurred_at=at, name=name, attributes=attributes)


def member(**fields: Any) -> MemberState:
    return MemberState(member_id="m1", **fields)


def lot(
    lot_id: int,
    remaining: int,
    *,
    points: int | None = None,
    status: LotStatus = LotStatus.AVAILABLE,
    earned_at: datetime = T,
    expires_at: datetime | None = None,
    order_id: str | None = None,
) -> Lot:
    return Lot(lot_id, points if points is not None else remaining, remaining, status, earned_at, expires_at, order_id)


def postings_of(decision: Decision) -> dict[Account, int]:
    """A decision's postings by account (the engine never posts twice to one account)."""
    found: dict[Account, int] = {}
    for p in decision.postings:
        assert p.account not in found, f"two postings on {p.account}"
        found[p.account] = p.amount
    assert sum(found.values()) == 0, f"unbalanced: {found}"
    return found


def error_paths(exc: ValidationError) -> dict[str, str]:
    """Each error's location as a dotted path (rules.0.when), with its message."""
    return {".".join(str(part) for part in e["loc"]): e["msg"] for e in exc.errors()}
