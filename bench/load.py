"""Load generators: an open-loop paced caller, and a cheap keep-alive HTTP/1.1 flood.

`paced` starts call i at t0 + i/rate whatever earlier calls are doing (open loop), so a slow
answer shows up as latency rather than as a lower offered rate; how late calls started is
recorded too, so an overloaded load generator cannot hide. `flood` sends pre-encoded requests
over a few raw asyncio connections, for counts (100,000) where client cost matters.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass
class Call:
    index: int
    lateness: float  # seconds between the planned start and the real one
    seconds: float  # duration of the call
    value: Any = None
    error: BaseException | None = None


def paced(
    rate: float,
    count: int,
    call: Callable[[int], Any],
    workers: int = 16,
    stop: threading.Event | None = None,
    timeout: float = 120.0,
) -> list[Call]:
    """Call `call(i)` for i in range(count), starting one every 1/rate seconds."""
    results: list[Call] = []
    started = time.perf_counter()

    def run(index: int, planned: float) -> Call:
        begin = time.perf_counter()
        try:
            value = call(index)
            return Call(index, begin - planned, time.perf_counter() - begin, value)
        except Exception as exc:
            return Call(index, begin - planned, time.perf_counter() - begin, error=exc)

    futures: list[Future[Call]] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="paced") as pool:
        for index in range(count):
            planned = started + index / rate
            delay = planned - time.perf_counter()
            if stop is not None and stop.wait(max(delay, 0)):
                break
            if stop is None and delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(run, index, planned))
        for future in futures:
            results.append(future.result(timeout=timeout))
    return results


# -- the raw keep-alive flood ------------------------------------------------------------------


@dataclass
class FloodResult:
    sent: int
    statuses: dict[int, int]
    seconds: float
    errors: int

    @property
    def per_second(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Status code, and whether the server will close the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    closing = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection" and value.strip().lower() == b"close":
            closing = True
    if length:
        await reader.readexactly(length)
    return status, closing


async def _flood(
    host: str, port: int, count: int, request: Callable[[int], bytes], connections: int
) -> FloodResult:
    next_index = 0
    statuses: dict[int, int] = {}
    errors = 0

    async def worker() -> None:
        nonlocal next_index, errors
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while next_index < count:
                index = next_index
                next_index += 1
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                try:
                    writer.write(request(index))
                    status, closing = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    writer.close()
                    reader = writer = None
                    continue
                statuses[status] = statuses.get(status, 0) + 1
                if closing:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return FloodResult(sum(statuses.values()) + errors, statuses, elapsed, errors)


def flood(
    host: str, port: int, count: int, request: Callable[[int], bytes], connections: int = 8
) -> FloodResult:
    """Send `count` requests (`request(i)` gives request i's bytes) as fast as answered."""
    return asyncio.run(_flood(host, port, count, request, connections))


def raw_request(path: str, headers: dict[str, str], body: bytes, host: str) -> bytes:
    """An HTTP/1.1 request, encoded, with Content-Length and keep-alive."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
