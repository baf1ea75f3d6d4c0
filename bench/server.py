"""The API as a user runs it: uvicorn in a process of its own, with workers, on the benchmark's database."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.error import URLError

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    database_url: str, *, workers: int, pool_size: int = 20, app: str = "patron.api.app:create_app"
) -> Iterator[int]:
    """Starts the API (uvloop, httptools, no access log: how it should be deployed) and yields its port.

    `app` names another application factory to serve the same way (bench.floor's)."""
    port = free_port()
    env = {**os.environ, "PATRON_DATABASE_URL": database_url, "PATRON_POOL_SIZE": str(pool_size)}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        app,
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env)
    try:
        _wait_until_up(port, process, workers)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(port: int, process: subprocess.Popen[bytes], workers: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    answered = 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API server exited with {process.returncode} before it answered")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2):
                answered += 1
        except (URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
            continue
        # Every worker starts on its own: a few more answers make it likely that all of them are serving.
        if answered >= 4 * workers:
            time.sleep(0.5)
            return
    raise RuntimeError(f"the API server did not answer on port {port} within {timeout:.0f} s")
