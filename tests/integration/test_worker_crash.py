"""`patron worker` as a real process: SIGKILL it in the middle of the expiry job, start it again, and the job
finishes once, with every lot expired exactly once. SIGTERM stops it cleanly between two chunks."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from patron.domain.events import Purchase
from patron.domain.ledger import LotStatus
from patron.services import events
from patron.services.clock import utcnow
from patron.store.background import job_runs, jobs, outbox
from patron.store.tables import journal, lots, postings
from tests.helpers import check_invariants, program_accounts, set_up
from tests.integration.plain_program import plain_program

pytestmark = pytest.mark.slow

MEMBERS = 40
LOTS_EACH = 50
POINTS_EACH_LOT = 7


def _seed(db):
    """2,000 lots earned long ago, all past their expiry: the first worker's expiry job has work to do."""
    long_ago = utcnow() - timedelta(days=400)
    member_ids = tuple(f"m{i}" for i in range(MEMBERS))
    s = set_up(
        db,
        plain_program(expiry={"policy": "after", "days": 30}, pending_days=0),
        member_ids=member_ids,
        now=long_ago,
    )
    batch = [
        Purchase(
            event_id=f"p{m}-{n}",
            member_id=f"m{m}",
            occurred_at=long_ago + timedelta(minutes=n),
            order_id=f"o{m}-{n}",
            total=str(POINTS_EACH_LOT),
        )
        for m in range(MEMBERS)
        for n in range(LOTS_EACH)
    ]
    for start in range(0, len(batch), 1000):
        events.ingest_batch(db, s.cache, s.program_id, batch[start : start + 1000], now=utcnow())
    return s


def _start_worker(db, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "PATRON_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "PATRON_JOB_CHUNK": "40",
        "PATRON_JOB_CHUNK_PAUSE_SECONDS": "0.03",
        "PATRON_JOB_LEASE_SECONDS": "1",
        "PATRON_WORKER_POLL_SECONDS": "0.1",
    }
    patron = Path(sys.executable).parent / "patron"
    with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([str(patron), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)


def _expired_lots(db) -> int:
    with db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(lots.c.status == LotStatus.EXPIRED.value)).scalar())


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _expiry_job(db):
    with db.read() as conn:
        return conn.execute(sa.select(jobs).where(jobs.c.kind == "points.expire").order_by(jobs.c.id)).first()


def _runs_of(db, job_id):
    with db.read() as conn:
        return conn.execute(
            sa.select(job_runs.c.outcome, job_runs.c.attempt).where(job_runs.c.job_id == job_id).order_by(job_runs.c.id)
        ).all()


def test_a_worker_killed_mid_job_finishes_it_once_after_a_restart(db, tmp_path):
    s = _seed(db)
    total_lots = MEMBERS * LOTS_EACH
    first = _start_worker(db, tmp_path, "first")
    try:
        _wait_for(lambda: _expired_lots(db) >= 200, "the first chunks to expire")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    done_before_restart = _expired_lots(db)
    assert 0 < done_before_restart < total_lots, "killed in the middle of the job"
    job = _expiry_job(db)
    assert job.status == "running", "the killed worker left its job claimed"
    check_invariants(db)  # every committed chunk is whole: no lot expired without its posting

    second = _start_worker(db, tmp_path, "second")
    try:
        _wait_for(lambda: _expiry_job(db).status == "succeeded", "the restarted worker to finish the job")
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    finally:
        second.kill()

    assert _expired_lots(db) == total_lots
    assert program_accounts(db, s.program_id)["expired"] == total_lots * POINTS_EACH_LOT
    with db.read() as conn:
        member_side = conn.execute(
            sa.select(sa.func.sum(postings.c.amount))
            .join(journal, journal.c.id == postings.c.transaction_id)
            .where(journal.c.kind == "expire", postings.c.member_id.is_not(None))
        ).scalar_one()
        announced = conn.execute(sa.select(outbox.c.data).where(outbox.c.type == "points.expired")).scalars().all()
    assert int(member_side) == -total_lots * POINTS_EACH_LOT, "no point expired twice"
    assert sum(d["points"] for d in announced) == total_lots * POINTS_EACH_LOT, "announced once each"
    assert [r.outcome for r in _runs_of(db, job.id)] == ["abandoned", "succeeded"]
    assert _expiry_job(db).attempts == 2
    check_invariants(db)


def test_sigterm_puts_a_chunked_job_back_and_the_next_worker_resumes_it(db, tmp_path):
    _seed(db)
    worker = _start_worker(db, tmp_path, "stopped")
    try:
        _wait_for(lambda: _expired_lots(db) >= 200, "the first chunks to expire")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0, "a clean exit"
    finally:
        worker.kill()
    job = _expiry_job(db)
    assert (job.status, job.attempts) == ("queued", 0)
    assert [r.outcome for r in _runs_of(db, job.id)] == ["interrupted"]

    again = _start_worker(db, tmp_path, "again")
    try:
        _wait_for(lambda: _expiry_job(db).status == "succeeded", "the job to be resumed")
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(20)
    assert _expired_lots(db) == MEMBERS * LOTS_EACH
    check_invariants(db)
