"""Helpers of the agent tests that run against the real cloud: core.yml files, waiting on shadows.

The agent (`baetyl-core`) runs in the test's loop (`Core`) or as its own process (`spawn_core`);
the cloud is the real one bridged to the session Mosquitto; apps are real processes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import yaml

from tests.harness.cloud import CloudServer
from tests.harness.common import free_port
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import CertFiles, HarnessPKI

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
) -> Path:
    """A core.yml for node `nid` with every directory under `directory`; returns its path.

    The node certificate is the harness's for `nid` unless `cert` is given; `sync.mode` and
    `engine.mode` keep their defaults unless given.
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
        "log": {"dir": str(directory / "log"), "level": "debug", "format": "json"},
        "engine": engine,
        "sync": sync,
        "api": {"listen": f"127.0.0.1:{free_port()}" if api else False},
        "native": {"grace_period": 2},
    }
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


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, what: str = "condition"
) -> Any:
    """Poll `check` until it returns a truthy value; fail with `what` after `timeout`."""
    last: Any = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                last = await check()
                if last:
                    return last
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}; last value: {last!r}") from None


async def reported(cloud: CloudServer, name: str) -> Json:
    """The node's reported section as the cloud holds it."""
    doc: Json = await cloud.ok("GET", f"/v1/nodes/{name}/shadow")
    section: Json = doc["state"]["reported"]
    return section


async def app_running(cloud: CloudServer, name: str, app: str, version: str) -> Json | None:
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
