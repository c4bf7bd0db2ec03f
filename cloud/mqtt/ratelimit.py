"""Per-node token buckets: a node may send `rate` messages a second, in bursts of up to `rate`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

MAX_TRACKED: Final = 100_000


class RateLimiter:
    """Token bucket per key; `allow(key)` spends one token or says no."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        """Whether `key` may send one more message now (and count it if so)."""
        if self._rate <= 0:
            return True
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > MAX_TRACKED:
            self._forget_full(now)
        return allowed

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: drop those to bound memory.
        self._buckets = {
            key: (tokens, last)
            for key, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self._rate < self._burst
        }
