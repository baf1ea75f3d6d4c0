"""Stored replies for retried writes: the same key and request get the first reply; a different request, 409."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from patron.services.errors import IdempotencyConflict
from patron.store.database import Database
from patron.store.tables import events, idempotency_keys

T = TypeVar("T")
Reply = TypeVar("Reply", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class StoredReply:
    status_code: int
    body: dict[str, Any]


def recall_key(conn: Connection, program_id: int, key: str, operation: str, fingerprint: str) -> StoredReply | None:
    row = conn.execute(
        select(
            idempotency_keys.c.operation,
            idempotency_keys.c.request_hash,
            idempotency_keys.c.status_code,
            idempotency_keys.c.response,
        ).where(idempotency_keys.c.program_id == program_id, idempotency_keys.c.key == key)
    ).first()
    if row is None:
        return None
    if row.operation != operation or row.request_hash != fingerprint:
        raise IdempotencyConflict(
            f"Idempotency-Key {key!r} was first used for a different request", field="Idempotency-Key"
        )
    return StoredReply(row.status_code, row.response)


def remember_key(
    conn: Connection, program_id: int, key: str, operation: str, fingerprint: str, reply: StoredReply, now: datetime
) -> None:
    conn.execute(
        insert(idempotency_keys),
        {
            "program_id": program_id,
            "key": key,
            "operation": operation,
            "request_hash": fingerprint,
            "status_code": reply.status_code,
            "response": reply.body,
            "created_at": now,
        },
    )


@dataclass(frozen=True, slots=True)
class KeyedRequest(Generic[Reply]):
    """A write that may carry an Idempotency-Key: how its first reply is kept and read back for a retry."""

    program_id: int
    key: str | None
    operation: str
    fingerprint: str
    reply_type: type[Reply]

    def replay(self, conn: Connection) -> tuple[Reply, bool] | None:
        """The first reply, marked as a replay; None when there is no key or it is new; 409 for another request."""
        if self.key is None:
            return None
        stored = recall_key(conn, self.program_id, self.key, self.operation, self.fingerprint)
        return None if stored is None else (self.reply_type.model_validate(stored.body), True)

    def remember(self, conn: Connection, reply: Reply, now: datetime) -> tuple[Reply, bool]:
        """Keeps the reply under the key, in the write's own transaction, and returns it as a first answer."""
        if self.key is not None:
            stored = StoredReply(201, reply.model_dump(mode="json"))
            remember_key(conn, self.program_id, self.key, self.operation, self.fingerprint, stored, now)
        return reply, False


def run_keyed(db: Database, work: Callable[[Connection], T], replay: Callable[[Connection], T | None]) -> T:
    """Runs `work`, which remembers its idempotency key. Two requests with one key for different members do not
    share a member lock, so both may get as far as inserting the key: the loser answers as the winner did (or 409
    if its request differs), instead of failing on the key's unique constraint."""
    try:
        return db.run(work)
    except IntegrityError:
        with db.read() as conn:
            replayed = replay(conn)
        if replayed is None:
            raise
        return replayed


def recall_event(conn: Connection, program_id: int, event_id: str, fingerprint: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(events.c.request_hash, events.c.response).where(
            events.c.program_id == program_id, events.c.event_id == event_id
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise IdempotencyConflict(f"event {event_id!r} was already received with a different body", field="event_id")
    return dict(row.response)
