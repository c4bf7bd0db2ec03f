"""Builders and waits shared by the native backend tests: small Python apps, specs, polling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil

from agent.contracts.resources import Application, Configuration, Secret
from agent.contracts.wire import validate
from agent.core.backend import Deployment, NodeIdentity
from agent.core.native import Tuning, procs
from tools.kit.procs import alive

T = TypeVar("T")

NODE = NodeIdentity("default", "edge-1")
FAST = Tuning(
    backoff_base=0.1,
    backoff_cap=0.8,
    backoff_reset=600.0,
    crashloop_threshold=3,
    rollout_timeout=10.0,
    log_check_interval=0.2,
    usage_interval=0.1,
    poll_interval=0.1,
)

PRELUDE = """
import json, os, signal, sys, time
def put(name, text):
    with open(name + '.tmp', 'w') as f:
        f.write(text)
    os.replace(name + '.tmp', name)
def note(path, text):
    with open(path, 'a') as f:
        f.write(text + '\\n')
"""

SLEEPER = """
put('env.json', json.dumps(dict(os.environ)))
put('pid', str(os.getpid()))
time.sleep(600)
"""


def python(script: str) -> list[str]:
    """A command running `script` (after PRELUDE) with this interpreter."""
    return [sys.executable, "-c", PRELUDE + textwrap.dedent(script)]


def service(name: str = "main", script: str = SLEEPER, **fields: Any) -> dict[str, Any]:
    """A service spec (JSON shape) running a Python script."""
    return {"name": name, "command": python(script), **fields}


def application(
    name: str = "demo",
    version: str = "1",
    services: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> Application:
    """A native application spec."""
    spec = {
        "name": name,
        "version": version,
        "mode": "native",
        "services": services or [service()],
        **fields,
    }
    return validate(Application, spec)


def deployment(
    app: Application,
    configs: dict[str, dict[str, str]] | None = None,
    secrets: dict[str, dict[str, str]] | None = None,
) -> Deployment:
    """A deployment of `app` with configurations/secrets given as {name: data} (version "1")."""
    return Deployment(
        app=app,
        configs={
            n: validate(Configuration, {"name": n, "version": "1", "data": d})
            for n, d in (configs or {}).items()
        },
        secrets={
            n: validate(Secret, {"name": n, "version": "1", "data": d})
            for n, d in (secrets or {}).items()
        },
    )


@dataclass(frozen=True)
class Dirs:
    """The directories one test's backends use."""

    root: Path
    run: Path
    log: Path
    state: Path
    registry: Path
    host: Path

    def instance(self, app: str, version: str, service: str = "main", index: int = 1) -> Path:
        """An instance's working directory."""
        return self.run / NODE.namespace / app / version / service / str(index)

    def read_env(self, app: str, version: str, service: str = "main", index: int = 1) -> Any:
        """The environment a SLEEPER instance saw (None until it wrote it)."""
        path = self.instance(app, version, service, index) / "env.json"
        return json.loads(path.read_text()) if path.exists() else None


class FakeClock:
    """A wall clock that moves only when a test sets it (agent.core.native.cronjob.Clock):
    timing tests of schedules do not depend on the time of day they run at."""

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._sleepers: list[tuple[datetime | None, asyncio.Event]] = []
        self.sleeps: list[datetime | None] = []
        """Every moment a timer went to sleep for, in order."""

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, moment: datetime | None, wake: asyncio.Event) -> None:
        self.sleeps.append(moment)
        entry = (moment, wake)
        self._sleepers.append(entry)
        try:
            await wake.wait()
        finally:
            self._sleepers.remove(entry)

    def set(self, moment: datetime) -> None:
        """Move to `moment` (either way) and wake the timers whose moment has come."""
        self._now = moment
        for until, wake in self._sleepers:
            if until is not None and until <= moment:
                wake.set()

    def asleep_until(self, moment: datetime | None) -> bool:
        """Whether a timer now sleeps until `moment`."""
        return any(until == moment for until, _ in self._sleepers)


def exists(pid: int) -> bool:
    """True if `pid` exists at all, zombie included (a zombie means nobody reaped it)."""
    return psutil.pid_exists(pid)


def kill_leftovers(run_dir: Path) -> None:
    """SIGKILL every instance process of `run_dir` and reap what this process parented."""
    marked = procs.find_marked(run_dir)
    for mark in marked.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(mark.ident.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        procs.reap_parked()
        if not any(alive(mark.ident.pid) for mark in marked.values()):
            break
        time.sleep(0.05)
    procs.reap_parked()
