"""The mail outbox: messages queued in the caller's transaction, claimed and settled by the delivery loop.

A row is `queued` until sent (`sent`), given up on (`failed`, after the last attempt or a permanent refusal),
or dropped because it may no longer go (`suppressed`: marketing to a member who withdrew consent, or no
address any more). Consent is checked twice: when queueing, so nothing is written for a member who said no,
and when sending, because they may have unsubscribed in between.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, String, and_, cast, func, insert, literal, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from patron.mail.i18n import resolve_locale
from patron.mail.kinds import Category, Context, MailKind
from patron.store.sets import id_in
from patron.store.tables import mail_outbox, members


class Status:
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


def queue(
    conn: Connection,
    *,
    program_id: int,
    member_id: int,
    kind: MailKind,
    context: Context,
    now: datetime,
    dedupe_key: str | None = None,
) -> bool:
    """Queues one message to a member, in the caller's transaction. Returns False when nothing was queued: the
    member has no address, it is marketing without consent, or `dedupe_key` was queued before."""
    member = conn.execute(
        select(members.c.email, members.c.locale, members.c.marketing_consent).where(
            members.c.id == member_id, members.c.program_id == program_id
        )
    ).first()
    if member is None or member.email is None:
        return False
    if kind.category is Category.MARKETING and not member.marketing_consent:
        return False
    row = _row(program_id, member_id, kind, context, member.email, resolve_locale(member.locale), now, dedupe_key)
    if dedupe_key is None:
        conn.execute(insert(mail_outbox), row)
        return True
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # RETURNING tells whether a row went in: rowcount is -1 for this statement on PostgreSQL (psycopg).
    inserted = conn.execute(dialect.insert(mail_outbox).on_conflict_do_nothing().returning(mail_outbox.c.id), row)
    return inserted.first() is not None


def queue_for_all_members(
    conn: Connection, *, program_id: int, kind: MailKind, context: Context, now: datetime, dedupe_prefix: str
) -> int:
    """Queues the same message to every member of a program who may get it, with one statement however many
    members there are. Each row's dedupe key is `dedupe_prefix` and the member id, so a repeat queues nothing.
    The language, like the address and consent, is taken from the member again when the message is sent."""
    conditions = [members.c.program_id == program_id, members.c.email.is_not(None)]
    if kind.category is Category.MARKETING:
        conditions.append(members.c.marketing_consent == true())
    chosen = select(
        literal(program_id).label("program_id"),
        members.c.id.label("member_id"),
        literal(kind.value).label("template"),
        literal(kind.category.value).label("category"),
        members.c.email.label("recipient"),
        func.coalesce(members.c.locale, "en").label("locale"),
        literal(context.model_dump(mode="json"), mail_outbox.c.context.type).label("context"),
        (literal(f"{dedupe_prefix}:") + cast(members.c.id, String)).label("dedupe_key"),
        literal(Status.QUEUED).label("status"),
        literal(0).label("attempts"),
        literal(now, mail_outbox.c.next_attempt_at.type).label("next_attempt_at"),
        literal(now, mail_outbox.c.created_at.type).label("created_at"),
    ).where(and_(*conditions))
    columns = [c.name for c in chosen.selected_columns]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(mail_outbox).from_select(columns, chosen).on_conflict_do_nothing()
    return len(conn.execute(statement.returning(mail_outbox.c.id)).all())


def _row(
    program_id: int,
    member_id: int,
    kind: MailKind,
    context: Context,
    recipient: str,
    locale: str,
    now: datetime,
    dedupe_key: str | None,
) -> dict[str, Any]:
    return {
        "program_id": program_id,
        "member_id": member_id,
        "template": kind.value,
        "category": kind.category.value,
        "recipient": recipient,
        "locale": locale,
        "context": context.model_dump(mode="json"),
        "dedupe_key": dedupe_key,
        "status": Status.QUEUED,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


@dataclass(frozen=True, slots=True)
class Claimed:
    """A queued message taken for one attempt, with the member's address and consent as they are now."""

    id: int
    program_id: int
    member_id: int
    kind: MailKind
    context: dict[str, Any]
    attempts: int
    email: str | None
    locale: str
    marketing_consent: bool


def claim(conn: Connection, *, now: datetime, limit: int, lease: timedelta) -> list[Claimed]:
    """Takes up to `limit` due messages for one attempt each. Their next attempt moves `lease` ahead, so a
    worker that dies mid-send leaves them to be retried then (at-least-once: the Message-ID lets a mail system
    drop the duplicate). On PostgreSQL, SKIP LOCKED lets several workers claim side by side."""
    query = (
        select(mail_outbox.c.id)
        .where(mail_outbox.c.status == Status.QUEUED, mail_outbox.c.next_attempt_at <= now)
        .order_by(mail_outbox.c.next_attempt_at, mail_outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(conn.execute(query).scalars())
    if not ids:
        return []
    conn.execute(
        update(mail_outbox)
        .where(id_in(conn, mail_outbox.c.id, ids))
        .values(attempts=mail_outbox.c.attempts + 1, next_attempt_at=now + lease)
    )
    rows = conn.execute(
        select(
            mail_outbox.c.id,
            mail_outbox.c.program_id,
            mail_outbox.c.member_id,
            mail_outbox.c.template,
            mail_outbox.c.context,
            mail_outbox.c.attempts,
            members.c.email,
            members.c.locale,
            members.c.marketing_consent,
        )
        .join(members, members.c.id == mail_outbox.c.member_id)
        .where(id_in(conn, mail_outbox.c.id, ids))
        .order_by(mail_outbox.c.id)
    ).all()
    return [
        Claimed(
            id=r.id,
            program_id=r.program_id,
            member_id=r.member_id,
            kind=MailKind(r.template),
            context=r.context,
            attempts=r.attempts,
            email=r.email,
            locale=resolve_locale(r.locale),
            marketing_consent=r.marketing_consent,
        )
        for r in rows
    ]


def settle(conn: Connection, message_id: int, *, status: str, now: datetime, error: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "last_error": error}
    if status == Status.SENT:
        values["sent_at"] = now
    conn.execute(update(mail_outbox).where(mail_outbox.c.id == message_id).values(**values))


def retry_later(conn: Connection, message_id: int, *, at: datetime, error: str) -> None:
    conn.execute(update(mail_outbox).where(mail_outbox.c.id == message_id).values(next_attempt_at=at, last_error=error))


def counts(conn: Connection) -> dict[str, int]:
    """Messages per status, for the CLI and metrics."""
    found = conn.execute(select(mail_outbox.c.status, func.count()).group_by(mail_outbox.c.status)).all()
    return {status: int(n) for status, n in found}


def suppress_marketing(conn: Connection, member_ids: Sequence[int], *, now: datetime) -> None:
    """Drops queued marketing mail of members who just withdrew consent."""
    if member_ids:
        conn.execute(
            update(mail_outbox)
            .where(
                id_in(conn, mail_outbox.c.member_id, list(member_ids)),
                mail_outbox.c.status == Status.QUEUED,
                mail_outbox.c.category == Category.MARKETING.value,
            )
            .values(status=Status.SUPPRESSED, last_error="consent withdrawn")
        )
