"""Withdrawing marketing consent from an unsubscribe link."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from patron.mail import outbox
from patron.mail.tokens import verify
from patron.store.database import Database
from patron.store.tables import audit_log, members


class InvalidToken(Exception):
    """The link was not made by this server (or its secret key has changed since)."""


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    member_id: int
    locale: str | None
    changed: bool  # False when the member had already withdrawn consent


def member_of(db: Database, token: str, secret: str) -> Unsubscribed:
    """The member a link is for, without changing anything (the page that asks to confirm)."""
    subscriber = verify(token, secret)
    if subscriber is None:
        raise InvalidToken
    with db.read() as conn:
        row = conn.execute(
            select(members.c.locale).where(
                members.c.id == subscriber.member_id, members.c.program_id == subscriber.program_id
            )
        ).first()
    if row is None:
        raise InvalidToken
    return Unsubscribed(subscriber.member_id, row.locale, changed=False)


def unsubscribe(db: Database, token: str, secret: str, *, now: datetime) -> Unsubscribed:
    """Withdraws the member's marketing consent, drops their queued marketing mail and records it in the audit
    log. Doing it again changes nothing."""
    subscriber = verify(token, secret)
    if subscriber is None:
        raise InvalidToken

    def work(conn: Connection) -> Unsubscribed:
        row = conn.execute(
            select(members.c.locale, members.c.marketing_consent)
            .where(members.c.id == subscriber.member_id, members.c.program_id == subscriber.program_id)
            .with_for_update()
        ).first()
        if row is None:
            raise InvalidToken
        if not row.marketing_consent:
            return Unsubscribed(subscriber.member_id, row.locale, changed=False)
        conn.execute(
            update(members)
            .where(members.c.id == subscriber.member_id)
            .values(marketing_consent=False, consent_changed_at=now, updated_at=now)
        )
        outbox.suppress_marketing(conn, [subscriber.member_id], now=now)
        conn.execute(
            insert(audit_log).values(
                program_id=subscriber.program_id,
                actor="member (unsubscribe link)",
                action="marketing_consent.withdrawn",
                member_id=subscriber.member_id,
                reason="unsubscribed from marketing email",
                detail={},
                created_at=now,
            )
        )
        return Unsubscribed(subscriber.member_id, row.locale, changed=True)

    return db.run(work)
