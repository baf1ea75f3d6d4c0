"""Delivery: sends the due messages of the mail outbox, after the transactions that queued them committed.

`deliver_pending(db, settings)` is what the worker calls on every turn and what `patron mail send-pending`
runs once. Each message is claimed in a short transaction, sent outside any transaction, and its outcome
recorded in another: no database lock is held while an SMTP server is slow.
"""

import logging
import random
import smtplib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jinja2 import TemplateError
from pydantic import ValidationError
from sqlalchemy import Connection, func, select

from patron.mail import outbox
from patron.mail.compose import compose, unsubscribe_url
from patron.mail.kinds import Category
from patron.mail.render import Letterhead, render
from patron.mail.smtp import MailNotConfigured, SmtpConnection
from patron.mail.tokens import Subscriber, sign
from patron.settings import Settings
from patron.store.database import Database
from patron.store.tables import program_versions, programs

log = logging.getLogger(__name__)

# A claimed message not recorded within this time is offered again (its worker is taken to have died).
LEASE = timedelta(minutes=10)
_FIRST_RETRY = timedelta(minutes=1)
_LAST_RETRY = timedelta(hours=6)


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    disabled: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.suppressed


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with full jitter: 1 min, 2, 4 … capped at 6 h, each drawn from [half, whole]."""
    ceiling = min(_FIRST_RETRY * (1 << min(max(attempts - 1, 0), 16)), _LAST_RETRY)
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 -- spreading retries, not a secret


def deliver_pending(db: Database, settings: Settings, *, now: datetime, limit: int = 100) -> DeliveryReport:
    """Sends up to `limit` due messages. Without PATRON_SMTP_HOST it sends nothing and says so."""
    report = DeliveryReport()
    if settings.smtp_host is None:
        report.disabled = True
        return report
    if settings.secret_key is None:
        raise MailNotConfigured("PATRON_SECRET_KEY is needed to sign unsubscribe links")
    secret = settings.secret_key.get_secret_value()
    claimed = db.run(lambda conn: outbox.claim(conn, now=now, limit=limit, lease=LEASE))
    if not claimed:
        return report
    letterheads = db.run(lambda conn: _letterheads(conn, {m.program_id for m in claimed}))
    try:
        with SmtpConnection(settings) as smtp:
            for message in claimed:
                _deliver_one(db, smtp, message, letterheads, settings, secret, now, report)
    except (OSError, smtplib.SMTPException) as exc:
        # The server could not be reached or dropped the session: whatever is still claimed waits for its lease.
        log.warning("SMTP session failed: %s", type(exc).__name__)
        report.errors.append(f"{type(exc).__name__}: {exc}")
        _retry_unsettled(db, claimed, report, settings, now, f"{type(exc).__name__}: {exc}")
    return report


def _deliver_one(
    db: Database,
    smtp: SmtpConnection,
    message: outbox.Claimed,
    letterheads: dict[int, tuple[str, str]],
    settings: Settings,
    secret: str,
    now: datetime,
    report: DeliveryReport,
) -> None:
    if message.email is None:
        _settle(db, message, outbox.Status.SUPPRESSED, now, "the member has no email address", report)
        return
    if message.kind.category is Category.MARKETING and not message.marketing_consent:
        _settle(db, message, outbox.Status.SUPPRESSED, now, "no marketing consent", report)
        return
    name, currency = letterheads.get(message.program_id, ("", "USD"))
    link = unsubscribe_url(settings.public_url, sign(Subscriber(message.program_id, message.member_id), secret))
    try:
        rendered = render(message.kind, message.locale, message.context, Letterhead(name, currency, link))
    except (ValidationError, TemplateError) as exc:
        # A context its template cannot use will not improve with retries.
        _settle(db, message, outbox.Status.FAILED, now, f"cannot render: {exc}", report)
        return
    email = compose(
        rendered,
        outbox_id=message.id,
        sender=settings.mail_from,
        recipient=message.email,
        locale=message.locale,
        unsubscribe=link,
        now=now,
    )
    try:
        smtp.send(email)
    except smtplib.SMTPResponseException as exc:
        _failed_attempt(db, message, report, settings, now, f"{exc.smtp_code} {exc.smtp_error!r}", exc.smtp_code)
        return
    except smtplib.SMTPRecipientsRefused as exc:
        code = min((code for code, _ in exc.recipients.values()), default=550)
        _failed_attempt(db, message, report, settings, now, f"recipient refused: {code}", code)
        return
    _settle(db, message, outbox.Status.SENT, now, None, report)


def _failed_attempt(
    db: Database,
    message: outbox.Claimed,
    report: DeliveryReport,
    settings: Settings,
    now: datetime,
    error: str,
    code: int,
) -> None:
    """A 5xx reply is permanent (retrying will not change it); a 4xx, or the last attempt, is not."""
    if code >= 500 or message.attempts >= settings.mail_max_attempts:
        _settle(db, message, outbox.Status.FAILED, now, error, report)
    else:
        _retry(db, message, now + retry_delay(message.attempts), error)
        report.retried += 1


def _settle(
    db: Database, message: outbox.Claimed, status: str, now: datetime, error: str | None, report: DeliveryReport
) -> None:
    db.run(lambda conn: outbox.settle(conn, message.id, status=status, now=now, error=error))
    setattr(report, status, getattr(report, status) + 1)


def _retry_unsettled(
    db: Database, claimed: list[outbox.Claimed], report: DeliveryReport, settings: Settings, now: datetime, error: str
) -> None:
    done = report.handled
    for message in claimed[done:]:
        if message.attempts >= settings.mail_max_attempts:
            _settle(db, message, outbox.Status.FAILED, now, error, report)
        else:
            _retry(db, message, now + retry_delay(message.attempts), error)
            report.retried += 1


def _retry(db: Database, message: outbox.Claimed, at: datetime, error: str) -> None:
    db.run(lambda conn: outbox.retry_later(conn, message.id, at=at, error=error))


def _letterheads(conn: Connection, program_ids: set[int]) -> dict[int, tuple[str, str]]:
    """Each program's name and currency from its newest published version (its slug if none is published)."""
    newest = (
        select(program_versions.c.program_id, func.max(program_versions.c.version).label("version"))
        .group_by(program_versions.c.program_id)
        .subquery()
    )
    rows = conn.execute(
        select(programs.c.id, programs.c.slug, program_versions.c.document)
        .select_from(programs)
        .outerjoin(newest, newest.c.program_id == programs.c.id)
        .outerjoin(
            program_versions,
            (program_versions.c.program_id == programs.c.id) & (program_versions.c.version == newest.c.version),
        )
        .where(programs.c.id.in_(sorted(program_ids)))
    ).all()
    found: dict[int, tuple[str, str]] = {}
    for row in rows:
        document: dict[str, Any] = row.document or {}
        found[row.id] = (str(document.get("name", row.slug)), str(document.get("currency", "USD")))
    return found
