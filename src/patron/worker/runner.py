"""The worker loop: enqueue each periodic job once per period, run due jobs one at a time with a heartbeat on
their lease, and turn the pumps (outbox dispatch, webhook delivery). It stops between two steps when asked
(SIGTERM): a chunked job is put back in the queue after its current chunk, to resume where it stopped."""

import os
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from patron.observability import metrics
from patron.services.clock import utcnow
from patron.store.database import Database
from patron.worker import queue
from patron.worker.backoff import retry_delay
from patron.worker.queue import ClaimedJob
from patron.worker.registry import JobContext, JobInterrupted, Registry
from patron.worker.settings import WorkerSettings

log = structlog.get_logger("patron.worker")


def worker_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class JobResult:
    job_id: int
    kind: str
    key: str
    attempt: int
    outcome: str  # a queue.RunOutcome value
    result: dict[str, Any] | None
    error: str | None


class Worker:
    def __init__(
        self,
        db: Database,
        registry: Registry,
        settings: WorkerSettings,
        *,
        name: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        stopping: threading.Event | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.settings = settings
        self.name = name or worker_name()
        self.clock = clock
        self.stopping = stopping or threading.Event()
        self._scheduled: dict[str, str] = {}

    def run(self) -> None:
        """Until `stopping` is set. Jobs run on this thread and the pumps on another, so an hour-long expiry
        run does not hold back webhooks (its own points.expired events go out while it works)."""
        log.info("worker.started", worker=self.name, jobs=sorted(self.registry.kinds))
        pumping = threading.Thread(target=self._loop, args=(self.pump,), name="patron-pumps", daemon=True)
        pumping.start()
        self._loop(self.work)
        pumping.join()
        log.info("worker.stopped", worker=self.name)

    def _loop(self, step: Callable[[], bool]) -> None:
        while not self.stopping.is_set():
            try:
                busy = step()
            except Exception:
                # The database went away, a pump hit a bug: say so, wait, try again; the queue keeps the work.
                log.exception("worker.step_failed", worker=self.name, step=step.__name__)
                busy = False
            if not busy:
                self.stopping.wait(self.settings.worker_poll_seconds)

    def turn(self) -> bool:
        """One step of everything, on this thread. Returns whether anything was done."""
        worked = self.work()
        return self.pump() or worked

    def work(self) -> bool:
        """Schedules what is due and runs one job."""
        self.schedule(self.clock())
        return self.run_next() is not None

    def pump(self) -> bool:
        done = False
        for pump in self.registry.pumps:
            if self.stopping.is_set():
                break
            done = pump(self.db, self.clock()) > 0 or done
        return done

    def schedule(self, now: datetime) -> None:
        for kind in self.registry.kinds.values():
            if kind.schedule is None:
                continue
            key = kind.schedule.key(now)
            if self._scheduled.get(kind.name) == key:
                continue
            start = kind.schedule.period_start(now)
            attempts = kind.max_attempts or self.settings.job_max_attempts
            self.db.run(
                lambda conn: queue.enqueue(conn, kind.name, key, now=now, run_at=start, max_attempts=attempts)  # noqa: B023
            )
            self._scheduled[kind.name] = key

    def run_next(self, *, job_id: int | None = None) -> JobResult | None:
        """Claims and runs the next due job (or the job `job_id`); None when nothing is due."""
        job = queue.claim(
            self.db,
            worker=self.name,
            now=self.clock(),
            lease=timedelta(seconds=self.settings.job_lease_seconds),
            kinds=self.registry.kinds.keys(),
            job_id=job_id,
        )
        return None if job is None else self.execute(job)

    def run_now(self, kind_name: str, payload: dict[str, Any] | None = None) -> JobResult:
        """Enqueues a one-off job of the kind and runs it here and now (`patron jobs run NAME`)."""
        kind = self.registry.kind(kind_name)
        now = self.clock()
        key = f"manual:{now.isoformat()}:{secrets.token_hex(4)}"
        attempts = kind.max_attempts or self.settings.job_max_attempts
        self.db.run(lambda conn: queue.enqueue(conn, kind.name, key, now=now, payload=payload, max_attempts=attempts))
        with self.db.read() as conn:
            job_id = queue.job_id(conn, kind.name, key)
        result = self.run_next(job_id=job_id)
        assert result is not None, "a job just enqueued for now is due"
        return result

    def execute(self, job: ClaimedJob) -> JobResult:
        kind = self.registry.kinds[job.kind]
        context = JobContext(self.db, self.settings, job.id, job.key, job.payload, self.clock(), self.stopping)
        bound = log.bind(worker=self.name, job_id=job.id, kind=job.kind, key=job.key, attempt=job.attempt)
        bound.info("job.started")
        started = time.monotonic()
        heartbeat_done = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(job, heartbeat_done), daemon=True)
        heartbeat.start()
        result: dict[str, Any] | None = None
        error: str | None = None
        try:
            result = dict(kind.handler(context))
        except JobInterrupted:
            outcome, result, error = queue.RunOutcome.INTERRUPTED, None, "the worker was asked to stop"
        except Exception as exc:
            outcome, result, error = queue.RunOutcome.FAILED, None, _describe(exc)
        else:
            outcome, error = queue.RunOutcome.SUCCEEDED, None
        finally:
            heartbeat_done.set()
            heartbeat.join()
        now = self.clock()
        if outcome is queue.RunOutcome.SUCCEEDED:
            queue.succeed(self.db, job, worker=self.name, now=now, result=result or {})
        elif outcome is queue.RunOutcome.INTERRUPTED:
            queue.put_back(self.db, job, worker=self.name, now=now)
        else:
            wait = retry_delay(
                job.attempt, base=self.settings.job_retry_base_seconds, cap=self.settings.job_retry_max_seconds
            )
            retried = queue.fail(self.db, job, worker=self.name, now=now, error=error or "", retry_at=now + wait)
            bound = bound.bind(retry_at=(now + wait).isoformat() if retried else None, dead=not retried)
        seconds = time.monotonic() - started
        metrics.job_runs.labels(kind=job.kind, outcome=outcome.value).inc()
        metrics.job_seconds.labels(kind=job.kind).observe(seconds)
        level = bound.info if outcome is not queue.RunOutcome.FAILED else bound.warning
        level("job.finished", outcome=outcome.value, seconds=round(seconds, 3), result=result, error=error)
        return JobResult(job.id, job.kind, job.key, job.attempt, outcome.value, result, error)

    def _heartbeat(self, job: ClaimedJob, done: threading.Event) -> None:
        lease = timedelta(seconds=self.settings.job_lease_seconds)
        while not done.wait(self.settings.job_lease_seconds / 3):
            try:
                if not queue.renew(self.db, job, worker=self.name, until=self.clock() + lease):
                    log.warning("job.lease_lost", worker=self.name, job_id=job.id)
                    return
            except Exception:
                log.exception("job.heartbeat_failed", worker=self.name, job_id=job.id)


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()[:2000]
