"""Engine decisions per second: every CDNOW purchase (69,659) replayed in memory under the demo program.

The engine is pure and a member's events depend only on that member, so the replay also runs split by member
across the machine's cores, which is how the simulator replays history.
"""

import os
import time
from concurrent.futures import ProcessPoolExecutor

from bench.report import Figure
from bench.workload import DEMO_PROGRAM_FILE
from patron.demo import cdnow
from patron.domain.engine import CompiledProgram
from patron.domain.events import Purchase
from patron.domain.replay import Replay
from patron.services.imports import parse_order
from patron.services.programs import read_document


def cdnow_purchases(*, sample: bool = False) -> list[Purchase]:
    return [parse_order(cells) for _, cells in cdnow.order_rows(cdnow.read(cdnow.locate(sample=sample)))]


def _replay(purchases: list[Purchase]) -> tuple[int, int, float]:
    program = CompiledProgram.compile(read_document(DEMO_PROGRAM_FILE), 1)
    start = time.perf_counter()
    totals = Replay(program).run(purchases)
    return totals.events, totals.points_earned, time.perf_counter() - start


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
        shards: list[list[Purchase]] = [[] for _ in range(workers)]
        for p in purchases:
            shards[hash(p.member_id) % workers].append(p)
        with ProcessPoolExecutor(workers) as pool:
            pool.submit(int).result()  # start the processes before the clock does
            start = time.perf_counter()
            results = list(pool.map(_replay, shards))
            seconds = time.perf_counter() - start
        total_points = sum(r[1] for r in results)
        assert total_points == points, "a split replay must earn exactly what a single one does"
        figures.append(
            Figure(
                f"engine: CDNOW replay, {workers} processes",
                "memory",
                events / seconds,
                "decisions/s",
                target=50_000,
                note="split by member",
            )
        )
    return figures
