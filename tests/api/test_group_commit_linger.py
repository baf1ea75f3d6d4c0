"""Group commit waits for the next events of the clients it just answered, so that they share one transaction.

Closed-loop clients (each sends its next event when it has its reply) are answered together and send again
together, a little after the leader could already take the first few. Without waiting, the clients split into a
big transaction and a small one for good; with it, they go on sharing one. The ingest here only records the
batches, so the test is about the coalescing alone.
"""

import asyncio
import threading
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import pytest

from patron.api.group_commit import GroupCommit, Outcome
from patron.domain.engine import AnyEvent
from patron.domain.events import Purchase
from patron.services.views import Balance, EventReceipt
from tests.conftest import T0

CLIENTS = 6
ROUNDS = 12


def receipt(event: AnyEvent) -> EventReceipt:
    return EventReceipt(
        event_id=event.event_id,
        member_id=event.member_id,
        type=event.type,
        program_version=1,
        points=0,
        pending_points=0,
        transaction_id=None,
        rules=[],
        notes=[],
        balance=Balance(available=0, pending=0, owed=0),
    )


class RecordingIngest:
    """Answers every event; each batch takes a while, as a transaction does, and its size is recorded."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, program_id: int, batch: Sequence[AnyEvent]) -> list[Outcome]:
        with self._lock:
            self.sizes.append(len(batch))
        threading.Event().wait(0.005)
        return [(receipt(e), False) for e in batch]


def purchase(client: int, n: int, at: datetime = T0) -> Purchase:
    return Purchase(
        event_id=f"c{client}-{n}", member_id=f"m{client}", order_id=f"c{client}-o{n}", occurred_at=at, total=Decimal(1)
    )


async def closed_loop(group: GroupCommit) -> None:
    async def client(number: int) -> None:
        for n in range(ROUNDS):
            await group.submit(1, purchase(number, n))
            # What a client and the server do between a reply and the next request: nothing reaches the queue
            # at once.
            for _ in range(number + 1):
                await asyncio.sleep(0)

    await asyncio.gather(*(client(c) for c in range(CLIENTS)))


def run_closed_loop(linger: float) -> list[int]:
    ingest = RecordingIngest()
    asyncio.run(closed_loop(GroupCommit(ingest, linger=linger)))
    assert sum(ingest.sizes) == CLIENTS * ROUNDS, "every event was ingested once"
    return ingest.sizes


def test_clients_answered_together_share_their_next_transaction() -> None:
    assert run_closed_loop(linger=0.05) == [CLIENTS] * ROUNDS


def test_without_waiting_the_same_clients_split_into_smaller_transactions() -> None:
    sizes = run_closed_loop(linger=0)
    assert min(sizes) < CLIENTS, "without waiting, every transaction still held every client"


def test_linger_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="linger"):
        GroupCommit(RecordingIngest(), linger=-1)
