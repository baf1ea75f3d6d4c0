"""Engine decisions per second: every CDNOW purchase (69,659) replayed in memory under the demo program.

The engine is pure and a member's events depend only on that member, so the replay also runs split by member
across the machine's cores, which is how the simulator replays history.
"""

import multiprocessing
import os
import time
import zlib
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier

from bench.report import Figure
from bench.workload import DEMO_PROGRAM_FILE
from patron.demo import cdnow
from patron.domain.engine import CompiledProgram
from patron.domain.events import Purchase
from patron.domain.replay import Replay
from patron.services.imports import parse_order
from patron.services.programs import read_document


def cdnow_purchases(*, sample: bool = False, shard: tuple[int, int] | None = None) -> list[Purchase]:
    """CDNOW's purchases as events; with `shard` (index, count), only the members of that shard, which is what
    each worker of a split replay parses for itself."""
    rows = cdnow.order_rows(cdnow.read(cdnow.locate(sample=sample)))
    if shard is not None:
        rows = [(line, cells) for line, cells in rows if _shard_of(cells["member_id"], shard[1]) == shard[0]]
    return [parse_order(cells) for _, cells in rows]


def _shard_of(member_id: str, shards: int) -> int:
    # Not hash(): str hashes differ from one process to the next, and every worker must agree on the split.
    return zlib.crc32(member_id.encode()) % shards


def _program() -> CompiledProgram:
    return CompiledProgram.compile(read_document(DEMO_PROGRAM_FILE), 1)


def _replay(purchases: list[Purchase]) -> tuple[int, int, float]:
    program = _program()
    start = time.perf_counter()
    totals = Replay(program).run(purchases)
    return totals.events, totals.points_earned, time.perf_counter() - start


def _replay_shard(shard: tuple[int, int], sample: bool, barrier: Barrier, results: Connection) -> None:
    """One worker of the split replay: it parses and compiles before the barrier, so the clock times only the
    replay, as the 1-process figure does. It sends back (events, points, start, end) on the monotonic clock,
    which every process on the machine shares."""
    purchases = cdnow_purchases(sample=sample, shard=shard)
    program = _program()
    barrier.wait(timeout=600)  # a worker that died before it breaks the barrier rather than hanging the others
    start = time.perf_counter()
    totals = Replay(program).run(purchases)
    end = time.perf_counter()
    results.send((totals.events, totals.points_earned, start, end))
    results.close()


def _split_replay(workers: int, *, sample: bool) -> tuple[int, int, float]:
    """Events, points and seconds from the barrier's release until the last worker finished replaying."""
    context = multiprocessing.get_context()
    barrier = context.Barrier(workers)
    pipes = [context.Pipe(duplex=False) for _ in range(workers)]
    processes = [
        context.Process(target=_replay_shard, args=((index, workers), sample, barrier, sender))
        for index, (_, sender) in enumerate(pipes)
    ]
    for process in processes:
        process.start()
    for _, sender in pipes:
        sender.close()  # the workers hold theirs: a worker that dies makes recv() raise rather than wait forever
    results = [receiver.recv() for receiver, _ in pipes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a replay worker failed (exit code {process.exitcode})")
    events = sum(r[0] for r in results)
    points = sum(r[1] for r in results)
    seconds = max(r[3] for r in results) - min(r[2] for r in results)
    return events, points, seconds


def run(*, sample: bool = False) -> list[Figure]:
    purchases = cdnow_purchases(sample=sample)
    events, points, seconds = _replay(purchases)
    figures = [
        Figure(
            "engine: CDNOW replay, 1 process",
            "memory",
            events / seconds,
            "decisions/s",
            target=50_000,
            note=f"{events:,} purchases, {points:,} points",
        )
    ]
    workers = os.cpu_count() or 1
    if workers > 1:
        split_events, split_points, seconds = _split_replay(workers, sample=sample)
        assert split_events == events, "a split replay must decide every purchase once"
        assert split_points == points, "a split replay must earn exactly what a single one does"
        figures.append(
            Figure(
                f"engine: CDNOW replay, {workers} processes",
                "memory",
                events / seconds,
                "decisions/s",
                target=50_000,
                note="split by member; each worker parses its own shard before the clock starts",
            )
        )
    return figures
