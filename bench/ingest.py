"""Ingest throughput: single events over the API against the raw-SQL baseline, and batches of events.

The API runs in a process of its own (uvicorn, `workers` processes) on a fresh database holding the demo
program and `members` members; every event is a purchase with a new event id and order, so each one earns and
writes a full ledger transaction (event row, journal, postings, lot, order, balance, stored receipt).
"""

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bench import baseline, load
from bench.databases import fresh_database, server_cpu_seconds
from bench.report import Figure
from bench.server import HOST, serving
from bench.workload import Workload, prepare
from patron.services import events
from patron.services.program_cache import ProgramCache
from patron.store.database import Database

CLIENTS = 16
BATCH = 1_000
# SQLite writes one transaction at a time: a second server process adds nothing but waits in SQLite's busy
# handler, so SQLite is served as it should be deployed, by one process. PostgreSQL gets a worker per core.
DEFAULT_WORKERS = {"sqlite": 1, "postgres": 2}
FLOOR_APP = "bench.floor:create_app"


@dataclass(frozen=True)
class IngestScale:
    members: int
    seconds: float  # measured time of each closed-loop run (after a 1 s warm-up)
    service_batches: int  # batches of BATCH events through services.events.ingest_batch
    http_batches_seconds: float
    workers: int | None = None  # API processes; None: DEFAULT_WORKERS for the backend
    clients: int = CLIENTS
    batch: int = BATCH


def run(backend: str, scale: IngestScale) -> list[Figure]:
    if scale.workers is None:
        scale = replace(scale, workers=DEFAULT_WORKERS[backend])
    workers = scale.workers or 1
    figures: list[Figure] = []
    with fresh_database(backend, "ingest") as db:
        workload = prepare(db, members=scale.members)
        url = db.url.render_as_string(hide_password=False)
        baseline.create_tables(db)
        raw = baseline.run(db, threads=scale.clients, seconds=scale.seconds)
        figures.append(
            Figure(
                f"raw-SQL earn, {scale.clients} threads",
                backend,
                raw.rate,
                "tx/s",
                note=f"p50 {raw.percentile(0.5) * 1000:.2f} ms, p99 {raw.percentile(0.99) * 1000:.2f} ms",
            )
        )
        with serving(url, workers=workers, app=FLOOR_APP) as port:
            figures.append(_floor(backend, workload, port, scale, raw, workers))
        with serving(url, workers=workers) as port:
            figures += _api_single(backend, workload, port, scale, raw, workers)
            figures += _api_batches(backend, workload, port, scale, workers)
        figures.append(_service_batches(backend, db, workload, scale))
    return figures


def _floor(
    backend: str, workload: Workload, port: int, scale: IngestScale, raw: baseline.BaselineResult, workers: int
) -> Figure:
    result = _single_events(workload, port, scale, "floor")
    return Figure(
        f"API floor: FastAPI, no database, {scale.clients} clients",
        backend,
        result.rate,
        "events/s",
        note=f"{100 * result.rate / raw.rate:.0f} % of raw-SQL earn, {_workers(workers)}, "
        f"load generator {result.client_cpu / result.seconds:.0%} of a core (bench.floor)",
    )


def _single_events(workload: Workload, port: int, scale: IngestScale, tag: str) -> load.LoadResult:
    """`scale.clients` closed-loop clients posting new purchases one by one, all of which must be accepted."""
    result = load.run(
        HOST,
        port,
        "/v1/events",
        workload.token,
        lambda n: workload.purchase_json(tag, n),
        clients=scale.clients,
        seconds=scale.seconds,
    )
    _require_success(result, {201})
    return result


def _workers(count: int) -> str:
    return f"{count} worker{'s' if count > 1 else ''}"


def _api_single(
    backend: str, workload: Workload, port: int, scale: IngestScale, raw: baseline.BaselineResult, workers: int
) -> list[Figure]:
    result = _single_events(workload, port, scale, "api")
    p50, p99 = result.percentile(0.5) * 1000, result.percentile(0.99) * 1000
    processes = _workers(workers)
    return [
        Figure(
            f"API ingest, {scale.clients} clients",
            backend,
            result.rate,
            "events/s",
            note=f"p50 {p50:.1f} ms, {processes}, load generator {result.client_cpu / result.seconds:.0%} of a core",
        ),
        Figure("API ingest p99 latency", backend, p99, "ms", target=50, lower_is_better=True),
        Figure("API ingest ÷ raw-SQL earn", backend, 100 * result.rate / raw.rate, "%", target=50),
    ]


def _api_batches(backend: str, workload: Workload, port: int, scale: IngestScale, workers: int) -> list[Figure]:
    result = load.run(
        HOST,
        port,
        "/v1/events/batch",
        workload.token,
        lambda n: workload.batch_json("api-batch", n, scale.batch),
        clients=workers,
        seconds=scale.http_batches_seconds,
    )
    _require_success(result, {200})
    return [
        Figure(
            f"API batch ingest ({scale.batch:,} a request)",
            backend,
            result.rate * scale.batch,
            "events/s",
            target=10_000 if backend == "postgres" else None,
            note=f"{workers} client(s), p50 {result.percentile(0.5) * 1000:.0f} ms a batch",
        )
    ]


def _service_batches(backend: str, db: Database, workload: Workload, scale: IngestScale) -> Figure:
    batches = [workload.purchases("service", i * scale.batch, scale.batch) for i in range(scale.service_batches)]
    cache = ProgramCache()
    now = datetime.now(UTC)
    events.ingest_batch(db, cache, workload.program_id, workload.purchases("warm", 0, 10), now=now)
    server_before = server_cpu_seconds(db)
    cpu_before = time.process_time()
    start = time.perf_counter()
    for batch in batches:
        outcomes = events.ingest_batch(db, cache, workload.program_id, batch, now=now)
        assert all(not isinstance(o, Exception) for o in outcomes), "every benchmark event is accepted"
    seconds = time.perf_counter() - start
    count = scale.service_batches * scale.batch
    ours = (time.process_time() - cpu_before) / count * 1e6
    server_after = server_cpu_seconds(db)
    # Where each side's time goes decides what a target asks of each; PostgreSQL's is its processes' CPU.
    server = sum(server_after[pid] - used for pid, used in server_before.items() if pid in server_after)
    cpu = f"CPU an event: ours {ours:.0f} µs"
    if server_after:
        cpu += f", PostgreSQL's {server / count * 1e6:.0f} µs"
    return Figure(
        f"batch ingest, services.events.ingest_batch ({scale.batch:,})",
        backend,
        count / seconds,
        "events/s",
        target=10_000 if backend == "postgres" else None,
        note=f"{scale.service_batches} batches, in process, 1 thread; {cpu}",
    )


def _require_success(result: load.LoadResult, expected: set[int]) -> None:
    unexpected = {status: count for status, count in result.statuses.items() if status not in expected}
    if unexpected or not result.requests:
        raise RuntimeError(f"the API answered {result.statuses} (expected only {sorted(expected)})")
