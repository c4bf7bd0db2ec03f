"""CPU and memory of app processes, as Kubernetes quantities, sampled cheaply.

One sample walks each instance's process and its descendants (an app's workers count towards
its usage). `psutil.Process` objects are kept between samples because CPU percent is measured
between two calls on the same object; the first sample of a process therefore reads 0 CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import psutil

from agent.contracts.report import Usage, cpu_quantity, memory_quantity


class UsageSampler:
    """Measures process trees; keeps psutil objects alive between samples for CPU deltas."""

    def __init__(self) -> None:
        self._known: dict[int, psutil.Process] = {}

    def sample(self, pids: Iterable[int]) -> dict[int, Usage]:
        """Usage of each pid's process tree. Blocking (reads /proc): call from a thread."""
        seen: dict[int, psutil.Process] = {}
        result: dict[int, Usage] = {}
        for pid in pids:
            cpu = 0.0
            rss = 0
            for found in self._tree(pid):
                cached = self._known.get(found.pid)
                proc = cached if cached is not None and _same(cached, found) else found
                seen[proc.pid] = proc
                with contextlib.suppress(psutil.Error):
                    cpu += proc.cpu_percent(interval=None)
                    rss += proc.memory_info().rss
            result[pid] = Usage(cpu=cpu_quantity(cpu), memory=memory_quantity(rss))
        self._known = seen
        return result

    @staticmethod
    def _tree(pid: int) -> list[psutil.Process]:
        try:
            leader = psutil.Process(pid)
            return [leader, *leader.children(recursive=True)]
        except psutil.Error:
            return []


def _same(a: psutil.Process, b: psutil.Process) -> bool:
    try:
        return a.create_time() == b.create_time()
    except psutil.Error:
        return False
