"""The job table: enqueue once per (kind, key), claim with a lease, finish, retry or dead-letter, and the record
of every run.

Claims are one short transaction: on PostgreSQL `FOR UPDATE SKIP LOCKED`, so several workers each take a
different job and none waits for another; on SQLite the claim runs inside BEGIN IMMEDIATE, the one writer.
A claimed job carries a lease its worker renews while it runs; a job whose lease ran out (its worker was
killed) is claimed again, and the run it was in is recorded as abandoned.
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, Select, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from patron.store.background import job_runs, jobs
from patron.store.database import Database


class JobStatus(StrEnum):
    QUEUED = "queued"  # waiting for run_at (a retry waits here too)
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # failed max_attempts times; `patron jobs run KIND` runs the kind again now


class RunOutcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"  # the worker stopped (killed, lost power) without saying how it ended
    INTERRUPTED = "interrupted"  # the worker was asked to stop and put the job back between two chunks


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    run_id: int


def enqueue(
    conn: Connection,
    kind: str,
    key: str,
    *,
    now: datetime,
    run_at: datetime | None = None,
    payload: dict[str, Any] | None = None,
    max_attempts: int = 5,
) -> bool:
    """Adds the job unless one with this kind and key exists. Returns whether it was added."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    added = conn.execute(
        dialect.insert(jobs).on_conflict_do_nothing(),
        {
            "kind": kind,
            "key": key,
            "payload": payload or {},
            "status": JobStatus.QUEUED.value,
            "attempts": 0,
            "max_attempts": max_attempts,
            "run_at": run_at or now,
            "created_at": now,
        },
    )
    return added.rowcount == 1


def claim(
    db: Database,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    kinds: Collection[str],
    job_id: int | None = None,
) -> ClaimedJob | None:
    """Takes the next due job of one of `kinds` (or the job `job_id`), or None when there is none."""

    def work(conn: Connection) -> ClaimedJob | None:
        while True:
            query = select(jobs).where(jobs.c.kind.in_(sorted(kinds)))
            if job_id is not None:
                query = query.where(jobs.c.id == job_id)
            due = or_(
                (jobs.c.status == JobStatus.QUEUED.value) & (jobs.c.run_at <= now),
                (jobs.c.status == JobStatus.RUNNING.value) & (jobs.c.lease_until < now),
            )
            row = conn.execute(
                query.where(due).order_by(jobs.c.run_at, jobs.c.id).limit(1).with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            if row.status == JobStatus.RUNNING.value:
                _abandon_runs(conn, row, now)
                if row.attempts >= row.max_attempts:
                    _finish(conn, row.id, JobStatus.DEAD, now, error=f"worker {row.locked_by} stopped mid-run")
                    continue
            return _start(conn, row, worker, now, lease)

    return db.run(work)


def _abandon_runs(conn: Connection, row: Row[Any], now: datetime) -> None:
    conn.execute(
        update(job_runs)
        .where(job_runs.c.job_id == row.id, job_runs.c.outcome == RunOutcome.RUNNING.value)
        .values(
            outcome=RunOutcome.ABANDONED.value,
            finished_at=now,
            error=f"worker {row.locked_by} stopped without finishing (its lease ran out)",
        )
    )


def _start(conn: Connection, row: Row[Any], worker: str, now: datetime, lease: timedelta) -> ClaimedJob:
    attempt = row.attempts + 1
    conn.execute(
        update(jobs)
        .where(jobs.c.id == row.id)
        .values(status=JobStatus.RUNNING.value, attempts=attempt, lease_until=now + lease, locked_by=worker)
    )
    run_id = conn.execute(
        insert(job_runs).returning(job_runs.c.id),
        {
            "job_id": row.id,
            "attempt": attempt,
            "worker": worker,
            "outcome": RunOutcome.RUNNING.value,
            "started_at": now,
        },
    ).scalar_one()
    return ClaimedJob(row.id, row.kind, row.key, dict(row.payload), attempt, row.max_attempts, int(run_id))


def renew(db: Database, job: ClaimedJob, *, worker: str, until: datetime) -> bool:
    """The heartbeat: pushes the lease forward. False if another worker has taken the job over."""

    def work(conn: Connection) -> bool:
        result = conn.execute(
            update(jobs)
            .where(jobs.c.id == job.id, jobs.c.locked_by == worker, jobs.c.status == JobStatus.RUNNING.value)
            .values(lease_until=until)
        )
        return result.rowcount == 1

    return db.run(work)


def succeed(db: Database, job: ClaimedJob, *, worker: str, now: datetime, result: dict[str, Any]) -> None:
    def work(conn: Connection) -> None:
        _end_run(conn, job, RunOutcome.SUCCEEDED, now, result=result)
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job.id, jobs.c.locked_by == worker)
            .values(status=JobStatus.SUCCEEDED.value, finished_at=now, lease_until=None, last_error=None)
        )

    db.run(work)


def fail(db: Database, job: ClaimedJob, *, worker: str, now: datetime, error: str, retry_at: datetime) -> bool:
    """Records the failure; the job waits until `retry_at`, or is dead if that was its last attempt.
    Returns whether it will be retried."""
    retry = job.attempt < job.max_attempts

    def work(conn: Connection) -> None:
        _end_run(conn, job, RunOutcome.FAILED, now, error=error)
        values: dict[str, Any] = {"lease_until": None, "locked_by": None, "last_error": error}
        if retry:
            values |= {"status": JobStatus.QUEUED.value, "run_at": retry_at}
        else:
            values |= {"status": JobStatus.DEAD.value, "finished_at": now}
        conn.execute(update(jobs).where(jobs.c.id == job.id, jobs.c.locked_by == worker).values(**values))

    db.run(work)
    return retry


def put_back(db: Database, job: ClaimedJob, *, worker: str, now: datetime) -> None:
    """The worker is stopping: the job goes back to the queue as it was, its attempt not counted."""

    def work(conn: Connection) -> None:
        _end_run(conn, job, RunOutcome.INTERRUPTED, now, error="the worker was asked to stop")
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job.id, jobs.c.locked_by == worker)
            .values(
                status=JobStatus.QUEUED.value,
                attempts=jobs.c.attempts - 1,
                run_at=now,
                lease_until=None,
                locked_by=None,
            )
        )

    db.run(work)


def _end_run(
    conn: Connection,
    job: ClaimedJob,
    outcome: RunOutcome,
    now: datetime,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    conn.execute(
        update(job_runs)
        .where(job_runs.c.id == job.run_id)
        .values(outcome=outcome.value, finished_at=now, result=result, error=error)
    )


def _finish(conn: Connection, job_id: int, status: JobStatus, now: datetime, *, error: str | None) -> None:
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(status=status.value, finished_at=now, lease_until=None, locked_by=None, last_error=error)
    )


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: int
    job_id: int
    kind: str
    key: str
    attempt: int
    worker: str
    outcome: str
    started_at: datetime
    finished_at: datetime | None
    result: dict[str, Any] | None
    error: str | None


def _runs() -> Select[Any]:
    """Runs with their job's kind and key, in RunRecord's field order."""
    return select(
        job_runs.c.id,
        job_runs.c.job_id,
        jobs.c.kind,
        jobs.c.key,
        job_runs.c.attempt,
        job_runs.c.worker,
        job_runs.c.outcome,
        job_runs.c.started_at,
        job_runs.c.finished_at,
        job_runs.c.result,
        job_runs.c.error,
    ).join(jobs, jobs.c.id == job_runs.c.job_id)


def history(conn: Connection, *, kind: str | None = None, limit: int = 50) -> list[RunRecord]:
    """The newest runs first."""
    query = _runs().order_by(job_runs.c.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(jobs.c.kind == kind)
    return [RunRecord(*row) for row in conn.execute(query)]


def counts_by_status(conn: Connection) -> dict[tuple[str, str], int]:
    """(kind, status) -> number of jobs."""
    rows = conn.execute(select(jobs.c.kind, jobs.c.status, func.count()).group_by(jobs.c.kind, jobs.c.status))
    return {(kind, status): int(n) for kind, status, n in rows}


def last_runs(conn: Connection) -> dict[str, RunRecord]:
    """The latest run of each kind."""
    newest = select(func.max(job_runs.c.id)).join(jobs, jobs.c.id == job_runs.c.job_id).group_by(jobs.c.kind)
    rows = conn.execute(_runs().where(job_runs.c.id.in_(newest)))
    return {row.kind: RunRecord(*row) for row in rows}


def job_id(conn: Connection, kind: str, key: str) -> int:
    return int(conn.execute(select(jobs.c.id).where(jobs.c.kind == kind, jobs.c.key == key)).scalar_one())
