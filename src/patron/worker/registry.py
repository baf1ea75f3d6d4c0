"""What a worker knows how to do: job kinds (some on a schedule), outbox consumers and pumps.

Features plug in here (see patron.worker.plugins): a job kind is a function run once per job row; a schedule
makes the worker enqueue one job per period; an outbox consumer turns committed outbox messages into its own
rows inside the dispatch transaction; a pump is called on every turn of the worker loop (webhook delivery).
"""

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from patron.services.outbox import OutboxConsumer
from patron.store.database import Database
from patron.worker.settings import WorkerSettings

_EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday: weekly periods start on Mondays, UTC


class JobInterrupted(Exception):
    """Raised between two chunks when the worker is asked to stop: the job goes back to the queue."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """Once per period of length `every`, periods counted from a Monday at 00:00 UTC."""

    every: timedelta

    def period_start(self, now: datetime) -> datetime:
        return _EPOCH + ((now - _EPOCH) // self.every) * self.every

    def key(self, now: datetime) -> str:
        """The job key of the period `now` falls in: one job per (kind, period), whoever schedules it."""
        return self.period_start(now).isoformat()


@dataclass
class JobContext:
    db: Database
    settings: WorkerSettings
    job_id: int
    key: str
    payload: dict[str, Any]
    now: datetime
    stopping: threading.Event = field(default_factory=threading.Event)

    def chunk_done(self, _count: int = 0) -> None:
        """Called by chunked jobs after each committed chunk: a place to pause and to stop cleanly."""
        if self.stopping.is_set():
            raise JobInterrupted
        if self.settings.job_chunk_pause_seconds:
            self.stopping.wait(self.settings.job_chunk_pause_seconds)


Handler = Callable[[JobContext], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class JobKind:
    name: str
    handler: Handler
    description: str
    schedule: Schedule | None = None
    max_attempts: int | None = None  # default: the worker setting


class Pump(Protocol):
    """Work the worker does on every turn, beside jobs. Returns how much it did (0 lets the worker rest)."""

    name: str

    def __call__(self, db: Database, now: datetime) -> int: ...


@dataclass
class Registry:
    kinds: dict[str, JobKind] = field(default_factory=dict)
    consumers: list[OutboxConsumer] = field(default_factory=list)
    pumps: list[Pump] = field(default_factory=list)

    def add_kind(self, kind: JobKind) -> None:
        if kind.name in self.kinds:
            raise ValueError(f"job kind {kind.name!r} is registered twice")
        self.kinds[kind.name] = kind

    def add_consumer(self, consumer: OutboxConsumer) -> None:
        self.consumers.append(consumer)

    def add_pump(self, pump: Pump) -> None:
        self.pumps.append(pump)

    def kind(self, name: str) -> JobKind:
        try:
            return self.kinds[name]
        except KeyError:
            known = ", ".join(sorted(self.kinds))
            raise KeyError(f"no job {name!r}; known jobs: {known}") from None
