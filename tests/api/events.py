"""Event bodies as a merchant's system would send them."""

from typing import Any

WHEN = "2026-01-05T10:00:00Z"


def signup(event_id: str = "s1", member_id: str = "m1", **fields: Any) -> dict[str, Any]:
    return {"type": "signup", "event_id": event_id, "member_id": member_id, "occurred_at": WHEN, **fields}


def purchase(
    event_id: str = "p1", member_id: str = "m1", order_id: str = "o1", total: Any = "150.00", **fields: Any
) -> dict[str, Any]:
    return {
        "type": "purchase",
        "event_id": event_id,
        "member_id": member_id,
        "occurred_at": WHEN,
        "order_id": order_id,
        "total": total,
        **fields,
    }


def refund(event_id: str = "r1", member_id: str = "m1", order_id: str = "o1", **fields: Any) -> dict[str, Any]:
    return {
        "type": "refund",
        "event_id": event_id,
        "member_id": member_id,
        "occurred_at": WHEN,
        "order_id": order_id,
        **fields,
    }


def review(event_id: str = "v1", member_id: str = "m1", **fields: Any) -> dict[str, Any]:
    return {
        "type": "custom",
        "name": "review",
        "event_id": event_id,
        "member_id": member_id,
        "occurred_at": WHEN,
        **fields,
    }
