"""Webhook subscriptions of a program: create (the secret is shown once), list, rotate the secret, disable;
and the deliveries made for them, with replay."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel
from sqlalchemy import Connection, insert, select, update

from patron.services.errors import Invalid, NotFound
from patron.services.outbox import EventType
from patron.store.background import outbox, webhook_deliveries, webhook_subscriptions
from patron.store.tables import members
from patron.webhooks.signing import new_secret


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its first attempt or a retry
    DELIVERED = "delivered"
    DEAD = "dead"  # failed every attempt; `replay` sends it again


class Subscription(BaseModel):
    id: int
    url: str
    event_types: list[str]
    description: str
    created_at: datetime
    disabled_at: datetime | None


class SubscriptionWithSecret(BaseModel):
    subscription: Subscription
    secret: str  # shown this once: store it where the receiver can read it


class Delivery(BaseModel):
    id: int
    subscription_id: int
    message_id: str
    type: str
    member_id: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def create(
    conn: Connection, program_id: int, url: str, event_types: Sequence[str], *, description: str, now: datetime
) -> SubscriptionWithSecret:
    secret = new_secret()
    values = {
        "program_id": program_id,
        "url": _checked_url(url),
        "event_types": _checked_types(event_types),
        "description": description,
        "secret": secret,
        "created_at": now,
    }
    subscription_id = conn.execute(
        insert(webhook_subscriptions).returning(webhook_subscriptions.c.id), values
    ).scalar_one()
    return SubscriptionWithSecret(subscription=get(conn, program_id, int(subscription_id)), secret=secret)


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"not an http(s) URL: {url!r}", field="url")
    if len(url) > 2048:
        raise Invalid("a URL of at most 2048 characters", field="url")
    return url


def _checked_types(event_types: Sequence[str]) -> list[str]:
    if not event_types:
        raise Invalid(f"name at least one event type: {', '.join(t.value for t in EventType)}", field="event_types")
    known = {t.value for t in EventType}
    for name in event_types:
        if name not in known:
            raise Invalid(f"no event type {name!r}; known: {', '.join(sorted(known))}", field="event_types")
    return sorted(set(event_types))


def get(conn: Connection, program_id: int, subscription_id: int) -> Subscription:
    row = conn.execute(_subscriptions(program_id).where(webhook_subscriptions.c.id == subscription_id)).first()
    if row is None:
        raise NotFound(f"no webhook subscription {subscription_id}", field="subscription_id")
    return _subscription(row)


def list_all(conn: Connection, program_id: int) -> list[Subscription]:
    return [_subscription(r) for r in conn.execute(_subscriptions(program_id).order_by(webhook_subscriptions.c.id))]


def _subscriptions(program_id: int) -> Any:
    return select(webhook_subscriptions).where(webhook_subscriptions.c.program_id == program_id)


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        url=row.url,
        event_types=list(row.event_types),
        description=row.description,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def rotate(
    conn: Connection, program_id: int, subscription_id: int, *, now: datetime, grace: timedelta
) -> SubscriptionWithSecret:
    """A new secret; the old one still signs deliveries (beside the new) until `grace` has passed."""
    current = conn.execute(
        select(webhook_subscriptions.c.secret).where(
            webhook_subscriptions.c.id == subscription_id, webhook_subscriptions.c.program_id == program_id
        )
    ).scalar_one_or_none()
    if current is None:
        raise NotFound(f"no webhook subscription {subscription_id}", field="subscription_id")
    secret = new_secret()
    conn.execute(
        update(webhook_subscriptions)
        .where(webhook_subscriptions.c.id == subscription_id)
        .values(secret=secret, previous_secret=current, previous_secret_until=now + grace)
    )
    return SubscriptionWithSecret(subscription=get(conn, program_id, subscription_id), secret=secret)


def disable(conn: Connection, program_id: int, subscription_id: int, *, now: datetime) -> Subscription:
    """No new deliveries are made for it; those waiting are not sent."""
    get(conn, program_id, subscription_id)
    conn.execute(
        update(webhook_subscriptions)
        .where(webhook_subscriptions.c.id == subscription_id, webhook_subscriptions.c.disabled_at.is_(None))
        .values(disabled_at=now)
    )
    return get(conn, program_id, subscription_id)


def deliveries(
    conn: Connection,
    program_id: int,
    *,
    subscription_id: int | None = None,
    status: DeliveryStatus | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """The newest first."""
    query = _deliveries(program_id).order_by(webhook_deliveries.c.id.desc()).limit(limit)
    if subscription_id is not None:
        query = query.where(webhook_deliveries.c.subscription_id == subscription_id)
    if status is not None:
        query = query.where(webhook_deliveries.c.status == status.value)
    return [Delivery(**row._mapping) for row in conn.execute(query)]


def _deliveries(program_id: int) -> Any:
    d = webhook_deliveries
    return (
        select(
            d.c.id,
            d.c.subscription_id,
            outbox.c.message_id,
            outbox.c.type,
            members.c.external_id.label("member_id"),
            d.c.status,
            d.c.attempts,
            d.c.next_attempt_at,
            d.c.last_status,
            d.c.last_error,
            d.c.created_at,
            d.c.delivered_at,
        )
        .join(outbox, outbox.c.id == d.c.outbox_id)
        .join(webhook_subscriptions, webhook_subscriptions.c.id == d.c.subscription_id)
        .outerjoin(members, members.c.id == d.c.member_id)
        .where(webhook_subscriptions.c.program_id == program_id)
    )


def replay(conn: Connection, program_id: int, delivery_id: int, *, now: datetime) -> Delivery:
    """Sends the delivery again, with the same `webhook-id` and body (a fresh timestamp and signature), whatever
    its state: a receiver that lost a message, or one back after its deliveries went dead."""
    found = conn.execute(_deliveries(program_id).where(webhook_deliveries.c.id == delivery_id)).first()
    if found is None:
        raise NotFound(f"no webhook delivery {delivery_id}", field="delivery_id")
    _requeue(conn, [delivery_id], now)
    return _one_delivery(conn, program_id, delivery_id)


def replay_dead(conn: Connection, program_id: int, subscription_id: int, *, now: datetime) -> int:
    """Every dead delivery of the subscription, again. Returns how many."""
    get(conn, program_id, subscription_id)
    dead = (
        conn.execute(
            select(webhook_deliveries.c.id).where(
                webhook_deliveries.c.subscription_id == subscription_id,
                webhook_deliveries.c.status == DeliveryStatus.DEAD.value,
            )
        )
        .scalars()
        .all()
    )
    _requeue(conn, list(dead), now)
    return len(dead)


def _requeue(conn: Connection, ids: list[int], now: datetime) -> None:
    if ids:
        conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id.in_(ids))
            .values(status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now, lease_until=None)
        )


def _one_delivery(conn: Connection, program_id: int, delivery_id: int) -> Delivery:
    row = conn.execute(_deliveries(program_id).where(webhook_deliveries.c.id == delivery_id)).one()
    return Delivery(**row._mapping)
