"""Group commit for single events: the requests that arrive while a transaction is in flight share the next one.

One coalescer per process, one queue and at most one leader per program. The first request to find its program idle
starts a leader at once (no timer: a lone request is not made to wait for company); requests arriving while the
leader's transaction runs queue up, and the leader takes them together, up to `max_batch`, in its next transaction.

Clients answered together send their next events together, a little after the leader has already taken the few
that came in first: a closed loop of 16 clients settled into transactions of 14 and 2 events taking the same time
each, forever. So after answering several events the leader waits for as many as it expects (those it answered
and those queued meanwhile) while they keep arriving, each no more than `linger` seconds after the one before.
A batch goes through the same writes as the batch endpoint (services.events.ingest_batch_reporting_replays), which
gives each event its own outcome; a batch of one goes the single-event way, exactly as with group commit off.

An event id is never twice in one batch: a second delivery waits for the next transaction, where it finds the first
one's stored receipt (200) or its failure judged again, as it would have sent alone. So an event's reply does not
depend on the neighbours it shared a transaction with. If the whole batch fails (the database is down, say), every
request of that batch gets the error.
"""

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from anyio import to_thread

from patron.domain.engine import AnyEvent
from patron.services import events
from patron.services.errors import ServiceError
from patron.services.program_cache import ProgramCache
from patron.services.views import EventReceipt
from patron.store.database import Database

Outcome = tuple[EventReceipt, bool] | ServiceError  # the receipt and whether it is a replay, or why the event failed
# Ingests a program's batch in one transaction where it can: one outcome per event, in order. Runs in a thread.
Ingest = Callable[[int, Sequence[AnyEvent]], list[Outcome]]

MAX_BATCH = 256
LINGER = 0.001  # seconds: a client's next event comes this soon after its reply, or is not waited for


def ingesting(db: Database, cache: ProgramCache, clock: Callable[[], datetime]) -> Ingest:
    """What a leader runs: a batch of one the single-event way (as with group commit off), more in one transaction."""

    def ingest(program_id: int, batch: Sequence[AnyEvent]) -> list[Outcome]:
        now = clock()
        if len(batch) == 1:
            try:
                return [events.ingest_reporting_replay(db, cache, program_id, batch[0], now=now)]
            except ServiceError as exc:
                return [exc]
        return events.ingest_batch_reporting_replays(db, cache, program_id, batch, now=now)

    return ingest


@dataclass(frozen=True, slots=True)
class _Waiting:
    event: AnyEvent
    reply: "asyncio.Future[Outcome]"


class GroupCommit:
    """Coalesces the single events of each program into shared transactions. Lives on one event loop."""

    def __init__(self, ingest: Ingest, *, max_batch: int = MAX_BATCH, linger: float = LINGER) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if linger < 0:
            raise ValueError("linger must not be negative")
        self._ingest = ingest
        self._max_batch = max_batch
        self._linger = linger
        self._queues: dict[int, deque[_Waiting]] = {}
        self._arrivals: dict[int, asyncio.Event] = {}  # set whenever an event joins the program's queue
        self._leaders: dict[int, asyncio.Task[None]] = {}
        self._in_flight = 0

    @property
    def waiting(self) -> int:
        """Events submitted and not yet answered (queued or in a transaction in flight)."""
        return sum(len(q) for q in self._queues.values()) + self._in_flight

    async def submit(self, program_id: int, event: AnyEvent) -> tuple[EventReceipt, bool]:
        """Ingests the event in the program's next transaction: its receipt and whether it replays an earlier
        delivery. Raises the event's own ServiceError, or the whole batch's error."""
        reply: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(program_id, deque()).append(_Waiting(event, reply))
        self._arrivals.setdefault(program_id, asyncio.Event()).set()
        if program_id not in self._leaders:
            self._leaders[program_id] = asyncio.create_task(self._lead(program_id))
        outcome = await reply
        if isinstance(outcome, ServiceError):
            raise outcome
        return outcome

    async def drain(self) -> None:
        """Returns once every event submitted so far has been answered (for shutdown: before the database closes)."""
        while self._leaders:
            await asyncio.gather(*self._leaders.values(), return_exceptions=True)

    async def _lead(self, program_id: int) -> None:
        queue = self._queues[program_id]
        expected = 0  # events likely to be queued before the next transaction: see the module's docstring
        try:
            while True:
                if expected > 1:
                    await self._await_followers(program_id, queue, expected)
                batch = _take(queue, self._max_batch)
                if not batch:
                    break
                self._in_flight += len(batch)
                try:
                    outcomes = await to_thread.run_sync(self._ingest, program_id, [w.event for w in batch])
                except BaseException as exc:
                    for waiting in batch:
                        if not waiting.reply.done():
                            waiting.reply.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                finally:
                    self._in_flight -= len(batch)
                for waiting, outcome in zip(batch, outcomes, strict=True):
                    if not waiting.reply.done():
                        waiting.reply.set_result(outcome)
                expected = len(batch) + len(queue)
        finally:
            del self._leaders[program_id]
            if not queue:
                del self._queues[program_id]
                del self._arrivals[program_id]
            else:  # only if the leader itself was cancelled (the event loop closing): nobody will answer these
                while queue:
                    waiting = queue.popleft()
                    if not waiting.reply.done():
                        waiting.reply.cancel()

    async def _await_followers(self, program_id: int, queue: deque[_Waiting], expected: int) -> None:
        """Returns once `expected` events are queued, or no new one came within `linger` seconds."""
        arrivals = self._arrivals[program_id]
        while len(queue) < min(expected, self._max_batch):
            arrivals.clear()
            try:
                await asyncio.wait_for(arrivals.wait(), self._linger)
            except TimeoutError:
                return


def _take(queue: deque[_Waiting], limit: int) -> list[_Waiting]:
    """The next batch, oldest first: up to `limit` events, each event id once (a repeat waits for the next batch)."""
    batch: list[_Waiting] = []
    ids: set[str] = set()
    later: list[_Waiting] = []
    while queue and len(batch) < limit:
        waiting = queue.popleft()
        if waiting.reply.done():  # its request went away (cancelled) before its turn: nothing was written for it
            continue
        if waiting.event.event_id in ids:
            later.append(waiting)
        else:
            ids.add(waiting.event.event_id)
            batch.append(waiting)
    queue.extendleft(reversed(later))
    return batch
