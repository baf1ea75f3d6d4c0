"""Keeping the background tables small: delivered webhooks, dispatched outbox messages and finished jobs older
than PATRON_BACKGROUND_RETENTION_DAYS are deleted, a chunk per transaction. What is still owed (a pending or
dead delivery, its message, a dead job) is kept, so it can be replayed whatever its age."""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, delete, exists, select

from patron.store.background import job_runs, jobs, outbox, webhook_deliveries
from patron.store.sets import id_in
from patron.worker.queue import JobStatus
from patron.worker.registry import JobContext, JobKind, Schedule


def prune(ctx: JobContext) -> Mapping[str, Any]:
    cutoff = ctx.now - timedelta(days=ctx.settings.background_retention_days)
    delivered = _prune(
        ctx,
        webhook_deliveries,
        (webhook_deliveries.c.status == "delivered") & (webhook_deliveries.c.delivered_at < cutoff),
    )
    still_owed = exists().where(webhook_deliveries.c.outbox_id == outbox.c.id)
    messages = _prune(ctx, outbox, (outbox.c.dispatched_at < cutoff) & ~still_owed)
    finished = (jobs.c.status == JobStatus.SUCCEEDED.value) & (jobs.c.finished_at < cutoff)
    runs = _prune(ctx, job_runs, job_runs.c.job_id.in_(select(jobs.c.id).where(finished)))
    done_jobs = _prune(ctx, jobs, finished)
    return {"deliveries": delivered, "messages": messages, "job_runs": runs, "jobs": done_jobs}


def _prune(ctx: JobContext, table: Table, old: ColumnElement[bool]) -> int:
    total = 0
    while True:

        def chunk(conn: Connection) -> int:
            ids = conn.execute(select(table.c.id).where(old).limit(ctx.settings.job_chunk)).scalars().all()
            if ids:
                conn.execute(delete(table).where(id_in(conn, table.c.id, list(ids))))
            return len(ids)

        deleted = ctx.db.run(chunk)
        if not deleted:
            return total
        total += deleted
        ctx.chunk_done(deleted)


PRUNE = JobKind(
    "background.prune",
    prune,
    "Delete delivered webhooks, dispatched outbox messages and finished jobs past the retention period.",
    Schedule(timedelta(days=1)),
)
