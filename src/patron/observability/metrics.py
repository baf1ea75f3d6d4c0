"""Prometheus metrics. Counters live in the process that does the work (the API counts ingestion, the worker
counts jobs and deliveries); `/metrics` adds gauges read from the database, which every process shares, so the
queue and outbox are visible from the API whichever worker does the work."""

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from patron.store import background
from patron.store.database import Database
from patron.store.tables import mail_outbox
from patron.webhooks.subscriptions import DeliveryStatus
from patron.worker.queue import JobStatus

events_ingested = Counter(
    "patron_events_ingested_total",
    "Events received through the API, by how they ended: processed, replayed (a retry) or rejected.",
    ["outcome"],
)
outbox_dispatched = Counter("patron_outbox_dispatched_total", "Outbox messages handed to consumers.")
job_runs = Counter("patron_job_runs_total", "Job runs by kind and outcome.", ["kind", "outcome"])
job_seconds = Histogram(
    "patron_job_duration_seconds",
    "How long job runs take, by kind.",
    ["kind"],
    buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
)
webhook_deliveries = Counter(
    "patron_webhook_delivery_attempts_total",
    "Webhook delivery attempts by outcome: delivered, retrying (failed, will retry) or dead.",
    ["outcome"],
)


class DatabaseGauges(Collector):
    """Queue depths read at scrape time: jobs by kind and status, the outbox backlog, deliveries by status."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.database.read() as conn:
            job_counts = conn.execute(
                select(background.jobs.c.kind, background.jobs.c.status, func.count())
                # IN rather than != "succeeded": the (status, run_at) index serves it however many jobs are done.
                .where(background.jobs.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DEAD]))
                .group_by(background.jobs.c.kind, background.jobs.c.status)
            ).all()
            backlog = conn.execute(select(func.count()).where(background.outbox.c.dispatched_at.is_(None))).scalar_one()
            deliveries = conn.execute(
                select(background.webhook_deliveries.c.status, func.count())
                .where(background.webhook_deliveries.c.status.in_([DeliveryStatus.PENDING, DeliveryStatus.DEAD]))
                .group_by(background.webhook_deliveries.c.status)
            ).all()
            mail = conn.execute(
                select(mail_outbox.c.status, func.count())
                .where(mail_outbox.c.status != "sent")
                .group_by(mail_outbox.c.status)
            ).all()
        by_job = GaugeMetricFamily(
            "patron_jobs", "Jobs not yet succeeded, by kind and status.", labels=["kind", "status"]
        )
        for kind, status, count in job_counts:
            by_job.add_metric([kind, status], int(count))
        yield by_job
        yield GaugeMetricFamily("patron_outbox_backlog", "Committed outbox messages not yet dispatched.", value=backlog)
        by_delivery = GaugeMetricFamily(
            "patron_webhook_deliveries", "Webhook deliveries not yet delivered, by status.", labels=["status"]
        )
        for status, count in deliveries:
            by_delivery.add_metric([status], int(count))
        yield by_delivery
        by_mail = GaugeMetricFamily(
            "patron_mail_outbox",
            "Email not sent: queued, failed, or suppressed (no consent or no address).",
            labels=["status"],
        )
        for status, count in mail:
            by_mail.add_metric([status], int(count))
        yield by_mail


def database_registry(database: Database) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseGauges(database))
    return registry


http_requests = Counter(
    "patron_http_requests_total", "HTTP requests by method, route template and status.", ["method", "route", "status"]
)


def count_ingested(statuses: Iterable[int]) -> None:
    """Events by the status each got: 201 processed now, 200 a replay of an earlier delivery, else rejected."""
    for status in statuses:
        outcome = "processed" if status == 201 else "replayed" if status == 200 else "rejected"
        events_ingested.labels(outcome=outcome).inc()
