"""`baetyl-init --no-systemd` starts a baetyl-core whose run directories have the documented modes.

docs/install.md and docs/agent.md: the run directories are 0755 so that an app that drops
privileges after it starts still reaches its working directory; apps start with umask 022 (issue
12, item 14). tests/agent/core/test_core_file_modes.py checks every mode of a detached core; this
test takes the whole path a user takes: the real cloud (activation with the harness CA), the
session Mosquitto, the real baetyl-init binary starting a real baetyl-core, and an app that really
drops privileges to `nobody` (when the test runs as root) and then lists its working directory.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from agent.init.files import Layout
from agent.init.start import stop_detached
from cloud.settings import InstallSettings, MqttSettings
from tests.agent.core.agent_kit import app_body, processes_with_env, python_service
from tests.agent.core.native.kit import kill_leftovers
from tests.cloud.mqtt.conftest import mqtt_settings, running_cloud
from tests.harness.cloud import CloudServer
from tests.harness.common import free_port
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI
from tools.kit.waiting import eventually

__all__ = ["mqtt_settings"]

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(120)]

INIT = Path(sys.executable).parent / "baetyl-init"
NOBODY = 65534
# Drops to nobody (as root), then lists its working directory: that needs r-x on it for others.
DROPPER = f"""
import os, sys, time
if os.getuid() == 0:
    os.setgroups([])
    os.setgid({NOBODY})
    os.setuid({NOBODY})
try:
    os.listdir(".")
except OSError as exc:
    print("cannot reach the run directory:", exc, flush=True)
    sys.exit(3)
print("reached the run directory", flush=True)
while True:
    time.sleep(1)
"""


@pytest.fixture
async def cloud(
    tmp_path: Path, mosquitto: MosquittoBroker, pki: HarnessPKI, mqtt_settings: MqttSettings
) -> AsyncIterator[CloudServer]:
    """A cloud that activates nodes with the CA the session broker trusts."""
    install = InstallSettings(node_mqtt_url=f"mqtts://{mosquitto.host}:{mosquitto.port}")
    async with running_cloud(
        tmp_path / "cloud", None, mqtt_settings, ca=pki.ca, install=install
    ) as server:
        yield server


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """An installation prefix of this test."""
    return Layout(tmp_path / "opt")


async def _init(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        INIT, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    raise AssertionError("no Umask in /proc status")


async def test_no_systemd_start_gives_run_directories_the_documented_modes(
    cloud: CloudServer, layout: Layout
) -> None:
    site = f"modes-{uuid.uuid4().hex[:8]}"
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-modes", "labels": {"site": site}})
    command = (await cloud.ok("GET", "/v1/nodes/edge-modes/init"))["cmd"]
    found = re.search(r"token=([A-Za-z0-9_.-]+)", command)
    assert found is not None
    token = found.group(1)
    run_dir = layout.prefix / "var/lib/baetyl/run"
    try:
        code, out = await _init(
            "--cloud", cloud.url, "--token", token, "--prefix", str(layout.prefix),
            "--no-systemd", "--api-listen", f"127.0.0.1:{free_port()}",
        )  # fmt: skip
        assert code == 0, out
        core = psutil.Process(int((layout.prefix / "var/run/baetyl-core.pid").read_text()))
        assert _umask(core.pid) == 0o022  # decision 91: private files get explicit modes

        app = f"dropper-{site}"
        await cloud.ok("POST", "/v1/apps", app_body(app, f"site={site}", python_service(DROPPER)))
        log_file = layout.prefix / f"var/log/baetyl/default/{app}/main-1.log"

        async def said() -> str:
            text = log_file.read_text(errors="replace") if log_file.exists() else ""
            return text if "run directory" in text else ""

        assert "reached the run directory" in await eventually(
            said, limit=60, what="the app saying whether it reached its run directory"
        )
        (process,) = processes_with_env("BAETYL_APP_NAME", app)
        assert _umask(process.pid) == 0o022
        instance = Path(process.cwd())
        assert instance.is_relative_to(run_dir)
        # Every directory from the run directory down to the instance: 0755.
        directory = instance
        while directory != run_dir.parent:
            assert _mode(directory) == 0o755, (directory, oct(_mode(directory)))
            directory = directory.parent
        if os.getuid() == 0:
            assert process.uids().real == NOBODY  # it really dropped privileges
    finally:
        await asyncio.to_thread(stop_detached, layout)
        if run_dir.exists():
            kill_leftovers(run_dir)
