"""Delivering webhooks: a delivery row per (subscription, outbox message) made at dispatch, then sent after commit,
at least once, signed, with backoff; dead-lettered after the last attempt.

Ordering: a member's deliveries to one endpoint go out one at a time, oldest first. A delivery is not taken
while an older one of the same member and subscription is still pending (waiting, retrying, or in flight),
so a retry holds back what came after it. A dead delivery no longer holds anything back.

Sending happens outside any transaction: a claim takes a lease and counts the attempt, the HTTP request runs,
and the outcome is written in a second transaction. A worker killed mid-request leaves the lease to run out;
the delivery is then sent again (at least once: receivers deduplicate by `webhook-id`).
"""

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import structlog
from sqlalchemy import Connection, exists, insert, or_, select, update

from patron import __version__
from patron.observability import metrics
from patron.services.clock import utcnow
from patron.services.outbox import OutboxMessage, read_messages
from patron.store.background import webhook_deliveries, webhook_subscriptions
from patron.store.database import Database
from patron.webhooks import signing
from patron.webhooks.subscriptions import DeliveryStatus
from patron.worker.backoff import retry_delay
from patron.worker.settings import WorkerSettings

log = structlog.get_logger("patron.webhooks")


class WebhookConsumer:
    """The outbox consumer: one pending delivery per message for every live subscription to its type."""

    name = "webhooks"

    def consume(self, conn: Connection, messages: Sequence[OutboxMessage], now: datetime) -> None:
        program_ids = sorted({m.program_id for m in messages})
        subscribed = conn.execute(
            select(webhook_subscriptions.c.id, webhook_subscriptions.c.program_id, webhook_subscriptions.c.event_types)
            .where(webhook_subscriptions.c.program_id.in_(program_ids), webhook_subscriptions.c.disabled_at.is_(None))
            .order_by(webhook_subscriptions.c.id)
        ).all()
        rows = [
            {
                "subscription_id": s.id,
                "outbox_id": m.id,
                "member_id": m.member_id,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for m in messages  # in id order: delivery ids then follow each member's order of events
            for s in subscribed
            if s.program_id == m.program_id and m.type in s.event_types
        ]
        if rows:
            conn.execute(insert(webhook_deliveries), rows)


@dataclass(frozen=True, slots=True)
class Attempt:
    delivery_id: int
    attempt: int
    url: str
    message_id: str
    body: str
    secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    status: int | None
    error: str | None


class WebhookSender:
    """The worker pump: claims due deliveries, sends them (a few at a time), records how each went."""

    name = "webhooks"

    def __init__(self, settings: WorkerSettings, *, worker: str, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.worker = worker
        self.client = client or httpx.Client(
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,  # a redirect could carry the signed body somewhere the merchant never named
            headers={"user-agent": f"Patron-Webhooks/{__version__}"},
        )

    def __call__(self, db: Database, now: datetime) -> int:
        attempts = claim(db, now=now, limit=self.settings.webhook_batch, lease=self._lease())
        if not attempts:
            return 0
        with ThreadPoolExecutor(max_workers=self.settings.webhook_concurrency) as pool:
            outcomes = list(pool.map(self.send, attempts))
        record(db, list(zip(attempts, outcomes, strict=True)), now=_now_after(now), settings=self.settings)
        return len(attempts)

    def _lease(self) -> timedelta:
        # Long enough for every request of a batch to time out one after another, with room to write the outcome.
        return timedelta(seconds=self.settings.webhook_timeout_seconds * (self.settings.webhook_batch + 2))

    def send(self, attempt: Attempt) -> Outcome:
        headers = signing.headers(attempt.message_id, attempt.body, _wall_clock(), attempt.secrets)
        headers["content-type"] = "application/json"
        try:
            response = self.client.post(attempt.url, content=attempt.body.encode("utf-8"), headers=headers)
        except httpx.TimeoutException:
            return Outcome(False, None, f"no answer within {self.settings.webhook_timeout_seconds:g} s")
        except httpx.HTTPError as exc:
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= response.status_code < 300:
            return Outcome(True, response.status_code, None)
        return Outcome(False, response.status_code, f"HTTP {response.status_code}: {response.text[:200]}")

    def close(self) -> None:
        self.client.close()


def _wall_clock() -> datetime:
    # The signature's timestamp must be the real time of sending: receivers refuse one five minutes off.
    return utcnow()


def _now_after(claimed_at: datetime) -> datetime:
    return max(claimed_at, _wall_clock())


def claim(db: Database, *, now: datetime, limit: int, lease: timedelta) -> list[Attempt]:
    d = webhook_deliveries
    earlier = webhook_deliveries.alias("earlier")
    held_back = exists().where(
        earlier.c.subscription_id == d.c.subscription_id,
        earlier.c.member_id == d.c.member_id,
        earlier.c.status == DeliveryStatus.PENDING.value,
        earlier.c.id < d.c.id,
    )

    def work(conn: Connection) -> list[Attempt]:
        due = conn.execute(
            select(d.c.id, d.c.outbox_id, d.c.attempts, d.c.subscription_id)
            .join(webhook_subscriptions, webhook_subscriptions.c.id == d.c.subscription_id)
            .where(
                d.c.status == DeliveryStatus.PENDING.value,
                d.c.next_attempt_at <= now,
                or_(d.c.lease_until.is_(None), d.c.lease_until < now),
                webhook_subscriptions.c.disabled_at.is_(None),
                ~held_back,
            )
            .order_by(d.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=d)
        ).all()
        if not due:
            return []
        conn.execute(
            update(d).where(d.c.id.in_([r.id for r in due])).values(attempts=d.c.attempts + 1, lease_until=now + lease)
        )
        messages = {m.id: m for m in read_messages(conn, sorted({r.outbox_id for r in due}))}
        subscriptions = {
            s.id: s
            for s in conn.execute(
                select(webhook_subscriptions).where(
                    webhook_subscriptions.c.id.in_(sorted({r.subscription_id for r in due}))
                )
            )
        }
        attempts = []
        for r in due:
            s = subscriptions[r.subscription_id]
            in_use = [s.secret]
            if s.previous_secret and s.previous_secret_until and s.previous_secret_until > now:
                in_use.append(s.previous_secret)
            message = messages[r.outbox_id]
            attempts.append(Attempt(r.id, r.attempts + 1, s.url, message.message_id, body(message), tuple(in_use)))
        return attempts

    return db.run(work)


def body(message: OutboxMessage) -> str:
    """The same bytes on every attempt and replay."""
    return json.dumps(message.envelope(), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def record(db: Database, results: list[tuple[Attempt, Outcome]], *, now: datetime, settings: WorkerSettings) -> None:
    def work(conn: Connection) -> None:
        for attempt, outcome in results:
            values: dict[str, object] = {"lease_until": None, "last_status": outcome.status}
            if outcome.delivered:
                values |= {"status": DeliveryStatus.DELIVERED.value, "delivered_at": now, "last_error": None}
            elif attempt.attempt >= settings.webhook_max_attempts:
                values |= {"status": DeliveryStatus.DEAD.value, "last_error": outcome.error}
            else:
                wait = retry_delay(
                    attempt.attempt, base=settings.webhook_retry_base_seconds, cap=settings.webhook_retry_max_seconds
                )
                values |= {"next_attempt_at": now + wait, "last_error": outcome.error}
            # Only the attempt that holds the claim writes: a replay meanwhile reset `attempts` and wins.
            conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.id == attempt.delivery_id,
                    webhook_deliveries.c.attempts == attempt.attempt,
                    webhook_deliveries.c.status == DeliveryStatus.PENDING.value,
                )
                .values(**values)
            )
            result = "delivered" if outcome.delivered else str(values.get("status", "retrying"))
            metrics.webhook_deliveries.labels(outcome=result).inc()
            log.info(
                "webhook.attempt",
                delivery_id=attempt.delivery_id,
                message_id=attempt.message_id,
                attempt=attempt.attempt,
                outcome=result,
                http_status=outcome.status,
                error=outcome.error,
            )

    db.run(work)
