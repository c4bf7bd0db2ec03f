"""Fixtures of the native backend tests: per-test directories, a backend factory that cleans up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.core.native import NativeBackend, NativeSettings
from agent.core.native.cronjob import Clock
from tests.agent.core.native.kit import FAST, NODE, Dirs, kill_leftovers
from tests.harness.common import port_range

BackendFactory = Callable[..., NativeBackend]


@pytest.fixture
def dirs(tmp_path: Path) -> Dirs:
    """Fresh run/log/state directories, a registry path and a host directory for hostPath."""
    host = tmp_path / "host"
    host.mkdir()
    return Dirs(
        root=tmp_path,
        run=tmp_path / "run",
        log=tmp_path / "log",
        state=tmp_path / "state",
        registry=tmp_path / "services.json",
        host=host,
    )


@pytest.fixture
async def backends(dirs: Dirs) -> AsyncIterator[BackendFactory]:
    """Make backends on `dirs` (fast timers; `clock=` for cronjobs); all are closed and their
    processes killed after."""
    made: list[NativeBackend] = []

    def make(clock: Clock | None = None, **overrides: Any) -> NativeBackend:
        options: dict[str, Any] = {
            "run_dir": dirs.run,
            "log_dir": dirs.log,
            "state_dir": dirs.state,
            "registry_file": dirs.registry,
            "grace_period": 2.0,
            "tuning": FAST,
            "port_range": port_range(),
            **overrides,
        }
        backend = NativeBackend(NODE, NativeSettings(**options), clock=clock)
        made.append(backend)
        return backend

    try:
        yield make
    finally:
        for backend in made:
            await backend.close()
        kill_leftovers(dirs.run)
