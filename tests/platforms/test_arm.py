"""A node installed on ARM, end to end: arm64 and armv7 userlands under qemu-user (DESIGN §8, §10).

A real `baetyl-cloud serve` on the host serves the wheel of the working tree. The container is a
Debian bookworm userland of the ARM architecture (its every program runs under qemu-user, the
kernel's binfmt_misc starting the emulator), without systemd, sharing the host's network: the
install command the cloud hands out (`GET /v1/nodes/{n}/init`) runs inside unchanged, with
`sh`, as root. pip installs the agent's dependencies for that architecture (on armv7 it compiles
psutil and cffi, after the install script installed the compiler and headers with apt-get:
decision #155); baetyl-init activates the node and starts baetyl-core without systemd; the node
comes online, reports its ARM architecture, and runs a native app of the container's own Python.

The first run on a machine builds the rootfs (≈ 3 to 4 min each); pip's cache (with the wheels
it built on armv7) and apt's downloads are kept in ~/.cache/baetyl-py, so later runs take about
a minute each.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.installing import Cloud, serving_cloud
from tests.harness.common import free_port
from tests.platforms.conftest import PIP_CACHE
from tools.kit.procs import app_processes
from tools.kit.waiting import eventually
from tools.platforms.container import Container

pytestmark = [
    pytest.mark.arm,
    pytest.mark.slow,
    pytest.mark.mosquitto,
    # A cold machine: the rootfs (≈ 4 min), then on armv7 apt-get and two compilations
    # (≈ 4 min) under emulation, on a loaded machine.
    pytest.mark.timeout(1800),
]

PREFIX = Path("/opt/baetyl")
RUN_DIR = PREFIX / "var/lib/baetyl/run"
APP = "arm-sleeper"
INSTALL_LIMIT = 1500.0
ONLINE = 180.0  # seconds: an emulated agent's start and first report on a loaded machine
GO_ARCH = {"arm64": "arm64", "armhf": "arm"}
"""What the node reports for each userland: Go's names, as Baetyl's agent does."""
VARIANT = {"arm64": "v8", "armhf": "v7"}
UNAME = {"arm64": "aarch64", "armhf": "armv7l"}


async def test_the_install_command_brings_an_arm_node_online_running_an_app(
    agent_wheel: Path, arm_container: Container
) -> None:
    machine = arm_container
    arch = str(machine.rootfs.info["arch"])
    assert (await machine.sh("uname -m")).strip() == UNAME[arch]
    env = {"BAETYL_API_LISTEN": f"127.0.0.1:{free_port()}", "PIP_CACHE_DIR": str(PIP_CACHE)}
    async with serving_cloud([agent_wheel]) as cloud:
        name = f"edge-{arch}"
        await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": {"board": arch}})
        command = (await cloud.ok("GET", f"/v1/nodes/{name}/init"))["cmd"]

        if arch == "armhf":
            # Forbidden to install system packages, the script stops before activating the
            # node, naming what to install; the command (its token unspent) still works after.
            refused = await machine.run(
                ["sh", "-c", command], env={**env, "BAETYL_NO_APT": "1"}, limit=INSTALL_LIMIT
            )
            assert refused.code != 0, refused.out
            assert "gcc libc6-dev python3-dev libffi-dev" in refused.out, refused.out
            assert (await cloud.ok("GET", f"/v1/nodes/{name}"))["ready"] == 0
            assert (await machine.run(["test", "-e", f"{PREFIX}/etc/baetyl/core.yml"])).code != 0

        started = time.monotonic()
        install = await machine.run(["sh", "-c", command], env=env, limit=INSTALL_LIMIT)
        installed_in = time.monotonic() - started
        assert install.code == 0, install.out
        assert f"architecture {UNAME[arch]}: supported" in install.out, install.out
        assert "systemd is not running here" in install.out, install.out
        assert "the node is online" in install.out, install.out
        if arch == "armhf":
            assert "installing gcc libc6-dev python3-dev libffi-dev with apt-get" in install.out
        print(f"{arch}: install command → node online: {installed_in:.1f} s")
        print(f"{arch}: installed size:", await machine.sh(f"du -sh {PREFIX} | cut -f1"))

        # The agent runs the userland's own Python, emulated, and imports its compiled parts.
        versions = await machine.sh(
            f"{PREFIX}/venv/bin/python -c 'import platform, psutil, cryptography, pydantic_core; "
            "print(platform.machine(), psutil.cpu_count())'"
        )
        assert versions.split()[0] == UNAME[arch], versions

        reported = await reported_state(cloud, name)
        hosts = reported["node"]
        assert [(info["arch"], info["variant"]) for info in hosts.values()] == [
            (GO_ARCH[arch], VARIANT[arch])
        ], hosts

        await cloud.ok("POST", "/v1/apps", sleeper_app(arch))
        stats = await eventually(
            lambda: app_running(cloud, name),
            limit=ONLINE,
            poll=0.5,
            what=f"{APP} Running on the {arch} node",
        )
        inside = {process.pid for process in machine.processes()}
        apps = [p for p in app_processes(RUN_DIR, APP) if p.pid in inside]
        assert len(apps) == 1, (apps, stats)
        # The app is an emulated program of the userland: qemu runs its Python.
        assert "qemu" in Path(f"/proc/{apps[0].pid}/exe").readlink().name


def sleeper_app(arch: str) -> dict[str, object]:
    """A native app of the container's own Python (the host's interpreter is not inside)."""
    return {
        "name": APP,
        "mode": "native",
        "selector": f"board={arch}",
        "services": [
            {"name": "main", "command": ["python3", "-c", "import time; time.sleep(3600)"]}
        ],
    }


async def reported_state(cloud: Cloud, name: str) -> dict[str, Any]:
    """The node's reported shadow once it holds the node's facts."""

    async def with_facts() -> dict[str, Any] | None:
        shadow = await cloud.ok("GET", f"/v1/nodes/{name}/shadow")
        reported: dict[str, Any] = shadow["state"]["reported"]
        return reported if reported.get("node") else None

    found: dict[str, Any] = await eventually(
        with_facts, limit=ONLINE, poll=0.5, what=f"{name}'s reported node facts"
    )
    return found


async def app_running(cloud: Cloud, name: str) -> dict[str, Any] | None:
    shadow = await cloud.ok("GET", f"/v1/nodes/{name}/shadow")
    stats: dict[str, Any] | None = shadow["state"]["reported"].get("appstats", {}).get(APP)
    return stats if stats is not None and stats.get("status") == "Running" else None
