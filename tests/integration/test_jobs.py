"""The job queue and the periodic ledger jobs, on SQLite and PostgreSQL: once per period whoever schedules it,
retries with backoff then dead, a crashed worker's job taken over, concurrent workers never running a job twice."""

import threading
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from patron.domain.events import Purchase
from patron.domain.ledger import LotStatus
from patron.services import adjustments, events
from patron.services import outbox as outbox_service
from patron.services.outbox import EventType
from patron.store.background import job_runs, jobs, outbox, webhook_deliveries
from patron.store.tables import lots
from patron.webhooks import subscriptions
from patron.webhooks.delivery import WebhookConsumer
from patron.worker import queue
from patron.worker.housekeeping import PRUNE
from patron.worker.ledger_jobs import ACTIVATE, EXPIRE, REMIND
from patron.worker.plugins import default_registry
from patron.worker.registry import JobKind, Registry, Schedule
from patron.worker.runner import Worker
from patron.worker.settings import WorkerSettings
from tests.conftest import T0
from tests.helpers import check_invariants, program_accounts, set_up
from tests.integration.plain_program import plain_program

DAY = timedelta(days=1)


class Clock:
    def __init__(self, now=T0) -> None:
        self.now = now

    def __call__(self):
        return self.now


def settings(**overrides) -> WorkerSettings:
    return WorkerSettings(job_retry_base_seconds=60, job_retry_max_seconds=600, job_lease_seconds=30, **overrides)


def registry_of(*kinds: JobKind) -> Registry:
    registry = Registry()
    for kind in kinds:
        registry.add_kind(kind)
    return registry


def job_rows(db):
    with db.read() as conn:
        return conn.execute(sa.select(jobs).order_by(jobs.c.id)).all()


def run_rows(db):
    with db.read() as conn:
        return conn.execute(sa.select(job_runs).order_by(job_runs.c.id)).all()


def test_a_periodic_job_runs_once_per_period_whoever_schedules_it(db):
    calls = []
    hourly = JobKind("tick", lambda ctx: calls.append(ctx.key) or {}, "test", Schedule(timedelta(hours=1)))
    clock = Clock(T0 + timedelta(minutes=5))
    first = Worker(db, registry_of(hourly), settings(), clock=clock, name="a")
    second = Worker(db, registry_of(hourly), settings(), clock=clock, name="b")  # a second worker, or a restart

    for worker in (first, second, first, second):
        while worker.turn():
            pass
    assert calls == ["2026-01-05T12:00:00+00:00"]

    clock.now += timedelta(hours=1)
    second.turn()
    first.turn()
    assert calls == ["2026-01-05T12:00:00+00:00", "2026-01-05T13:00:00+00:00"]
    assert [r.outcome for r in run_rows(db)] == ["succeeded", "succeeded"]


def test_a_failing_job_is_retried_with_backoff_then_dead(db):
    attempts = []

    def broken(ctx):
        attempts.append(ctx.now)
        raise RuntimeError("the disk is full")

    kind = JobKind("broken", broken, "test", max_attempts=3)
    clock = Clock()
    worker = Worker(db, registry_of(kind), settings(), clock=clock, name="w")
    with db.write() as conn:
        queue.enqueue(conn, "broken", "once", now=clock.now, max_attempts=3)

    result = worker.run_next()
    assert result is not None
    assert result.outcome == "failed"
    (job,) = job_rows(db)
    assert job.status == "queued"
    assert job.last_error == "RuntimeError: the disk is full"
    # Equal jitter: the first retry waits between half and all of the base delay.
    assert timedelta(seconds=30) <= job.run_at - clock.now <= timedelta(seconds=60)
    assert worker.run_next() is None, "not due before its retry time"

    clock.now = job.run_at
    assert worker.run_next().outcome == "failed"
    (job,) = job_rows(db)
    assert timedelta(seconds=60) <= job.run_at - clock.now <= timedelta(seconds=120), "the delay doubles"

    clock.now = job.run_at
    assert worker.run_next().outcome == "failed"
    (job,) = job_rows(db)
    assert job.status == "dead"
    assert len(attempts) == 3
    assert [(r.attempt, r.outcome) for r in run_rows(db)] == [(1, "failed"), (2, "failed"), (3, "failed")]
    clock.now += DAY
    assert worker.run_next() is None, "a dead job is not retried"


def test_the_job_of_a_worker_that_died_is_taken_over_when_its_lease_runs_out(db):
    done = []
    kind = JobKind("work", lambda ctx: done.append(ctx.job_id) or {"ok": True}, "test")
    clock = Clock()
    with db.write() as conn:
        queue.enqueue(conn, "work", "k", now=clock.now)
    # Worker "dead" claims the job, then is killed: it never finishes nor renews the lease.
    claimed = queue.claim(db, worker="dead", now=clock.now, lease=timedelta(seconds=30), kinds=["work"])
    assert claimed is not None
    survivor = Worker(db, registry_of(kind), settings(), clock=clock, name="survivor")
    assert survivor.run_next() is None, "the lease still holds"

    clock.now += timedelta(seconds=31)
    result = survivor.run_next()
    assert result is not None
    assert result.outcome == "succeeded"
    assert result.attempt == 2
    assert done == [claimed.id]
    (job,) = job_rows(db)
    assert job.status == "succeeded"
    assert [(r.worker, r.outcome) for r in run_rows(db)] == [("dead", "abandoned"), ("survivor", "succeeded")]


def test_a_job_put_back_by_a_stopping_worker_resumes_without_losing_an_attempt(db):
    stop = threading.Event()

    def chunks(ctx):
        stop.set()  # SIGTERM arrives during the first chunk
        ctx.chunk_done(1)
        return {}

    kind = JobKind("chunks", chunks, "test", max_attempts=1)
    with db.write() as conn:
        queue.enqueue(conn, "chunks", "k", now=T0, max_attempts=1)
    worker = Worker(db, registry_of(kind), settings(), clock=Clock(), name="w", stopping=stop)
    assert worker.run_next().outcome == "interrupted"
    (job,) = job_rows(db)
    assert (job.status, job.attempts) == ("queued", 0)


def test_concurrent_workers_never_run_a_job_twice(db):
    ran = Counter()
    lock = threading.Lock()

    def count(ctx):
        with lock:
            ran[ctx.job_id] += 1
        return {}

    kind = JobKind("count", count, "test")
    with db.write() as conn:
        for n in range(40):
            queue.enqueue(conn, "count", str(n), now=T0)
    barrier = threading.Barrier(4)

    def drain(name):
        worker = Worker(db, registry_of(kind), settings(), clock=Clock(), name=name)
        barrier.wait()
        while worker.run_next() is not None:
            pass

    threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ran) == 40
    assert set(ran.values()) == {1}
    assert {r.outcome for r in run_rows(db)} == {"succeeded"}
    assert len(run_rows(db)) == 40


def _lots_that_expire(db, members=3):
    s = set_up(
        db,
        plain_program(expiry={"policy": "after", "days": 30}, pending_days=14),
        member_ids=tuple(f"m{i}" for i in range(members)),
        now=T0,
    )
    for i in range(members):
        for n in range(2):
            purchase = Purchase(
                event_id=f"p{i}-{n}", member_id=f"m{i}", occurred_at=T0 + n * DAY, order_id=f"o{i}-{n}", total="10"
            )
            events.ingest(db, s.cache, s.program_id, purchase, now=T0 + n * DAY)
    return s


def test_the_ledger_jobs_run_twice_change_nothing_the_second_time(db):
    s = _lots_that_expire(db)
    clock = Clock(T0 + 15 * DAY)
    worker = Worker(db, registry_of(ACTIVATE, EXPIRE, REMIND), settings(reminder_days=20), clock=clock, name="w")

    first = worker.run_now("points.activate")
    assert first.result == {"lots": 6, "points": 60, "members": 3}
    assert worker.run_now("points.activate").result == {"lots": 0, "points": 0, "members": 0}

    reminders = worker.run_now("points.remind_expiring")
    assert reminders.result == {"members": 3, "expiry_dates": 6}
    worker.run_now("points.remind_expiring")
    with db.read() as conn:
        soon = conn.execute(
            sa.select(outbox.c.member_id, outbox.c.data).where(outbox.c.type == EventType.POINTS_EXPIRING_SOON.value)
        ).all()
    assert len(soon) == 6, "one reminder per member and expiry date, however often the job runs"
    assert {row.data["points"] for row in soon} == {10}

    clock.now = T0 + 40 * DAY
    assert worker.run_now("points.expire").result == {"lots": 6, "points": 60, "members": 3}
    assert worker.run_now("points.expire").result == {"lots": 0, "points": 0, "members": 0}
    assert program_accounts(db, s.program_id)["expired"] == 60
    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(lots.c.status == LotStatus.EXPIRED.value)).scalar() == 6
        announced = conn.execute(
            sa.select(outbox.c.type, sa.func.sum(sa.cast(outbox.c.data["points"].as_string(), sa.Integer)))
            .where(outbox.c.type.in_(["points.activated", "points.expired"]))
            .group_by(outbox.c.type)
        ).all()
    assert dict(announced) == {"points.activated": 60, "points.expired": 60}
    check_invariants(db)


def test_the_shipped_registry_schedules_every_ledger_job(db):
    registry = default_registry(settings(), worker="w")
    assert {"points.activate", "points.expire", "points.remind_expiring"} <= set(registry.kinds)
    worker = Worker(db, registry, settings(), clock=Clock(), name="w")
    worker.schedule(T0)
    worker.schedule(T0)
    scheduled = Counter(j.kind for j in job_rows(db))
    assert set(scheduled) == {k.name for k in registry.kinds.values() if k.schedule is not None}
    assert set(scheduled.values()) == {1}, "scheduled once per period, however often the worker looks"


def test_housekeeping_deletes_what_is_done_and_keeps_what_is_owed(db):

    s = set_up(db, plain_program(), member_ids=("m1",), now=T0)
    db.run(
        lambda conn: subscriptions.create(
            conn, s.program_id, "http://127.0.0.1:9/", ["points.adjusted"], description="", now=T0
        )
    )
    for reason in ("delivered", "dead", "pending"):
        adjustments.adjust(db, s.cache, s.program_id, "m1", 5, reason, actor="t", now=T0)
    outbox_service.dispatch(db, [WebhookConsumer()], now=T0)  # the publish and the three adjustments
    with db.write() as conn:
        ids = conn.execute(sa.select(webhook_deliveries.c.id).order_by(webhook_deliveries.c.id)).scalars().all()
        conn.execute(
            sa.update(webhook_deliveries)
            .where(webhook_deliveries.c.id == ids[0])
            .values(status="delivered", delivered_at=T0)
        )
        conn.execute(sa.update(webhook_deliveries).where(webhook_deliveries.c.id == ids[1]).values(status="dead"))
    adjustments.adjust(db, s.cache, s.program_id, "m1", 5, "not dispatched yet", actor="t", now=T0)
    clock = Clock(T0)
    worker = Worker(db, registry_of(PRUNE, EXPIRE), settings(), clock=clock, name="w")
    worker.run_now("points.expire")

    clock.now = T0 + 31 * DAY
    result = worker.run_now("background.prune")
    assert result.result == {"deliveries": 1, "messages": 2, "job_runs": 1, "jobs": 1}
    with db.read() as conn:
        left = conn.execute(sa.select(webhook_deliveries.c.status).order_by(webhook_deliveries.c.id)).scalars().all()
        messages = conn.execute(sa.select(outbox.c.type, outbox.c.dispatched_at).order_by(outbox.c.id)).all()
    assert left == ["dead", "pending"]
    assert [(t, d is None) for t, d in messages] == [
        ("points.adjusted", False),
        ("points.adjusted", False),
        ("points.adjusted", True),
    ]
    assert [j.kind for j in job_rows(db)] == ["background.prune"], "the expiry run is gone; this run is kept"
