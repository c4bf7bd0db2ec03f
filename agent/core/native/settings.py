"""Every knob of the native backend in one frozen value, so modules receive settings, not kwargs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Tuning:
    """Timers of supervision. The defaults suit a device; tests shrink them to keep runs short.

    backoff_base, backoff_cap: a crashed instance restarts after `base * 2**(streak-1)` seconds,
        at most `cap` (Kubernetes doubles from 10 s to 5 min; we start at 1 s because an edge
        app that exits once is usually fine right away).
    backoff_reset: an instance that ran this long before it exited starts a new streak (the
        Kubernetes rule: 10 minutes of good running forgives earlier crashes).
    crashloop_threshold: this many quick exits in a row make an always-restarted instance read
        `Failed` while it waits to restart (below it reads `Pending`).
    rollout_timeout: during a version change, how long to wait for a new instance to become
        ready before its old counterpart is stopped anyway.
    log_check_interval: how often log files are checked for rotation (and sampled for
        `since_seconds`).
    usage_interval: the oldest CPU/memory sample `observe` may report.
    poll_interval: liveness polling of processes when pidfd is unavailable (old kernels).
    """

    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    backoff_reset: float = 600.0
    crashloop_threshold: int = 3
    rollout_timeout: float = 60.0
    log_check_interval: float = 5.0
    usage_interval: float = 5.0
    poll_interval: float = 1.0


@dataclass(frozen=True)
class NativeSettings:
    """Where the backend keeps things and how it treats processes (see docs/native-backend.md).

    run_dir: instance working directories, `<run>/<ns>/<app>/<version>/<service>/<i>/`.
    log_dir: app logs, `<log>/<ns>/<app>/<service>-<i>.log` (+ `.1` … rotated copies).
    state_dir: the backend's bookkeeping (`instances.json`, `specs/`), owner-only.
    port_range: inclusive range of dynamic ports handed to instances (Baetyl's range for
        `BAETYL_SERVICE_DYNAMIC_PORT`, DESIGN §8).
    grace_period: seconds between SIGTERM and SIGKILL when an instance is stopped.
    registry_file: where running instances' dynamic ports are published (function proxy).
    function_address: where the function proxy serves, given to function services as
        `BAETYL_FUNCTION_ADDRESS` (docs/functions.md).
    objects_dir: the object cache (agent.core.objects) whose entries config volumes copy.
    platform: this node's platform (`linux-amd64`, ...), which picks a program configuration's
        items (agent.core.programs).
    log_max_bytes, log_backups: a log file is rotated past `log_max_bytes`; `log_backups`
        rotated copies are kept.
    """

    run_dir: Path
    log_dir: Path
    state_dir: Path
    port_range: tuple[int, int] = (50200, 51000)
    grace_period: float = 10.0
    registry_file: Path | None = None
    function_address: str = "127.0.0.1:50011"
    objects_dir: Path | None = None
    platform: str = "linux-amd64"
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    tuning: Tuning = field(default_factory=Tuning)

    def __post_init__(self) -> None:
        low, high = self.port_range
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"port_range {self.port_range} needs 1 <= start <= end <= 65535")
        if self.grace_period < 0:
            raise ValueError("grace_period must not be negative")
        if self.log_max_bytes < 1 or self.log_backups < 0:
            raise ValueError("log_max_bytes must be positive and log_backups not negative")

    def resolved(self) -> NativeSettings:
        """These settings with absolute paths: instance markers match however a path was spelled."""
        registry = self.registry_file
        return dataclasses.replace(
            self,
            run_dir=self.run_dir.resolve(),
            log_dir=self.log_dir.resolve(),
            state_dir=self.state_dir.resolve(),
            registry_file=None if registry is None else registry.absolute(),
        )
