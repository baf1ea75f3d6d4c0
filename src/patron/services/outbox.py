"""The outbox: domain events written in the same transaction as the change that caused them, and handed to
consumers (webhooks, mail) only once that transaction has committed.

A rolled-back change leaves no outbox row, so nothing is ever announced that did not happen. Dispatch runs in
the worker: it takes committed rows in id order, lets every consumer write what it needs (deliveries, mail)
in the same transaction, and marks the rows dispatched. Rows of one member are written under that member's
lock, so their ids follow their commit order and consumers see each member's events in order.
"""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from patron.store.background import outbox
from patron.store.bulk import Together, insert_rows
from patron.store.database import Database
from patron.store.sets import id_in
from patron.store.tables import members, programs


class EventType(StrEnum):
    POINTS_EARNED = "points.earned"
    POINTS_PENDING = "points.pending"
    POINTS_ACTIVATED = "points.activated"
    POINTS_REDEEMED = "points.redeemed"
    POINTS_EXPIRED = "points.expired"
    POINTS_EXPIRING_SOON = "points.expiring_soon"
    POINTS_ADJUSTED = "points.adjusted"
    TIER_CHANGED = "tier.changed"
    REWARD_REDEEMED = "reward.redeemed"
    COUPON_ISSUED = "coupon.issued"
    STAMP_CARD_COMPLETED = "stamp_card.completed"
    REFERRAL_CONVERTED = "referral.converted"
    REFERRAL_REJECTED = "referral.rejected"
    RAFFLE_DRAWN = "raffle.drawn"
    MEMBER_BIRTHDAY = "member.birthday"
    PROGRAM_PUBLISHED = "program.published"
    CAMPAIGN_OFFERED = "campaign.offered"


@dataclass(frozen=True, slots=True)
class Emitted:
    """An event to write. `member_id` is the member's row id (it orders deliveries); None for program-wide
    events. A `dedupe_key` makes a second emission of the same fact (a reminder found twice) a no-op."""

    program_id: int
    type: EventType
    member_id: int | None
    data: dict[str, Any]
    occurred_at: datetime
    dedupe_key: str | None = None


def emit(conn: Connection, events: Sequence[Emitted], *, now: datetime, together: Together | None = None) -> None:
    """Writes the events in the caller's transaction, with one statement however many there are (held in
    `together`, if given, when they can be)."""
    if not events:
        return
    rows = [
        {
            "message_id": new_message_id(),
            "program_id": e.program_id,
            "member_id": e.member_id,
            "type": e.type.value,
            "data": e.data,
            "dedupe_key": e.dedupe_key,
            "occurred_at": e.occurred_at,
            "created_at": now,
        }
        for e in events
    ]
    if any(e.dedupe_key is not None for e in events):
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(dialect.insert(outbox).on_conflict_do_nothing(), rows)
    else:
        insert_rows(
            conn, outbox, rows, together=together
        )  # a thousand events of a batch, or a member each in an expiry chunk


def new_message_id() -> str:
    """The `webhook-id` receivers deduplicate by: the same for every attempt and replay of the message."""
    return f"msg_{secrets.token_hex(12)}"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    message_id: str
    program_id: int
    program: str  # the program's slug
    member_id: int | None
    member: str | None  # the member's external id
    type: str
    data: dict[str, Any]
    occurred_at: datetime

    def envelope(self) -> dict[str, Any]:
        """The message as receivers get it (the Standard Webhooks payload shape)."""
        data = {"program": self.program, **({"member_id": self.member} if self.member is not None else {})}
        return {"type": self.type, "timestamp": self.occurred_at.isoformat(), "data": data | self.data}


class OutboxConsumer(Protocol):
    """Something that acts on committed outbox messages. `consume` runs inside the dispatch transaction and
    must only write rows (no network): if it raises, the batch stays undispatched and is offered again."""

    name: str

    def consume(self, conn: Connection, messages: Sequence[OutboxMessage], now: datetime) -> None: ...


def read_messages(conn: Connection, ids: Sequence[int]) -> list[OutboxMessage]:
    query = _message_query().where(id_in(conn, outbox.c.id, list(ids))).order_by(outbox.c.id)
    return [OutboxMessage(*row) for row in conn.execute(query)]


def _message_query() -> Any:
    return (
        select(
            outbox.c.id,
            outbox.c.message_id,
            outbox.c.program_id,
            programs.c.slug,
            outbox.c.member_id,
            members.c.external_id,
            outbox.c.type,
            outbox.c.data,
            outbox.c.occurred_at,
        )
        .join(programs, programs.c.id == outbox.c.program_id)
        .outerjoin(members, members.c.id == outbox.c.member_id)
    )


# Any constant: two workers dispatching at once would hand one member's events to consumers out of order.
_DISPATCH_LOCK = 0x5041_5452_4F4E  # "PATRON"


def dispatch(db: Database, consumers: Sequence[OutboxConsumer], *, now: datetime, batch: int = 500) -> int:
    """Hands the next committed, undispatched messages to every consumer. Returns how many were dispatched."""

    def work(conn: Connection) -> int:
        if conn.dialect.name == "postgresql":
            took = conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _DISPATCH_LOCK}).scalar()
            if not took:
                return 0  # another worker is dispatching; it will get these too
        found = conn.execute(
            _message_query().where(outbox.c.dispatched_at.is_(None)).order_by(outbox.c.id).limit(batch)
        ).all()
        if not found:
            return 0
        messages = [OutboxMessage(*row) for row in found]
        for consumer in consumers:
            consumer.consume(conn, messages, now)
        conn.execute(update(outbox).where(id_in(conn, outbox.c.id, [m.id for m in messages])).values(dispatched_at=now))
        return len(messages)

    return db.run(work)


def backlog(conn: Connection) -> int:
    """Committed messages not yet dispatched."""
    return int(conn.execute(select(func.count()).where(outbox.c.dispatched_at.is_(None))).scalar_one())
