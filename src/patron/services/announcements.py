"""What each change announces: the outbox events of an ingested event, a redemption, an adjustment, a publish,
and of the activation and expiry jobs. Services call `outbox.emit(conn, announcements.<change>(...), now=now)`
in the transaction of the change, so these functions only shape data; they write nothing."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from patron.domain.engine import AnyEvent, Decision
from patron.domain.events import Purchase, Refund
from patron.services.outbox import Emitted, EventType


def event_ingested(
    program_id: int, member_id: int, event: AnyEvent, decision: Decision, transaction_id: int | None
) -> list[Emitted]:
    """points.earned for points available now, points.pending for points waiting out the return window, and
    points.adjusted (source "refund") for points a refund clawed back."""
    if transaction_id is None or decision.points == 0:
        return []
    common: dict[str, Any] = {
        "event_id": event.event_id,
        "event_type": event.type,
        "transaction_id": transaction_id,
        "program_version": decision.program_version,
    }
    if isinstance(event, (Purchase, Refund)):
        common["order_id"] = event.order_id
    found = []
    pending = decision.pending_points
    available = decision.points - pending
    if isinstance(event, Refund) or decision.points < 0:
        found.append(_event(program_id, member_id, EventType.POINTS_ADJUSTED, event, common, decision.points, "refund"))
        return found
    if available > 0:
        found.append(_event(program_id, member_id, EventType.POINTS_EARNED, event, common, available))
    if pending > 0:
        waits = [lot.available_at for lot in decision.new_lots if lot.pending]
        data = common | {"points": pending, "available_at": min(waits).isoformat()}
        found.append(Emitted(program_id, EventType.POINTS_PENDING, member_id, data, event.occurred_at))
    return found


def _event(
    program_id: int,
    member_id: int,
    kind: EventType,
    event: AnyEvent,
    common: dict[str, Any],
    points: int,
    source: str | None = None,
) -> Emitted:
    data = common | {"points": points} | ({"source": source} if source else {})
    return Emitted(program_id, kind, member_id, data, event.occurred_at)


def redeemed(
    program_id: int,
    member_id: int,
    *,
    redemption_id: int,
    reward_id: str,
    reward_kind: str,
    cost: int,
    coupon_code: str | None,
    transaction_id: int,
    at: datetime,
) -> list[Emitted]:
    common = {"redemption_id": redemption_id, "reward_id": reward_id, "transaction_id": transaction_id}
    found = [
        Emitted(program_id, EventType.POINTS_REDEEMED, member_id, common | {"points": cost}, at),
        Emitted(
            program_id,
            EventType.REWARD_REDEEMED,
            member_id,
            common | {"reward_kind": reward_kind, "cost": cost, "coupon_code": coupon_code},
            at,
        ),
    ]
    if coupon_code is not None:
        found.append(Emitted(program_id, EventType.COUPON_ISSUED, member_id, common | {"coupon_code": coupon_code}, at))
    return found


def adjusted(
    program_id: int, member_id: int, *, points: int, reason: str, actor: str, transaction_id: int, at: datetime
) -> list[Emitted]:
    data = {"points": points, "reason": reason, "actor": actor, "transaction_id": transaction_id, "source": "manual"}
    return [Emitted(program_id, EventType.POINTS_ADJUSTED, member_id, data, at)]


def published(
    program_id: int, *, version: int, effective_from: datetime, published_by: str, at: datetime
) -> list[Emitted]:
    data = {"version": version, "effective_from": effective_from.isoformat(), "published_by": published_by}
    return [Emitted(program_id, EventType.PROGRAM_PUBLISHED, None, data, at)]


def lots_moved(kind: EventType, per_member: Iterable[tuple[int, int, int, int]], at: datetime) -> list[Emitted]:
    """points.activated or points.expired, one per member of a job's chunk: rows of (program, member, points,
    lots)."""
    return [
        Emitted(int(program), kind, int(member), {"points": int(points), "lots": int(lots)}, at)
        for program, member, points, lots in per_member
        if points
    ]
