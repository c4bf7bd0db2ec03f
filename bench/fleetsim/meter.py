"""Counting reports inside a measurement window, and summarising latency samples.

A report belongs to a window by the time it was sent; what was sent in the window and never
answered (by the window's end plus a grace period) is lost. Throughput counts answers by the time
they arrived, so a backlog draining after the window does not inflate it, and counts acceptances
only: a rejection (a 429 from the rate limit, say) costs the cloud next to nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any


class Meter:
    """Reports of one window: sent, skipped, answered (with latency), rejected by code."""

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = end
        self.sent = 0
        self.skipped = 0
        self.accepted = 0
        self.arrived = 0
        self.rejected: Counter[int] = Counter()
        self.latencies_ms: list[float] = []

    def inside(self, moment: float) -> bool:
        """Whether `moment` (monotonic seconds) falls in the window."""
        return self.start <= moment < self.end

    def on_sent(self, moment: float) -> None:
        """A report left the node."""
        if self.inside(moment):
            self.sent += 1

    def on_skipped(self, moment: float) -> None:
        """A report fell due while the last one was unanswered (an agent keeps one in flight)."""
        if self.inside(moment):
            self.skipped += 1

    def on_answer(self, sent_at: float, now: float, code: int | None) -> None:
        """An `accepted` (code None) or `rejected` answer arrived for a report sent at `sent_at`."""
        if code is None and self.inside(now):
            self.arrived += 1
        if not self.inside(sent_at):
            return
        if code is None:
            self.accepted += 1
            self.latencies_ms.append(round((now - sent_at) * 1000, 2))
        else:
            self.rejected[code] += 1

    def result(self) -> dict[str, Any]:
        """JSON-ready counts and raw latencies, merged across workers by `merge`."""
        return {
            "window_s": self.end - self.start,
            "sent": self.sent,
            "skipped": self.skipped,
            "accepted": self.accepted,
            "arrived": self.arrived,
            "rejected": {str(code): count for code, count in self.rejected.items()},
            "latencies_ms": self.latencies_ms,
        }


def merge(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One window's results from every worker, added up; latencies summarised."""
    rejected: Counter[str] = Counter()
    samples: list[float] = []
    for part in parts:
        rejected.update(part["rejected"])
        samples.extend(part["latencies_ms"])
    window = max(part["window_s"] for part in parts)
    sent = sum(part["sent"] for part in parts)
    accepted = sum(part["accepted"] for part in parts)
    return {
        "window_s": round(window, 3),
        "sent": sent,
        "skipped": sum(part["skipped"] for part in parts),
        "accepted": accepted,
        "rejected": dict(rejected),
        "lost": sent - accepted - sum(rejected.values()),
        "achieved_per_s": round(sum(part["arrived"] for part in parts) / window, 1),
        "latency_ms": summary(samples),
    }


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted samples."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(len(ordered), rank) - 1]


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """Count, p50/p90/p99/max and the 101 percentiles 0..100 (enough to draw a CDF)."""
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)
    return {
        "count": len(ordered),
        "p50": percentile(ordered, 0.50),
        "p90": percentile(ordered, 0.90),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1],
        "mean": round(sum(ordered) / len(ordered), 2),
        "percentiles": [ordered[0]] + [percentile(ordered, step / 100) for step in range(1, 101)],
    }
