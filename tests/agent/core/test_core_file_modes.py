"""A baetyl-core started as `baetyl-init --no-systemd` starts it (detached, agent.init.start)
gives app directories the documented modes (docs/install.md, docs/native-backend.md).

Apps that drop privileges must still reach their run directories: every directory from the
run directory down to the instance is 0755, configs 0755/0644, secrets 0700/0600, and the apps
start with umask 022; the agent's own store stays 0700.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from agent.core.config import load_config
from agent.init import files, start
from tests.agent.core import agent_kit as kit
from tests.harness.cloud import CloudServer
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI
from tools.kit.waiting import eventually

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(120)]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _umask(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    raise AssertionError("no Umask line")


def _install(layout: files.Layout, nid: str, mosquitto: MosquittoBroker, pki: HarnessPKI) -> None:
    """What baetyl-init writes: the prefix's directories and a core.yml using them."""
    files.prepare(layout)
    path = kit.write_core_config(layout.prefix / "scratch", nid, mosquitto=mosquitto, pki=pki)
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["store"]["dir"] = str(layout.store_dir)
    config["run"]["dir"] = str(layout.run_dir)
    config["log"]["dir"] = str(layout.log_dir)
    layout.config_file.write_text(yaml.safe_dump(config))


async def _stop(pid: int, layout: files.Layout) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(psutil.NoSuchProcess):
        await asyncio.to_thread(psutil.Process(pid).wait, 15)
    await kit.remove_left_apps(load_config(layout.config_file))


async def test_a_detached_core_gives_app_directories_the_documented_modes(
    cloud: CloudServer, mosquitto: MosquittoBroker, pki: HarnessPKI, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    node = f"n-{run}"
    await cloud.ok("POST", "/v1/nodes", {"name": node, "labels": {"run": run}})
    config = {"name": f"conf-{run}", "data": [{"key": "app.yml", "value": {"value": "a: 1"}}]}
    await cloud.ok("POST", "/v1/configs", config)
    await cloud.ok("POST", "/v1/secrets", {"name": f"pw-{run}", "data": {"password": "x"}})
    layout = files.Layout(tmp_path / "prefix")
    _install(layout, f"default.{node}", mosquitto, pki)
    service = kit.python_service(kit.SLEEPER)
    service["workingDir"] = "work/dir"
    service["volumeMounts"] = [
        {"name": "conf", "mountPath": "etc/app"},
        {"name": "pw", "mountPath": "secrets"},
        {"name": "scratch", "mountPath": "tmp"},
    ]
    volumes = [
        {"name": "conf", "config": {"name": f"conf-{run}"}},
        {"name": "pw", "secret": {"name": f"pw-{run}"}},
        {"name": "scratch", "emptyDir": {}},
    ]
    pid, started = await asyncio.to_thread(start.start_detached, layout, kit.CORE_BIN)
    assert started
    try:
        app = await cloud.ok(
            "POST", "/v1/apps", kit.app_body(f"modes-{run}", f"run={run}", service, volumes=volumes)
        )
        stats = await eventually(
            lambda: kit.app_running(cloud, node, app["name"], app["version"]),
            limit=40,
            what="the app running",
        )
        instance = next(iter(stats["instances"].values()))
        app_pid = instance["pid"]
        assert _umask(app_pid) == 0o022
        work = Path(psutil.Process(app_pid).cwd())
        home = work.parent.parent
        assert work == home / "work" / "dir"
        assert home.is_relative_to(layout.run_dir)
        chain = [home, *home.parents]
        for directory in chain[: chain.index(layout.run_dir) + 1]:
            assert _mode(directory) == 0o755, directory
        assert _mode(work) == _mode(work.parent) == 0o755
        assert _mode(home / "tmp") == 0o755
        assert (_mode(home / "etc"), _mode(home / "etc/app")) == (0o755, 0o755)
        assert _mode(home / "etc/app/app.yml") == 0o644
        assert (_mode(home / "secrets"), _mode(home / "secrets/password")) == (0o700, 0o600)
        assert _mode(layout.store_dir) == 0o700
        app_logs = layout.log_dir / "default" / app["name"]
        assert _mode(app_logs) == 0o750
        assert all(_mode(log) == 0o640 for log in app_logs.iterdir())
    finally:
        await _stop(pid, layout)
