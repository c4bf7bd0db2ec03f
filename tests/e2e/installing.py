"""Installed nodes for end-to-end tests: a real `baetyl-cloud serve` serving agent wheels, and
prefixes the cloud's own install script installs nodes into (no systemd), as a user does it.

Shared by the install tests and the agent upgrade tests; every process started is killed after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

from tests.agent.core.native.kit import kill_leftovers
from tests.harness.common import free_port
from tools.kit.cloud import admin_token, serve_args, start_serve
from tools.kit.procs import processes_with, stop_child
from tools.kit.rest import Rest

PIP_CACHE = Path.home() / ".cache/baetyl-py/pip"
SCRIPT_TIMEOUT = 300.0
START_TIMEOUT = 30.0


class Cloud(Rest):
    """A running `baetyl-cloud serve`: its REST API as an admin, its broker's port, its wheels."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, data_dir: Path, mqtt_port: int, dist: Path
    ):
        super().__init__(session, url, admin_token(data_dir))
        self.mqtt_port = mqtt_port
        self.dist = dist


@contextlib.asynccontextmanager
async def serving_cloud(wheels: Sequence[Path]) -> AsyncIterator[Cloud]:
    """`baetyl-cloud serve` with its own broker, serving `wheels` (the last one is the newest)."""
    # Not under pytest's tmp_path: as root the broker runs as `mosquitto` and must pass through.
    top = Path(tempfile.mkdtemp(prefix="baetyl-install-"))
    top.chmod(0o711)
    data_dir, dist = top / "cloud", top / "dist"
    data_dir.mkdir(mode=0o700)
    dist.mkdir()
    now = time.time()
    for age, wheel in enumerate(reversed(wheels)):
        copied = dist / wheel.name
        shutil.copyfile(wheel, copied)
        os.utime(copied, (now - age, now - age))
    port, mqtt_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    argv = serve_args(
        data_dir, port, "--dist-dir", str(dist), "--mqtt-listen", f"127.0.0.1:{mqtt_port}"
    )
    process = await start_serve(argv, url=url, log_file=top / "cloud.log", limit=START_TIMEOUT)
    try:
        async with aiohttp.ClientSession() as session:
            yield Cloud(session, url, data_dir, mqtt_port, dist)
    finally:
        await stop_child(process, grace=20)
        shutil.rmtree(top, ignore_errors=True)


@dataclass(frozen=True)
class Node:
    """Where the script installs one node, and the environment it runs with."""

    prefix: Path
    workdir: Path
    env: dict[str, str]

    @property
    def config(self) -> Path:
        return self.prefix / "etc/baetyl/core.yml"

    @property
    def run_dir(self) -> Path:
        return self.prefix / "var/lib/baetyl/run"

    @property
    def pid_file(self) -> Path:
        return self.prefix / "var/run/baetyl-core.pid"


@contextlib.asynccontextmanager
async def node_prefix(top: Path, **env: str) -> AsyncIterator[Node]:
    """A prefix and an environment for the install script; its processes are killed after."""
    prefix, workdir = top / "opt", top / "work"
    workdir.mkdir()
    environment = {
        **os.environ,
        "BAETYL_PREFIX": str(prefix),
        "BAETYL_NO_SYSTEMD": "1",
        "BAETYL_PYTHON": sys.executable,
        "BAETYL_API_LISTEN": f"127.0.0.1:{free_port()}",
        "PIP_CACHE_DIR": str(PIP_CACHE),
        **env,
    }
    environment.pop("VIRTUAL_ENV", None)
    node = Node(prefix, workdir, environment)
    try:
        yield node
    finally:
        # Agents of any installed version, and an upgrade's rollback guard.
        for process in processes_with(str(node.config)):
            with contextlib.suppress(psutil.Error):
                process.kill()
        if node.run_dir.exists():
            kill_leftovers(node.run_dir)


async def shell(node: Node, command: str) -> tuple[int, str]:
    """Run `command` with sh in the node's work directory; (exit code, stdout + stderr)."""
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", command, cwd=node.workdir, env=node.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(process.communicate(), SCRIPT_TIMEOUT)
    except TimeoutError:
        process.kill()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


def core_processes(config: Path) -> list[psutil.Process]:
    """Live baetyl-core processes running with this core.yml."""
    return processes_with(str(config), program="baetyl-core")
