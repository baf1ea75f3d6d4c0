"""An order import spread over several processes, each importing the orders of its own members.

One process cannot use a second core: deciding events and building their rows is Python work under one GIL, and
on PostgreSQL it was three quarters of an import's time. Orders are dealt to worker processes by member, so each
member's orders keep their order in the file and every decision is the one a single process would make; each worker
runs the ordinary import (`imports.import_orders` with one process) on its own connection.

That holds only while no decision reads another member's state. Two things in a program make one member's order
change another's: a referral (the referee's first order rewards the referrer), and a campaign with a points budget
(every member spends from it, first come first served). Members linked by referrals go to the same worker. Orders
inside a budgeted campaign's dates are imported by this process alone, in file order, once the workers have
finished everything before them. SQLite writes one transaction at a time, for a whole batch including its
decisions, so it gets one process.
"""

import multiprocessing
import os
import queue
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select

from patron.services import programs
from patron.store.database import Database
from patron.store.tables import members, referrals

AUTOMATIC_JOBS = 2  # measured on 2 cores: the server needs CPU too; `--jobs` asks for more
_INBOX_CHUNKS = 4  # batches waiting per worker: enough to keep it busy, little to hold in memory
_POLL_SECONDS = 0.2  # how often a waiting parent looks whether a worker died


class Report(Protocol):
    """What the import reports (imports.ImportReport), as far as merging reports goes."""

    processes: int

    def merge(self, other: Any) -> None: ...


Row = tuple[int, Any]  # (line number, the row's cells by column name)
Progress = Callable[[int], None]
ImportHere = Callable[[Database, Iterable[Row], Progress | None], Any]  # one process's import of some rows


class ImportProcessFailed(RuntimeError):
    """A worker process failed: what it had committed stays (re-running the import replays it)."""


@dataclass(frozen=True)
class Plan:
    """How an import is split: which worker takes a member, and the times only one process may import."""

    jobs: int
    group_of: dict[str, str]  # member id -> a member id standing for its referral group
    budgeted: list[tuple[datetime, datetime]]  # [starts_at, ends_at) of every campaign with a points budget

    def worker_of(self, member_id: str) -> int:
        key = self.group_of.get(member_id, member_id)
        return zlib.crc32(key.encode()) % self.jobs  # not hash(): the same worker in every process and run

    def alone(self, cells: Any) -> bool:
        """Whether a row's order may spend from a campaign budget, so that it must wait for every order before
        it. A time this cannot read is let through: its row is refused by the worker anyway."""
        text = cells.get("occurred_at")
        if not self.budgeted or not text:
            return False
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            return False
        if at.tzinfo is None:
            return False  # refused by the worker: times must say their zone
        return any(start <= at < end for start, end in self.budgeted)


def jobs_for(db: Database, jobs: int | None) -> int:
    """How many processes an import uses: `jobs` if given, else AUTOMATIC_JOBS on PostgreSQL (at most one per
    core); always 1 on SQLite, or where processes cannot be forked."""
    if db.is_sqlite or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if jobs is not None:
        return max(jobs, 1)
    return max(min(AUTOMATIC_JOBS, os.cpu_count() or 1), 1)


def plan(db: Database, program_id: int, jobs: int) -> Plan:
    with db.read() as conn:
        versions = programs.list_versions(conn, program_id)
        pairs = conn.execute(
            select(referrals.c.referrer_id, referrals.c.referee_id).where(referrals.c.program_id == program_id)
        ).all()
        linked = {p for pair in pairs for p in pair}
        names = (
            dict(
                conn.execute(
                    select(members.c.id, members.c.external_id).where(
                        members.c.program_id == program_id, members.c.id.in_(sorted(linked))
                    )
                ).all()
            )
            if linked
            else {}
        )
    budgeted = sorted(
        {(c.starts_at, c.ends_at) for v in versions for c in v.document.campaigns if c.budget_points is not None}
    )
    return Plan(jobs, _groups([(names[a], names[b]) for a, b in pairs]), budgeted)


def _groups(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Each member of a referral to the smallest member id of its group (members joined by referrals, however
    many steps apart): union-find."""
    parent: dict[str, str] = {}

    def root(member: str) -> str:
        while parent.setdefault(member, member) != member:
            parent[member] = parent[parent[member]]
            member = parent[member]
        return member

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {member: root(member) for member in parent}


def run(
    db: Database,
    split: Plan,
    rows: Iterable[Row],
    import_here: ImportHere,
    report: Report,
    progress: Progress | None,
    *,
    batch_size: int,
) -> None:
    """Imports `rows` into `report`: the workers take every row up to the first that must be imported alone; this
    process imports that row and all after it, once the workers are done."""
    context = multiprocessing.get_context("fork")  # the children inherit the loaded modules: no second start-up
    results: Any = context.Queue()
    inboxes: list[Any] = [context.Queue(maxsize=_INBOX_CHUNKS) for _ in range(split.jobs)]
    workers = [
        context.Process(target=_work, args=(db, inbox, results, import_here), daemon=True, name=f"import-{n}")
        for n, inbox in enumerate(inboxes)
    ]
    for worker in workers:
        worker.start()
    waiting = _Results(results, workers, report, progress)
    rest = iter(rows)
    held: Row | None = None
    try:
        buffers: list[list[Row]] = [[] for _ in workers]
        for row in rest:
            if split.alone(row[1]):
                held = row
                break
            n = split.worker_of(row[1].get("member_id", ""))
            buffers[n].append(row)
            if len(buffers[n]) >= batch_size:
                waiting.send(inboxes[n], buffers[n])
                buffers[n] = []
        for inbox, buffer in zip(inboxes, buffers, strict=True):
            if buffer:
                waiting.send(inbox, buffer)
            waiting.send(inbox, None)
        waiting.until_done()
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
            worker.join()
    report.processes = len(workers)
    if held is not None:
        report.merge(import_here(db, _chain(held, rest), progress))


def _chain(first: Row, rest: Iterator[Row]) -> Iterator[Row]:
    yield first
    yield from rest


def _work(db: Database, inbox: Any, results: Any, import_here: ImportHere) -> None:
    # The parent's pooled connections came with the fork: the pool forgets them without closing them (they are
    # still the parent's) and opens this process's own.
    db.engine.dispose(close=False)
    try:

        def rows() -> Iterator[Row]:
            while (chunk := inbox.get()) is not None:
                yield from chunk

        found = import_here(db, rows(), lambda n: results.put(("progress", n)))
        results.put(("done", found))
    except BaseException as exc:
        results.put(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        db.engine.dispose()


class _Results:
    """The parent's side: hands out rows while reporting progress, and notices a worker that failed or died."""

    def __init__(self, results: Any, workers: list[Any], report: Report, progress: Progress | None) -> None:
        self.results, self.workers, self.report, self.progress = results, workers, report, progress
        self.done = 0

    def send(self, inbox: Any, chunk: list[Row] | None) -> None:
        while True:
            self._drain()
            try:
                inbox.put(chunk, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def until_done(self) -> None:
        while self.done < len(self.workers):
            self._drain(wait=True)

    def _drain(self, *, wait: bool = False) -> None:
        while True:
            try:
                kind, value = self.results.get(timeout=_POLL_SECONDS) if wait else self.results.get_nowait()
            except queue.Empty:
                self._check_alive()
                return
            wait = False
            if kind == "progress":
                if self.progress is not None:
                    self.progress(value)
            elif kind == "done":
                self.report.merge(value)
                self.done += 1
            else:
                raise ImportProcessFailed(f"an import process failed: {value}")

    def _check_alive(self) -> None:
        dead = [w for w in self.workers if w.exitcode not in (None, 0)]
        if dead:
            raise ImportProcessFailed(f"import process {dead[0].name} ended with exit code {dead[0].exitcode}")
