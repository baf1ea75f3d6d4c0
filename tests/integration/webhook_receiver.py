"""A real HTTP endpoint on loopback that records what it receives and answers as a test scripts it."""

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: str

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]


# (the request, how many requests came before it) -> (HTTP status, seconds to wait before answering)
Script = Callable[[Received, int], tuple[int, float]]


class Receiver:
    def __init__(self, script: Script | None = None) -> None:
        self.received: list[Received] = []
        self.answered: list[tuple[Received, int]] = []
        self.script: Script = script or (lambda _request, _n: (200, 0.0))
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                request = Received({k.lower(): v for k, v in self.headers.items()}, body)
                with receiver._lock:
                    n = len(receiver.received)
                    receiver.received.append(request)
                status, delay = receiver.script(request, n)
                time.sleep(delay)
                # Recorded before the reply goes out: the sender may act on the reply (and the test look here)
                # before this thread runs again.
                with receiver._lock:
                    receiver.answered.append((request, status))
                try:
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender gave up waiting (a timeout test)
                    return

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def delivered(self) -> list[Received]:
        """Requests answered with a 2xx, in the order they were answered (a reply the sender stopped waiting
        for counts too: the timeout test reads `received` instead)."""
        with self._lock:
            return [r for r, status in self.answered if 200 <= status < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """A loopback address where nothing listens: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"
