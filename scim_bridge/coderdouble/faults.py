"""Test instruments: a counter of calls per method and path template, and a fault injector
that fails a seeded share of write calls with 500 and adds latency."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
UNMATCHED = "<no route>"


def is_write(method: str) -> bool:
    return method.upper() not in READ_METHODS


class CallCounter:
    """How many calls reached the double, per (METHOD, path template), e.g.
    `("PATCH", "/api/v2/groups/{group}")`. Every call is counted, whatever its answer."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, method: str, template: str) -> None:
        with self._lock:
            self._counts[(method.upper(), template)] += 1

    def count(self, method: str | None = None, template: str | None = None) -> int:
        with self._lock:
            return sum(
                n
                for (m, t), n in self._counts.items()
                if (method is None or m == method.upper()) and (template is None or t == template)
            )

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def writes(self) -> dict[tuple[str, str], int]:
        """Calls with a write method (POST, PUT, PATCH, DELETE), per template."""
        return {key: n for key, n in self.snapshot().items() if is_write(key[0])}

    def write_count(self) -> int:
        return sum(self.writes().values())

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


Phase = str  # "before" (not applied) or "after" (applied, then answered 500)


@dataclass(frozen=True)
class InjectedFault:
    method: str
    template: str
    phase: Phase


class FaultInjector:
    """Fails a share of write calls with 500 `An internal server error occurred.`:
    `failure_rate` before the write is applied, `failure_after_apply_rate` after it was
    applied (the caller cannot tell whether it happened: retries must be idempotent).
    `latency` (+ uniform `jitter`) seconds are added to every call. Seeded: the same seed
    and the same sequence of calls give the same faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failure_rate = 0.0
        self.failure_after_apply_rate = 0.0
        self.latency = 0.0
        self.jitter = 0.0
        self.predicate: Callable[[str, str], bool] | None = None
        self._random = random.Random(0)
        self.injected: list[InjectedFault] = []

    def configure(
        self,
        *,
        failure_rate: float = 0.0,
        failure_after_apply_rate: float = 0.0,
        latency: float = 0.0,
        jitter: float = 0.0,
        seed: int = 0,
        predicate: Callable[[str, str], bool] | None = None,
    ) -> None:
        """Replace the plan. `predicate(method, template)` limits faults to some calls."""
        if not 0.0 <= failure_rate + failure_after_apply_rate <= 1.0:
            raise ValueError("failure rates must be within [0, 1] together")
        with self._lock:
            self.failure_rate = failure_rate
            self.failure_after_apply_rate = failure_after_apply_rate
            self.latency = latency
            self.jitter = jitter
            self.predicate = predicate
            self._random = random.Random(seed)
            self.injected = []

    def clear(self) -> None:
        self.configure()

    def delay(self) -> float:
        with self._lock:
            if self.latency <= 0 and self.jitter <= 0:
                return 0.0
            return self.latency + (self._random.uniform(0, self.jitter) if self.jitter else 0.0)

    def decide(self, method: str, template: str) -> Phase | None:
        """For a write call: None (no fault), "before" or "after"."""
        if not is_write(method):
            return None
        with self._lock:
            if self.failure_rate <= 0 and self.failure_after_apply_rate <= 0:
                return None
            if self.predicate is not None and not self.predicate(method, template):
                return None
            draw = self._random.random()
            phase: Phase | None = None
            if draw < self.failure_rate:
                phase = "before"
            elif draw < self.failure_rate + self.failure_after_apply_rate:
                phase = "after"
            if phase is not None:
                self.injected.append(InjectedFault(method.upper(), template, phase))
            return phase
