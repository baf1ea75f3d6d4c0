"""`make bench` must keep working: the whole benchmark runs at its --quick sizes, as `python -m bench` does.

Nothing here looks at the figures themselves (a test must not depend on how fast a shared machine is): only that
every benchmark ran to the end on every backend and printed its row.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, POSTGRES_URL

ROOT = Path(__file__).parents[1]
ROWS = (
    "raw-SQL earn",
    "API floor: FastAPI",
    "API ingest, ",
    "API ingest p99",
    "API ingest ÷ raw-SQL",
    "API batch ingest",
    "batch ingest, services",
    "CDNOW import",
    "expire 10,000 lots",
)


@pytest.mark.slow
def test_the_quick_benchmark_runs_every_benchmark_on_every_backend() -> None:
    backends = [arg for backend in BACKENDS for arg in ("--backend", backend)]
    env = {**os.environ, "PATRON_BENCH_POSTGRES_URL": POSTGRES_URL, "COLUMNS": "250"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *backends],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("│")]
    assert any("engine: CDNOW replay" in line and "memory" in line for line in table), done.stdout
    for backend in BACKENDS:
        for row in ROWS:
            assert any(row in line and f" {backend} " in line for line in table), f"{row} on {backend}:\n{done.stdout}"
