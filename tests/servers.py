"""Starting a Patron process as a user would, and waiting for it to answer."""

import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, *, seconds: float, process: subprocess.Popen[str]) -> bytes:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return bytes(reply.read())
        except OSError:
            if process.poll() is not None:
                raise AssertionError(f"the server exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
