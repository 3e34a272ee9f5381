"""An open-loop HTTP/1.1 load generator for one loopback server.

Requests are *scheduled* at a fixed rate (request ``i`` is due at ``t0 + i / rate``) whatever
the server does, and each one's latency is measured from its due time, not from when it was
written to a socket: when the server falls behind, the waiting in the queue counts, as it
does for real clients (a closed-loop generator would instead slow down with the server and
hide the queueing; see "coordinated omission"). Due requests are sent over a fixed set of
keep-alive connections, one request in flight per connection, with raw asyncio streams (no
client library), so that the generator itself costs little CPU next to the server.

The run is bounded: ``rate × seconds`` requests, then at most ``drain_s`` to collect the
answers still outstanding. Requests that have no answer by then count as unfinished and
enter the percentiles with the time they had waited so far (a lower bound). Every answer is
passed to ``check``; the first failure is reported. Only ``127.0.0.1`` is ever contacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
# (request index, HTTP status, body) -> None when the answer is right, else what is wrong.
Check = Callable[[int, int, bytes], str | None]


@dataclass(frozen=True)
class LoadResult:
    """One open-loop run; latencies in milliseconds from each request's due time."""

    rate_target: float
    scheduled: int
    completed: int
    unfinished: int
    failures: int
    first_failure: str | None
    p50_ms: float
    p99_ms: float
    max_ms: float
    rate_achieved: float
    client_cpu_s: float
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.failures == 0 and self.unfinished == 0


def request_bytes(path: str, port: int, headers: dict[str, str] | None = None) -> bytes:
    """A keep-alive ``GET`` as it goes on the wire."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}", "Accept: application/json"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server keeps the connection open (Content-Length only)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, header_block = head.partition(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length: int | None = None
    keep_alive = True
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise ValueError("chunked answers are not supported by this generator")
        elif name == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
    body = await reader.readexactly(length) if length else b""
    return status, body, keep_alive


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def open_loop(
    port: int,
    requests: Sequence[bytes],
    check: Check,
    *,
    rate: float,
    seconds: float,
    connections: int = 32,
    drain_s: float = 5.0,
) -> LoadResult:
    """Send ``rate × seconds`` requests (cycling through ``requests``) on schedule; measure."""
    if rate <= 0 or seconds <= 0 or not requests:
        raise ValueError("rate, seconds and requests must be positive / non-empty")
    total = max(1, round(rate * seconds))
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    done_at: list[float | None] = [None] * total
    failures: list[str] = []

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(LOOPBACK, port)

    async def worker() -> None:
        reader, writer = await connect()
        try:
            while (index := await queue.get()) is not None:
                try:
                    writer.write(requests[index % len(requests)])
                    status, body, keep_alive = await read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                    failures.append(f"request {index}: {type(error).__name__}: {error}")
                    writer.close()
                    reader, writer = await connect()
                    continue
                done_at[index] = loop.time()
                problem = check(index, status, body)
                if problem is not None:
                    failures.append(f"request {index}: {problem}")
                if not keep_alive:
                    writer.close()
                    reader, writer = await connect()
        finally:
            writer.close()

    async def schedule(start: float) -> None:
        for index in range(total):
            due = start + index / rate
            pause = due - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            queue.put_nowait(index)
        for _ in range(connections):
            queue.put_nowait(None)

    cpu_before = time.process_time()
    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    await asyncio.sleep(0.05)  # let the connections open before the clock starts
    start = loop.time() + 0.01
    scheduler = asyncio.create_task(schedule(start))
    try:
        async with asyncio.timeout(seconds + drain_s + 0.1):
            await asyncio.gather(scheduler, *workers)
    except TimeoutError:
        pass
    finally:
        for task in (scheduler, *workers):
            task.cancel()
        for task in (scheduler, *workers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    end = loop.time()
    cpu = time.process_time() - cpu_before

    latencies: list[float] = []
    completed = 0
    last_done = start
    for index in range(total):
        due = start + index / rate
        finished = done_at[index]
        if finished is not None:
            completed += 1
            last_done = max(last_done, finished)
            latencies.append((finished - due) * 1000)
        else:  # never answered (or never sent): it had waited at least until the end
            latencies.append((end - due) * 1000)
    latencies.sort()
    window = max(last_done - start, seconds)
    return LoadResult(
        rate_target=rate,
        scheduled=total,
        completed=completed,
        unfinished=total - completed,
        failures=len(failures),
        first_failure=failures[0] if failures else None,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        max_ms=latencies[-1],
        rate_achieved=completed / window,
        client_cpu_s=cpu,
        elapsed_s=end - start,
    )
