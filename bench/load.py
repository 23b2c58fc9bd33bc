"""The load generator: a few concurrent httpx workers, a bounded number of requests and time."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Call:
    """One HTTP request of an operation, and the status it must answer."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    body: dict[str, Any] | None = None
    expect: tuple[int, ...] = (200,)
    check: Callable[[httpx.Response], str | None] | None = None  # an error message, or None


@dataclass
class Measurement:
    """Latencies of one operation against one server."""

    operation: str
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: int = 0
    first_error: str | None = None
    wall: float = 0.0  # seconds from the first request to the last response
    workers: int = 1

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else math.nan

    @property
    def p99_ms(self) -> float:
        """The nearest-rank 99th percentile (the maximum below 100 samples)."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[max(math.ceil(0.99 * len(ordered)) - 1, 0)] * 1000

    @property
    def throughput(self) -> float:
        """Completed requests per second, all workers together."""
        return self.count / self.wall if self.wall > 0 else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "requests": self.count,
            "errors": self.errors,
            "first_error": self.first_error,
            "median_ms": round(self.median_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "throughput_rps": round(self.throughput, 2),
            "wall_s": round(self.wall, 3),
            "workers": self.workers,
        }


def _problem(call: Call, response: httpx.Response) -> str | None:
    if response.status_code not in call.expect:
        return f"{call.method} {call.path}: {response.status_code} {response.text[:300]}"
    return call.check(response) if call.check is not None else None


async def _send(client: httpx.AsyncClient, call: Call) -> httpx.Response:
    return await client.request(call.method, call.path, params=call.params, json=call.body)


async def measure(
    client: httpx.AsyncClient,
    operation: str,
    make_call: Callable[[int], Call],
    *,
    workers: int,
    requests: int,
    seconds: float,
    warmup: int,
) -> Measurement:
    """Send ``warmup`` checked calls one by one (not measured), then up to ``requests`` calls
    from ``workers`` concurrent workers, for at most ``seconds``; call ``i`` is
    ``make_call(i)``. Each latency is from sending the request to reading the whole body."""
    for i in range(warmup):
        call = make_call(-1 - i)
        problem = _problem(call, await _send(client, call))
        if problem is not None:
            raise RuntimeError(f"{operation}: warm-up failed: {problem}")
    result = Measurement(operation, workers=workers)
    issued = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal issued
        while issued < requests and time.perf_counter() < deadline:
            call = make_call(issued)
            issued += 1
            begin = time.perf_counter()
            response = await _send(client, call)
            result.latencies.append(time.perf_counter() - begin)
            problem = _problem(call, response)
            if problem is not None:
                result.errors += 1
                result.first_error = result.first_error or problem

    await asyncio.gather(*(worker() for _ in range(workers)))
    result.wall = time.perf_counter() - started
    return result
