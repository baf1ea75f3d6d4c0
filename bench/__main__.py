"""`python -m bench` (`make bench`): every benchmark on SQLite and PostgreSQL in one run, then the table.

`--quick` runs the same code at small sizes, to check that the benchmarks still work, not to measure anything.
"""

import argparse
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bench import cdnow_import, engine, expiry, ingest
from bench.databases import BACKENDS
from bench.report import Figure, print_table

BENCHMARKS = ("engine", "ingest", "cdnow", "expiry")


@dataclass(frozen=True)
class Scale:
    cdnow_sample: bool  # the 6,919-purchase sample instead of the whole history
    expiry_lots: int
    ingest: ingest.IngestScale


FULL = Scale(
    cdnow_sample=False,
    expiry_lots=1_000_000,
    ingest=ingest.IngestScale(members=10_000, seconds=10, service_batches=10, http_batches_seconds=10),
)
QUICK = Scale(
    cdnow_sample=True,
    expiry_lots=10_000,
    ingest=ingest.IngestScale(members=200, seconds=1, service_batches=2, http_batches_seconds=1, batch=100),
)


def run(scale: Scale, *, backends: tuple[str, ...], only: tuple[str, ...], say: Callable[[str], None]) -> list[Figure]:
    figures: list[Figure] = []
    if "engine" in only:
        say("engine: replaying CDNOW in memory")
        figures += engine.run(sample=scale.cdnow_sample)
    for backend in backends:
        if "ingest" in only:
            say(f"{backend}: ingest (raw-SQL baseline, API single events, API batches, service batches)")
            figures += ingest.run(backend, scale.ingest)
        if "cdnow" in only:
            say(f"{backend}: CDNOW import")
            figures += cdnow_import.run(backend, sample=scale.cdnow_sample)
        if "expiry" in only:
            say(f"{backend}: seeding and expiring {scale.expiry_lots:,} lots")
            figures += expiry.run(backend, lots_total=scale.expiry_lots)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the benchmarks run (seconds)")
    parser.add_argument("--backend", choices=BACKENDS, action="append", help="only this database (repeatable)")
    parser.add_argument("--only", choices=BENCHMARKS, action="append", help="only this benchmark (repeatable)")
    parser.add_argument("--workers", type=int, help="API worker processes (default: 1 on SQLite, 2 on PostgreSQL)")
    args = parser.parse_args()
    scale = QUICK if args.quick else FULL
    if args.workers is not None:
        scale = replace(scale, ingest=replace(scale.ingest, workers=args.workers))
    started = time.perf_counter()

    def say(line: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {line}", flush=True)

    figures = run(scale, backends=tuple(args.backend or BACKENDS), only=tuple(args.only or BENCHMARKS), say=say)
    print_table(figures)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {load} (1, 5, 15 min) at the end; {_took(started)}"
        f"{'; QUICK sizes: not measurements' if args.quick else ''}"
    )


def _took(started: float) -> str:
    return f"the run took {time.perf_counter() - started:.0f} s"


if __name__ == "__main__":
    main()
