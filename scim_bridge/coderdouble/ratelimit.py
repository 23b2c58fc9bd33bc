"""Coder's API rate limit (contract §1.4): `httprate.Limit(N, 1m)` keyed by user (or IP) and
endpoint path, with httprate's sliding-window counter."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from .clock import Clock


def go_duration(seconds: float) -> str:
    """Go's `time.Duration.String()` for whole seconds: 60 -> "1m0s", 3600 -> "1h0m0s"."""
    total = int(seconds)
    if total == 0 and seconds > 0:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _go_round(value: float) -> int:
    """Go's `math.Round` for non-negative values: halves round away from zero."""
    return math.floor(value + 0.5)


class SlidingWindowLimiter:
    """httprate's algorithm: counts in the current and the previous window; the rate is
    `previous * (window - elapsed) / window + current`, rounded; a request is refused when
    `rate + 1 > limit`. Refused requests are not counted. `limit() <= 0` disables."""

    def __init__(self, limit: Callable[[], int], window: Callable[[], float], clock: Clock) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, dict[int, int]] = {}

    def allow(self, key: str) -> bool:
        limit = self._limit()
        if limit <= 0:
            return True
        window = self._window()
        now = self._clock.time()
        current = math.floor(now / window)
        elapsed = now - current * window
        with self._lock:
            counts = self._counts.setdefault(key, {})
            for start in [s for s in counts if s < current - 1]:
                del counts[start]
            rate = counts.get(current - 1, 0) * (window - elapsed) / window + counts.get(current, 0)
            if _go_round(rate) + 1 > limit:
                return False
            counts[current] = counts.get(current, 0) + 1
            return True

    def remaining(self, key: str) -> int:
        limit = self._limit()
        window = self._window()
        now = self._clock.time()
        current = math.floor(now / window)
        elapsed = now - current * window
        with self._lock:
            counts = self._counts.get(key, {})
            rate = counts.get(current - 1, 0) * (window - elapsed) / window + counts.get(current, 0)
        return max(0, limit - _go_round(rate))

    def reset_at(self) -> int:
        window = self._window()
        return int((math.floor(self._clock.time() / window) + 1) * window)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
