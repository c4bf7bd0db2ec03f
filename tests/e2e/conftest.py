"""Fixtures of the end-to-end scenarios: `baetyl-cloud serve` with its managed broker, `baetyl-core`
agents and the apps they start, all as processes, driven with `baetylctl` as a user drives them.

The cloud's CA is seeded with the harness CA, so a node is set up the simple way (core.yml and
the harness's node certificate) instead of through the install script (tests/e2e/test_install.py
covers that path). Every process a test starts is killed when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psutil
import pytest
import yaml

from tests.agent.core.native.kit import kill_leftovers
from tests.harness.cloud import seed_ca
from tests.harness.common import free_port, port_range, reachable_dir
from tests.harness.pki import HarnessPKI
from tools.kit.cloud import serve_args, start_serve
from tools.kit.procs import app_processes, process_with, stop_child
from tools.kit.rest import Rest, health_of
from tools.kit.waiting import eventually

__all__ = ["LIMIT", "eventually"]
LIMIT = 30.0  # seconds a scenario waits for one thing

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CTL_TIMEOUT = 60.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
POLL = 0.05
_CLOUD_UP = "MQTT link up"
_AGENT_UP = '"baetyl-core started"'
Json = dict[str, Any]
T = TypeVar("T")


@dataclass
class Cloud:
    """One `baetyl-cloud serve` (REST API + managed Mosquitto) that can be stopped and restarted.

    The ports stay the same across restarts, as an operator's would, so nodes and `baetylctl`
    find it again.
    """

    data_dir: Path
    port: int
    mqtt_port: int
    log_file: Path
    process: asyncio.subprocess.Process | None = None
    commands: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mqtt_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.mqtt_port}"

    @property
    def token(self) -> str:
        return (self.data_dir / "admin.token").read_text(encoding="ascii").strip()

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    async def start(self) -> None:
        """Start the server; return once its MQTT link is up and it answers /health."""
        argv = serve_args(self.data_dir, self.port, "--mqtt-listen", f"127.0.0.1:{self.mqtt_port}")
        self.process = await start_serve(
            argv, url=self.url, log_file=self.log_file, limit=START_TIMEOUT
        )

    async def stop(self) -> int:
        """SIGTERM (SIGKILL after STOP_TIMEOUT); returns the exit code. The broker stops with it."""
        process, self.process = self.process, None
        if process is None:
            return 0
        return await stop_child(process, grace=STOP_TIMEOUT)

    def broker(self) -> psutil.Process | None:
        """The managed Mosquitto process, if one runs."""
        return process_with(str(self.data_dir / "mosquitto" / "mosquitto.conf"))

    def env(self) -> dict[str, str]:
        """The environment a `baetylctl` user sets (BAETYL_URL, BAETYL_TOKEN)."""
        return {
            **os.environ,
            "BAETYL_URL": self.url,
            "BAETYL_TOKEN": self.token,
            "HOME": str(self.data_dir.parent),
            "XDG_CONFIG_HOME": str(self.data_dir.parent / "config"),
        }

    async def ctl(self, *args: str) -> str:
        """Run `baetylctl ARGS` from the repository root; it must succeed. Returns stdout."""
        self.commands.append(" ".join(["baetylctl", *args]))
        process = await asyncio.create_subprocess_exec(
            BIN / "baetylctl", *args, env=self.env(), cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), CTL_TIMEOUT)
        assert process.returncode == 0, f"baetylctl {' '.join(args)}: {err.decode()}"
        return out.decode()

    async def ctl_yaml(self, *args: str) -> Any:
        """`baetylctl ARGS -o yaml`, parsed."""
        return yaml.safe_load(await self.ctl(*args, "-o", "yaml"))

    async def rest(self, path: str) -> Json:
        """GET an API path as admin (for polling: cheaper than a baetylctl process per poll)."""
        async with aiohttp.ClientSession() as session:
            body: Json = await Rest(session, self.url, self.token).ok("GET", path)
            return body


@dataclass
class Agent:
    """One node's `baetyl-core` process, with its own store, run and log directories."""

    name: str
    config: Path
    api_port: int
    process: asyncio.subprocess.Process | None = None

    @property
    def directory(self) -> Path:
        return self.config.parent

    @property
    def function_port(self) -> int:
        """Where the node's function proxy is to serve (`function.address` of its core.yml)."""
        config = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        return int(config["function"]["address"].rsplit(":", 1)[1])

    @property
    def run_dir(self) -> Path:
        return self.directory / "run"

    @property
    def log_file(self) -> Path:
        return self.directory / "core.log"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    async def start(self) -> None:
        """Start the agent; return once it has started (adopted its apps, tasks running)."""
        before = self.log().count(_AGENT_UP)
        with self.log_file.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                BIN / "baetyl-core", "-c", str(self.config),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        process = self.process

        async def started() -> bool:
            assert process.returncode is None, f"baetyl-core exited\n{self.log()[-3000:]}"
            return self.log().count(_AGENT_UP) > before

        await eventually(started, limit=START_TIMEOUT, what=f"baetyl-core of {self.name}")

    async def kill(self, signum: int = signal.SIGKILL) -> int:
        """Send `signum` and wait for the agent to exit; returns its exit code."""
        process, self.process = self.process, None
        assert process is not None
        process.send_signal(signum)
        return await asyncio.wait_for(process.wait(), STOP_TIMEOUT)

    async def health(self) -> Json | None:
        """The local API's `GET /health`, or None while it does not answer."""
        body: Json | None = await health_of(f"http://127.0.0.1:{self.api_port}")
        return body

    def app_pids(self, app: str) -> set[int]:
        """Pids of the live processes this node runs for `app` (found by their environment)."""
        return {process.pid for process in app_processes(self.run_dir, app)}

    async def cleanup(self) -> None:
        """Kill the agent if it runs, then every app process it left behind."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, TimeoutError):
                await self.kill()
        if self.run_dir.exists():
            kill_leftovers(self.run_dir)


def write_core_config(directory: Path, cert: Path, key: Path, *, ca: Path, broker: str) -> int:
    """A core.yml in `directory` with fast report and engine timers; returns the API port."""
    directory.mkdir(parents=True)
    port = free_port()
    config = {
        "node": {"ca": str(ca), "cert": str(cert), "key": str(key)},
        "cloud": {"mqtt": broker, "keepalive": 5},
        "store": {"dir": str(directory / "store")},
        "run": {"dir": str(directory / "run")},
        "objects": {"dir": str(directory / "objects")},
        "log": {"dir": str(directory / "log"), "level": "debug", "format": "json"},
        "engine": {"interval": 2},
        "sync": {"report_interval": 1, "timeout": 5},
        "api": {"listen": f"127.0.0.1:{port}"},
        "native": {"grace_period": 2, "port_range": list(port_range())},
        # A port of its own: a test's function proxy serves there (docs/functions.md).
        "function": {"address": f"127.0.0.1:{free_port()}"},
    }
    (directory / "core.yml").write_text(yaml.safe_dump(config))
    return port


@pytest.fixture
def e2e_dir() -> Iterator[Path]:
    """A private directory outside pytest's 0700 tree: as root, Mosquitto runs as `mosquitto`
    and must pass through it to its own files."""
    with reachable_dir("baetyl-e2e-") as top:
        yield top


@pytest.fixture
async def edge_cloud(e2e_dir: Path, pki: HarnessPKI) -> AsyncIterator[Cloud]:
    """A running `baetyl-cloud serve` whose CA is the harness CA; stopped with its broker after."""
    data_dir = e2e_dir / "cloud"
    data_dir.mkdir(mode=0o700)
    seed_ca(data_dir / "pki", pki.ca)
    cloud = Cloud(data_dir, free_port(), free_port(), e2e_dir / "cloud.log")
    try:
        await cloud.start()
        yield cloud
    finally:
        await cloud.stop()
        broker = cloud.broker()  # only left over if the cloud had to be SIGKILLed
        if broker is not None:
            broker.kill()


AgentFactory = Callable[[str], Awaitable[Agent]]


@pytest.fixture
async def edge_agents(
    tmp_path: Path, pki: HarnessPKI, edge_cloud: Cloud
) -> AsyncIterator[AgentFactory]:
    """`await edge_agents(node)` starts `baetyl-core` for a node of `edge_cloud` (namespace
    default); every agent and every app process they started is killed after the test."""
    made: list[Agent] = []

    async def start(name: str) -> Agent:
        cert = pki.node(f"default.{name}")
        directory = tmp_path / "nodes" / name
        port = write_core_config(
            directory, cert.cert_file, cert.key_file, ca=pki.ca_file, broker=edge_cloud.mqtt_url
        )
        agent = Agent(name, directory / "core.yml", port)
        made.append(agent)
        await agent.start()
        return agent

    try:
        yield start
    finally:
        failures: list[BaseException] = []
        for agent in made:  # every agent, even if cleaning up one of them fails
            try:
                await agent.cleanup()
            except Exception as exc:  # raised below, once the others are cleaned up
                failures.append(exc)
        if failures:
            raise failures[0]
