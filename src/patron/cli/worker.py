"""`patron worker` (runs jobs, schedules, the outbox and webhooks until SIGTERM) and `patron jobs list|run|history`."""

import json
import signal
import threading
from types import FrameType
from typing import Annotated

import typer
from prometheus_client import start_http_server
from rich.table import Table

from patron.cli.common import database, fail, out, say
from patron.observability.logs import LogFormat, configure, configure_for_terminal
from patron.services.clock import utcnow
from patron.worker import queue
from patron.worker.plugins import default_registry
from patron.worker.runner import Worker, worker_name
from patron.worker.settings import WorkerSettings

jobs_app = typer.Typer(help="The background jobs: what is registered, run one now, what ran.", no_args_is_help=True)


def worker(
    log_format: Annotated[
        str, typer.Option("--log-format", envvar="PATRON_LOG_FORMAT", help="json (one object per line) or console.")
    ] = "json",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            envvar="PATRON_WORKER_METRICS_PORT",
            help="Serve this worker's Prometheus counters (jobs, deliveries) on this port.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run background work until SIGTERM or Ctrl-C: periodic jobs (activation, expiry, reminders), the outbox
    and webhook deliveries. Run it beside `patron serve`; several workers may share a PostgreSQL database."""
    if log_format not in ("json", "console"):
        fail("--log-format", f"json or console, not {log_format!r}", code=2)
    chosen: LogFormat = "json" if log_format == "json" else "console"
    configure(chosen)
    settings = WorkerSettings()
    stopping = threading.Event()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        stopping.set()  # the loop ends after the current step; a chunked job is put back after its chunk

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1")  # scraped from this host (or a sidecar)
    name = worker_name()
    with database() as db:
        Worker(db, default_registry(settings, worker=name), settings, name=name, stopping=stopping).run()


@jobs_app.command("list")
def list_jobs() -> None:
    """The registered jobs, their schedule, the queue and the last run of each."""
    settings = WorkerSettings()
    registry = default_registry(settings, worker="cli")
    with database() as db, db.read() as conn:
        counts = queue.counts_by_status(conn)
        last = queue.last_runs(conn)
    table = Table("job", "every", "queued", "running", "dead", "last run", "outcome", "what it does")
    for kind in sorted(registry.kinds.values(), key=lambda k: k.name):
        run = last.get(kind.name)
        table.add_row(
            kind.name,
            str(kind.schedule.every) if kind.schedule else "on demand",
            str(counts.get((kind.name, queue.JobStatus.QUEUED.value), 0)),
            str(counts.get((kind.name, queue.JobStatus.RUNNING.value), 0)),
            str(counts.get((kind.name, queue.JobStatus.DEAD.value), 0)),
            run.started_at.isoformat(timespec="seconds") if run else "never",
            run.outcome if run else "",
            kind.description,
        )
    out.print(table)


@jobs_app.command("run")
def run_job(name: Annotated[str, typer.Argument(help="A job name from `patron jobs list`.")]) -> None:
    """Run a job now, in this process, recorded like any other run. Safe beside a worker: every job is
    idempotent, so work the worker already did is not done again."""
    configure_for_terminal()  # the run's log lines go to stderr; stdout gets the result alone
    settings = WorkerSettings()
    worker_id = f"cli:{worker_name()}"
    registry = default_registry(settings, worker=worker_id)
    if name not in registry.kinds:
        fail("NAME", f"no job {name!r}; known jobs: {', '.join(sorted(registry.kinds))}", code=2)
    with database() as db:
        result = Worker(db, registry, settings, name=worker_id).run_now(name)
    if result.outcome != queue.RunOutcome.SUCCEEDED.value:
        fail(name, f"{result.outcome}: {result.error}")
    say(f"{name}: {result.outcome} {json.dumps(result.result, sort_keys=True)}")


@jobs_app.command("history")
def history(
    name: Annotated[str | None, typer.Argument(help="Only runs of this job.", show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs, newest first.")] = 20,
) -> None:
    """The latest job runs, newest first: when, where, how long, and how each ended."""
    with database() as db, db.read() as conn:
        runs = queue.history(conn, kind=name, limit=limit)
    table = Table("run", "job", "period/key", "attempt", "worker", "started", "seconds", "outcome", "result / error")
    for run in runs:
        seconds = f"{(run.finished_at - run.started_at).total_seconds():.1f}" if run.finished_at else ""
        detail = run.error if run.error else json.dumps(run.result, sort_keys=True) if run.result else ""
        table.add_row(
            str(run.run_id),
            run.kind,
            run.key,
            str(run.attempt),
            run.worker,
            run.started_at.isoformat(timespec="seconds"),
            seconds,
            run.outcome,
            detail,
        )
    out.print(table)
    if not runs:
        say(f"No runs yet (as of {utcnow().isoformat(timespec='seconds')}).")
