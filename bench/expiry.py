"""Expiry of 1,000,000 lots (100,000 members x 10 lots), every one of them due, by `maintenance.expire`."""

import time
from datetime import UTC, datetime

from bench.databases import fresh_database
from bench.report import Figure
from bench.seed import seed_lots
from patron.services import maintenance

LOTS_PER_MEMBER = 10


def run(backend: str, *, lots_total: int = 1_000_000) -> list[Figure]:
    with fresh_database(backend, "expiry") as db:
        seed_lots(db, members_count=lots_total // LOTS_PER_MEMBER, lots_per_member=LOTS_PER_MEMBER)
        start = time.perf_counter()
        report = maintenance.expire(db, now=datetime(2026, 6, 1, tzinfo=UTC))
        seconds = time.perf_counter() - start
        assert report.lots == lots_total, report
        again = maintenance.expire(db, now=datetime(2026, 6, 1, tzinfo=UTC))
        assert again.lots == 0, again
    return [
        Figure(
            f"expire {lots_total:,} lots",
            backend,
            seconds,
            "s",
            target=10.0 if lots_total >= 1_000_000 else None,
            lower_is_better=True,
            note=f"{report.members:,} members, {report.transactions} journal transaction(s)",
        )
    ]
