"""`baetyl-core` as a process: apps survive it, it adopts them, and it runs offline.

Each test runs the real console script against the real cloud and a real broker; apps are real
processes found by their BAETYL_APP_NAME environment variable.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.core.config import load_config
from cloud.settings import BridgeSettings, MqttSettings
from tests.agent.core.agent_kit import (
    SLEEPER,
    app_body,
    app_running,
    processes_with_env,
    python_service,
    remove_left_apps,
    spawn_core,
    write_core_config,
)
from tests.cloud.mqtt.conftest import running_cloud
from tests.harness.cloud import CloudServer
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI
from tools.kit.waiting import eventually

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(120)]

STARTED = '"baetyl-core started"'
# Seconds the broker stays down: issue 5 asked for a full minute (the agent's backoff reaches its
# 60 s cap); the short run shows the same things in a sixth of the time for everyday runs.
OUTAGES = [
    pytest.param(10.0, id="outage-10s"),
    pytest.param(60.0, id="outage-60s", marks=pytest.mark.slow),
]


class CoreProcess:
    """One node's baetyl-core, started and killed as a user (or systemd) would."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.log_file = config.parent / "core.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the agent and wait until it has started (its handlers are in place)."""
        before = self.log().count(STARTED)
        self.process = await spawn_core(self.config, self.log_file)
        await eventually(self._started_since(before), what="baetyl-core started")

    def _started_since(self, before: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            assert self.process is not None
            assert self.process.returncode is None, self.log()[-2000:]
            return self.log().count(STARTED) > before

        return check

    async def kill(self, signum: int = signal.SIGKILL) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        async with asyncio.timeout(15):
            code = await self.process.wait()
        self.process = None
        return code

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    async def cleanup(self) -> None:
        """Stop the agent if it runs, then remove every app it left running."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, TimeoutError):
                await self.kill()
        config = load_config(self.config)
        await remove_left_apps(config)


@pytest.fixture
async def core_of(tmp_path: Path, pki: HarnessPKI) -> AsyncIterator[Any]:
    """`core_of(nid, broker)` → a CoreProcess (not started) cleaned up after the test."""
    made: list[CoreProcess] = []

    def make(nid: str, broker: MosquittoBroker) -> CoreProcess:
        config = write_core_config(tmp_path / nid, nid, mosquitto=broker, pki=pki)
        core = CoreProcess(config)
        made.append(core)
        return core

    yield make
    for core in made:
        await core.cleanup()


async def _node_with_app(
    cloud: CloudServer, script: str = SLEEPER, replica: int = 1
) -> tuple[str, dict[str, Any]]:
    run = uuid.uuid4().hex[:8]
    name = f"n-{run}"
    await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": {"run": run}})
    body = app_body(f"a-{run}", f"run={run}", python_service(script), replica=replica)
    app: dict[str, Any] = await cloud.ok("POST", "/v1/apps", body)
    return name, app


def _pids(app: str) -> set[int]:
    return {p.pid for p in processes_with_env("BAETYL_APP_NAME", app)}


async def test_apps_outlive_the_agent_and_are_adopted_not_started_twice(
    cloud: CloudServer, mosquitto: MosquittoBroker, core_of: Any
) -> None:
    name, app = await _node_with_app(cloud, replica=2)
    core: CoreProcess = core_of(f"default.{name}", mosquitto)
    await core.start()
    stats = await eventually(
        lambda: app_running(cloud, name, app["name"], app["version"]), what="app running"
    )
    pids = {i["pid"] for i in stats["instances"].values()}
    assert len(pids) == 2
    assert _pids(app["name"]) == pids

    assert await core.kill(signal.SIGKILL) == -signal.SIGKILL
    await asyncio.sleep(0.5)
    assert _pids(app["name"]) == pids, "apps must survive the agent being killed"

    await core.start()
    await eventually(lambda: _reports_pids(cloud, name, app, pids), what="re-adopted pids")
    await asyncio.sleep(1.0)  # a duplicate start would show up by now
    assert _pids(app["name"]) == pids

    assert await core.kill(signal.SIGTERM) == 0, core.log()[-2000:]
    assert _pids(app["name"]) == pids, "apps must survive an orderly agent stop"


async def test_killed_in_the_middle_of_an_apply_it_converges_without_duplicates(
    cloud: CloudServer, mosquitto: MosquittoBroker, core_of: Any
) -> None:
    name, app = await _node_with_app(cloud, replica=3)
    core: CoreProcess = core_of(f"default.{name}", mosquitto)
    await core.start()
    # Kill the agent as soon as the first instance exists, before it finished the app.
    await eventually(lambda: _some_pid(app["name"]), limit=20, what="first instance")
    await core.kill(signal.SIGKILL)
    partial = _pids(app["name"])
    assert 1 <= len(partial) <= 3

    await core.start()
    stats = await eventually(
        lambda: app_running(cloud, name, app["name"], app["version"]), what="app running"
    )
    reported = {i["pid"] for i in stats["instances"].values()}
    await asyncio.sleep(1.0)
    live = _pids(app["name"])
    assert len(reported) == 3
    assert live == reported, "no duplicate and no orphan instance"
    assert partial <= live, "instances started before the kill are adopted, not replaced"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("outage", OUTAGES)
async def test_a_broker_outage_leaves_apps_alone_and_the_agent_converges_after_it(
    tmp_path: Path, pki: HarnessPKI, core_of: Any, outage: float
) -> None:
    broker = MosquittoBroker(pki)
    broker.start()
    try:
        cert = pki.cloud("r1")
        settings = MqttSettings(
            host=broker.host,
            port=broker.port,
            ca_file=pki.ca_file,
            cert_file=cert.cert_file,
            key_file=cert.key_file,
            bridge=BridgeSettings(replica="r1", keepalive=5),
        )
        async with running_cloud(tmp_path / "cloud", None, settings) as cloud:
            name, app = await _node_with_app(cloud)
            core: CoreProcess = core_of(f"default.{name}", broker)
            await core.start()
            await eventually(
                lambda: app_running(cloud, name, app["name"], app["version"]), what="running"
            )
            pids = _pids(app["name"])

            broker.halt()
            # Offline, the agent restarts: it runs the stored desired state, same processes.
            await asyncio.sleep(2)
            assert await core.kill(signal.SIGTERM) == 0
            await core.start()
            await asyncio.sleep(outage - 2)  # the outage itself is what is tested: a fixed time
            assert _pids(app["name"]) == pids, "apps must run on while the broker is down"
            assert core.process is not None
            assert core.process.returncode is None, core.log()[-2000:]

            # Meanwhile the cloud changes the desired state: a second app for this node.
            run = app["selector"].split("=", 1)[1]
            second = await cloud.ok(
                "POST", "/v1/apps", app_body(f"b-{run}", f"run={run}", python_service(SLEEPER))
            )
            broker.start(same_port=True)
            await eventually(
                lambda: app_running(cloud, name, second["name"], second["version"]),
                limit=120,
                what="the change made during the outage reaches the node",
            )
            assert _pids(app["name"]) == pids
    finally:
        broker.stop()


async def _reports_pids(cloud: CloudServer, name: str, app: dict[str, Any], pids: set[int]) -> bool:
    stats = await app_running(cloud, name, app["name"], app["version"])
    return stats is not None and {i["pid"] for i in stats["instances"].values()} == pids


async def _some_pid(app: str) -> bool:
    return bool(_pids(app))
