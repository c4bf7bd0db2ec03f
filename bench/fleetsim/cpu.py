"""Where the CPU went during a phase: seconds per group of processes, as cores used.

The machine runs the broker, PostgreSQL, every cloud replica and the simulator at once, so a
latency figure means little without knowing who was busy. A group's time is what its live
processes used plus what their reaped children used (`children_user/system`): PostgreSQL's
autovacuum workers and ended backends are short-lived children of the postmaster, and would
otherwise vanish between two samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil

Finder = Callable[[], Iterable[int]]


@dataclass(frozen=True)
class Sample:
    """CPU seconds per group (each process's own and its reaped children's), machine busy time."""

    at: float
    seconds: dict[str, float]
    machine_busy: float


class CpuAccount:
    """Named groups of processes to sample."""

    def __init__(self) -> None:
        self._groups: dict[str, Finder] = {}

    def add(self, group: str, finder: Finder) -> None:
        """Count the processes `finder` names (called at every sample) under `group`."""
        self._groups[group] = finder

    def remove(self, group: str) -> None:
        """Stop counting a group (its processes ended)."""
        self._groups.pop(group, None)

    def sample(self) -> Sample:
        """Read every group's counters now."""
        seconds: dict[str, float] = {}
        for group, finder in self._groups.items():
            total = 0.0
            for pid in finder():
                try:
                    times = psutil.Process(pid).cpu_times()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += times.user + times.system + times.children_user + times.children_system
            seconds[group] = total
        machine = psutil.cpu_times()
        # Busy = working for someone: not idle, not waiting for I/O, not taken by the hypervisor.
        busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
        return Sample(time.monotonic(), seconds, busy)


def cores(before: Sample, after: Sample) -> dict[str, float]:
    """Average cores used per group between two samples, plus `machine` and `other`."""
    wall = max(after.at - before.at, 1e-9)
    used = {
        group: max(0.0, value - before.seconds.get(group, 0.0))
        for group, value in after.seconds.items()
    }
    result = {group: round(value / wall, 3) for group, value in sorted(used.items())}
    machine = (after.machine_busy - before.machine_busy) / wall
    result["machine"] = round(machine, 3)
    # Whatever else ran: the kernel's own threads, and other people's work on a shared machine.
    result["other"] = round(max(0.0, machine - sum(used.values()) / wall), 3)
    return result


def fixed(pid: int) -> Finder:
    """A finder for one process that lives as long as the run."""
    return lambda: [pid]


def postmaster_and_children(port: int) -> Finder:
    """A finder for the PostgreSQL server listening on `port` and all its backends."""
    found: list[psutil.Process] = []

    def finder() -> list[int]:
        if not found:
            for process in psutil.process_iter(["name", "cmdline"]):
                cmdline = process.info["cmdline"] or []
                if "-D" in cmdline and f"-p {port}" in " ".join(cmdline):
                    found.append(process)
                    break
        if not found:
            return []
        try:
            return [found[0].pid, *(child.pid for child in found[0].children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    return finder
