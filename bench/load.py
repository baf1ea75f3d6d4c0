"""A closed-loop HTTP load generator: N clients, each on its own keep-alive connection, sending one request as
soon as the previous reply is in, for a fixed time.

Written on asyncio (uvloop) with raw HTTP/1.1 rather than an HTTP library: a request costs the client tens of
microseconds, so on this 2-core machine the client takes as little CPU from the server as wrk would, and the
latencies measured are the server's, not the client's. Its own CPU use is reported beside the figures.
"""

import asyncio
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

import uvloop

Body = Callable[[int], bytes]  # the n-th request's JSON body (unique event ids)


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    latencies: list[float]  # seconds, one per request measured
    statuses: dict[int, int]
    client_cpu: float  # CPU seconds the load generator used while measuring

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(
    host: str,
    port: int,
    path: str,
    token: str,
    body: Body,
    *,
    clients: int,
    seconds: float,
    warmup: float = 1.0,
) -> LoadResult:
    """Runs `clients` connections for `warmup` + `seconds`; only what completes after the warm-up counts.

    The load generator's own garbage collector is kept out of the measurement: it shares a process with whatever
    the benchmark built before (a database handle, the workload), and a full collection of that paused every
    client for 25-60 ms now and then, which came out as the server's latency. What exists now is frozen, and
    collection is off while the clients run (they make no reference cycles worth collecting).
    """
    gc.collect()
    gc.freeze()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return uvloop.run(_run(host, port, path, token, body, clients, seconds, warmup))
    finally:
        if was_enabled:
            gc.enable()
        gc.unfreeze()


async def _run(
    host: str, port: int, path: str, token: str, body: Body, clients: int, seconds: float, warmup: float
) -> LoadResult:
    sequence = iter(range(1 << 62))
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cpu_at_start = [0.0]

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n".encode()
        try:
            while True:
                payload = body(next(sequence))
                request = head + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                writer.write(request + payload)
                status = await _read_reply(reader)
                done = time.perf_counter()
                if sent >= measure_from:
                    latencies.append(done - sent)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    async def mark_cpu() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        cpu_at_start[0] = time.process_time()

    marker = asyncio.create_task(mark_cpu())
    await asyncio.gather(*(client() for _ in range(clients)))
    await marker
    cpu = time.process_time() - cpu_at_start[0]
    # The last requests end after stop_at: count them over the time they really took.
    elapsed = max(stop_at, time.perf_counter()) - measure_from
    return LoadResult(len(latencies), elapsed, latencies, statuses, cpu)


async def _read_reply(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status
