"""Mail in the worker: the outbox consumer that queues messages, the pump that sends them on every turn,
and the weekly job that queues the points summaries."""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter

from patron.mail.consumer import MailConsumer
from patron.mail.delivery import deliver_pending
from patron.mail.smtp import MailNotConfigured
from patron.mail.summaries import queue_earned_summaries
from patron.settings import Settings
from patron.store.database import Database
from patron.worker.registry import JobContext, JobKind, Registry, Schedule

mail_messages = Counter(
    "patron_mail_messages_total",
    "Mail delivery outcomes: sent, retried (will be tried again), failed, suppressed (no consent or address).",
    ["outcome"],
)

SUMMARY_EVERY = timedelta(days=7)


class MailPump:
    """Sends due mail on every turn of the worker loop."""

    name = "mail"

    def __init__(self, settings: Settings, *, batch: int = 100) -> None:
        if settings.smtp_host is not None and settings.secret_key is None:
            # Fail at start, not on the first message: unsubscribe links cannot be signed without it.
            raise MailNotConfigured("PATRON_SMTP_HOST is set but PATRON_SECRET_KEY is not")
        self.settings = settings
        self.batch = batch

    def __call__(self, db: Database, now: datetime) -> int:
        report = deliver_pending(db, self.settings, now=now, limit=self.batch)
        for outcome in ("sent", "retried", "failed", "suppressed"):
            if count := getattr(report, outcome):
                mail_messages.labels(outcome).inc(count)
        # Only retries (the server is down) count as idle: the loop rests instead of spinning on them.
        return report.sent + report.failed + report.suppressed


def _queue_summaries(ctx: JobContext) -> Mapping[str, Any]:
    end = SUMMARY.schedule.period_start(ctx.now) if SUMMARY.schedule else ctx.now
    run = queue_earned_summaries(ctx.db, start=end - SUMMARY_EVERY, end=end, now=ctx.now)
    return {"members": run.members, "queued": run.queued}


SUMMARY = JobKind(
    "mail.points_summary",
    _queue_summaries,
    "Queue last week's points-earned summary for members who agreed to marketing email.",
    Schedule(SUMMARY_EVERY),
)


def register(registry: Registry, settings: Settings | None = None) -> None:
    """Plugs mail into a worker registry (see patron.worker.plugins)."""
    registry.add_consumer(MailConsumer())
    registry.add_pump(MailPump(settings or Settings()))
    registry.add_kind(SUMMARY)
