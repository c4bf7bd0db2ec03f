"""Helpers of the agent tests that run against the real cloud: core.yml files, waiting on shadows.

The agent (`baetyl-core`) runs in the test's loop (`Core`) or as its own process (`spawn_core`);
the cloud is the real one bridged to the session Mosquitto; apps are real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil
import pytest
import yaml

from agent.core.app import Core
from agent.core.config import CoreConfig, load_config
from agent.core.sync import shadow_sync
from agent.core.sync.shadow_sync import ShadowSync
from tests.agent.core.native.kit import kill_leftovers
from tests.harness.common import free_port, port_range
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import CertFiles, HarnessPKI

SLEEPER = "import time\nwhile True: time.sleep(1)"  # an app that runs until stopped
CORE_BIN = Path(sys.executable).parent / "baetyl-core"
Json = dict[str, Any]


def write_core_config(
    directory: Path,
    nid: str,
    *,
    mosquitto: MosquittoBroker,
    pki: HarnessPKI,
    api: bool = False,
    report_interval: float = 1.0,
    engine_interval: float = 2.0,
    sync_mode: str | None = None,
    engine_mode: str | None = None,
    mqtt_port: int | None = None,
    cert: CertFiles | None = None,
    kubeconfig: Path | None = None,
) -> Path:
    """A core.yml for node `nid` with every directory under `directory`; returns its path.

    The node certificate is the harness's for `nid` unless `cert` is given; `sync.mode` and
    `engine.mode` keep their defaults unless given. With `kubeconfig` the node runs the kube
    backend against that cluster.
    """
    cert = cert or pki.node(nid)
    engine: Json = {"interval": engine_interval}
    sync: Json = {"report_interval": report_interval, "timeout": 5}
    if engine_mode is not None:
        engine["mode"] = engine_mode
    if sync_mode is not None:
        sync["mode"] = sync_mode
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "node": {"ca": str(pki.ca_file), "cert": str(cert.cert_file), "key": str(cert.key_file)},
        "cloud": {
            "mqtt": f"mqtts://{mosquitto.host}:{mqtt_port or mosquitto.port}",
            "keepalive": 5,
        },
        "store": {"dir": str(directory / "store")},
        "run": {"dir": str(directory / "run")},
        "objects": {"dir": str(directory / "objects")},
        "log": {"dir": str(directory / "log"), "level": "debug", "format": "json"},
        "engine": engine,
        "sync": sync,
        "api": {"listen": f"127.0.0.1:{free_port()}" if api else False},
        "native": {"grace_period": 2, "port_range": list(port_range())},
    }
    if kubeconfig is not None:
        engine["backend"] = "kube"
        config["kube"] = {"kubeconfig": str(kubeconfig)}
    path = directory / "core.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def python_service(script: str, name: str = "main") -> Json:
    """A native service running `script` with this Python."""
    return {"name": name, "command": [sys.executable, "-c", script]}


def app_body(name: str, selector: str, *services: Json, **extra: Any) -> Json:
    """A native app for `POST /v1/apps`."""
    return {
        "name": name,
        "mode": "native",
        "selector": selector,
        "services": list(services),
        **extra,
    }


async def remove_left_apps(config: CoreConfig) -> None:
    """Apps outlive the agent: a fresh backend adopts them and removes them; then whatever
    still runs under the node's run directory is killed."""
    try:
        backend = Core(config).backend
        await backend.start()
        for name in list(backend.observe()):
            await backend.remove(name)
        await backend.close()
    finally:
        kill_leftovers(config.run.dir)


class RestLike(Protocol):
    """A cloud's REST API as the helpers below use it (CloudServer, tools.kit.rest.Rest)."""

    async def ok(self, method: str, path: str, body: Any = None) -> Any: ...


async def reported(cloud: RestLike, name: str) -> Json:
    """The node's reported section as the cloud holds it."""
    doc: Json = await cloud.ok("GET", f"/v1/nodes/{name}/shadow")
    section: Json = doc["state"]["reported"]
    return section


async def app_running(cloud: RestLike, name: str, app: str, version: str) -> Json | None:
    """The app's reported stats once it runs at `version`, else None."""
    section = await reported(cloud, name)
    stats = section.get("appstats", {}).get(app)
    if section.get("apps", {}).get(app) == version and stats and stats["status"] == "Running":
        return dict(stats)
    return None


def processes_with_env(key: str, value: str) -> list[psutil.Process]:
    """Live processes whose environment holds `key=value` (apps of one test)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(key) == value and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


async def spawn_core(config: Path, log_file: Path) -> asyncio.subprocess.Process:
    """`baetyl-core -c config` as its own process, logging to `log_file`."""
    with log_file.open("ab") as log:
        return await asyncio.create_subprocess_exec(
            CORE_BIN,
            "-c",
            str(config),
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


@dataclass
class CoreRun:
    """A `baetyl-core` process a test runs (and may start again: set `process`)."""

    config: Path
    log_file: Path
    process: asyncio.subprocess.Process

    def log(self) -> str:
        """What it logged so far."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@asynccontextmanager
async def running_core(config: Path, log_file: Path) -> AsyncIterator[CoreRun]:
    """`baetyl-core` running for the block; then stopped (SIGTERM, 15 s) and every app it left
    removed, so nothing outlives the test."""
    run = CoreRun(config, log_file, await spawn_core(config, log_file))
    try:
        yield run
    finally:
        if run.process.returncode is None:
            run.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):
                    await run.process.wait()
        await remove_left_apps(load_config(config))


POLLED = "polling the shadow"
IGNORED_DELTA = "ignored a delta: polling"


class PollingReads(logging.Handler):
    """The order in which a polling ShadowSync ticks, ignores deltas, reads the shadow, adopts.

    Install it before the sync runs (`watch`). Each shadow read is counted against what may
    cause one in poll mode: a tick (its "polling the shadow" log) or a connect (the link's
    `connects`). A read beyond that was caused by something else, say a delta: `stray_reads`
    names them. Only counters and their order are compared, never wall time, so a loaded
    machine cannot make a correct sync fail.
    """

    def __init__(self, sync: ShadowSync) -> None:
        super().__init__(logging.DEBUG)
        self.sync = sync
        self.ticks = 0
        self.reads = 0
        self.ignored_deltas = 0
        self.stray_reads: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message == POLLED:
            self.ticks += 1
        elif message == IGNORED_DELTA:
            self.ignored_deltas += 1

    @contextlib.contextmanager
    def watch(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[PollingReads]:
        """Count while inside; the sync's own logger is set to DEBUG meanwhile."""
        logger = logging.getLogger(shadow_sync.__name__)
        read = self.sync._refresh  # counted here, not replaced

        async def counted() -> None:
            self.reads += 1
            allowed = self.ticks + self.sync.link.connects
            if self.reads > allowed:
                self.stray_reads.append(
                    f"read {self.reads} after {self.ticks} ticks and "
                    f"{self.sync.link.connects} connects ({self.ignored_deltas} deltas ignored)"
                )
            await read()

        monkeypatch.setattr(self.sync, "_refresh", counted)
        old_level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(old_level)
