"""A node installed with systemd, end to end, on a real systemd (DESIGN §8, §10, docs/agent.md).

A real `baetyl-cloud serve` on the host serves the wheel of the working tree; a Debian container
booted with systemd as PID 1 shares the host's network, so the install command the cloud hands
out (`GET /v1/nodes/{n}/init`) runs inside unchanged, with `sh`, as root: it installs the unit,
enables and starts it, and the node comes online. Then, on that machine: an app runs;
`systemctl restart` and `stop`/`start` keep it (KillMode=process) and the new agent adopts it;
an agent killed with SIGKILL is restarted by systemd and adopts it; after a reboot the agent
comes back by itself and the app runs again; the journal holds the agent's JSON log. And the
agent's self-upgrade (docs/agent.md, "Upgrades") under systemd: in place (same main pid), and a
version that never confirms is rolled back by its guard through `systemctl restart`.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.installing import Cloud, serving_cloud
from tests.harness.common import free_port
from tests.harness.wheel import agent_wheel as build_wheel
from tests.platforms.conftest import PIP_CACHE
from tools.kit.procs import app_processes
from tools.kit.rest import health_of
from tools.kit.waiting import eventually
from tools.platforms.container import Container

pytestmark = [
    pytest.mark.systemd,
    pytest.mark.slow,
    pytest.mark.mosquitto,
    # The first run on a machine builds the rootfs (1 to 2 min) before it boots it.
    pytest.mark.timeout(900),
]

PREFIX = Path("/opt/baetyl")
RUN_DIR = PREFIX / "var/lib/baetyl/run"
UNIT = "baetyl-core.service"
ONLINE = 90.0  # seconds: systemd's RestartSec=5, a reconnect and a report on a loaded machine
APP = "systemd-sleeper"


async def test_a_node_installed_with_systemd_survives_restarts_crashes_and_reboots(
    agent_wheel: Path, systemd_container: Container
) -> None:
    machine = systemd_container
    api_port = free_port()
    async with serving_cloud([agent_wheel]) as cloud:
        name = "edge-systemd"
        await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": {"site": "systemd"}})
        command = (await cloud.ok("GET", f"/v1/nodes/{name}/init"))["cmd"]

        started = time.monotonic()
        # The node's local API on a port of this test's own: the container shares the host's.
        install_env = {
            "BAETYL_API_LISTEN": f"127.0.0.1:{api_port}",
            "PIP_CACHE_DIR": str(PIP_CACHE),
        }
        install = await machine.run(["sh", "-c", command], env=install_env)
        installed_in = time.monotonic() - started
        assert install.code == 0, install.out
        assert "the node is online" in install.out, install.out
        assert (await cloud.ok("GET", f"/v1/nodes/{name}"))["ready"] == 1
        print(f"install command → node online: {installed_in:.1f} s")
        print("installed size:", await machine.sh(f"du -sh {PREFIX} | cut -f1"))

        # The unit is written, enabled and running, and it runs the installation's agent.
        unit = await machine.sh(f"cat /etc/systemd/system/{UNIT}")
        assert f"ExecStart={PREFIX}/venv/bin/baetyl-core -c {PREFIX}/etc/baetyl/core.yml" in unit
        assert (await machine.sh(f"systemctl is-enabled {UNIT}")).strip() == "enabled"
        agent = await main_pid(machine)
        assert await starts(machine) == 1  # a new unit is started once, not started and restarted

        # The script again (its token is spent): the unit is unchanged, the agent keeps running.
        again = await machine.run(["sh", "baetyl-install.sh"], env=install_env)
        assert again.code == 0, again.out
        assert "reusing the virtualenv" in again.out, again.out
        assert await main_pid(machine) == agent
        assert await starts(machine) == 1

        await cloud.ok("POST", "/v1/apps", sleeper_app())
        app = await app_pid(machine)

        # `systemctl restart`: a new agent, the same app process, adopted.
        await machine.sh(f"systemctl restart {UNIT}")
        agent = await new_agent(machine, cloud, name, api_port, after=agent)
        assert await app_pid(machine) == app
        await adopted(machine, times=1)

        # `systemctl stop` leaves the app running (docs/agent.md); `start` adopts it.
        await machine.sh(f"systemctl stop {UNIT}")
        assert (await machine.run(["systemctl", "is-active", UNIT])).out.strip() == "inactive"
        assert psutil.pid_exists(app)
        assert [p.pid for p in apps(machine)] == [app]
        await machine.sh(f"systemctl start {UNIT}")
        agent = await new_agent(machine, cloud, name, api_port, after=agent)
        assert await app_pid(machine) == app
        await adopted(machine, times=2)

        # The agent crashes: systemd starts it again (Restart=always) and it adopts the app.
        psutil.Process(machine.host_pid(agent)).send_signal(signal.SIGKILL)
        agent = await new_agent(machine, cloud, name, api_port, after=agent)
        assert await app_pid(machine) == app
        await adopted(machine, times=3)

        # The journal has the agent's structured log: one JSON object a line.
        journal = await machine.sh("journalctl -u baetyl-core -o cat --no-pager")
        records = [json.loads(line) for line in journal.splitlines() if line.startswith("{")]
        assert any(r.get("message") == "baetyl-core started" for r in records), journal[-3000:]
        assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)

        # A reboot: the enabled unit starts the agent at boot and the app runs again.
        await machine.poweroff()
        assert not psutil.pid_exists(app)
        await machine.boot()
        await new_agent(machine, cloud, name, api_port, after=None)
        assert await app_pid(machine) != app


def apps(machine: Container) -> list[psutil.Process]:
    """The app's live processes in this container (not those of another test's container)."""
    inside = {process.pid for process in machine.processes()}
    return [p for p in app_processes(RUN_DIR, APP) if p.pid in inside]


async def app_pid(machine: Container) -> int:
    """The host pid of the one app process, once it runs."""

    def one() -> int | None:
        found = apps(machine)
        return found[0].pid if len(found) == 1 else None

    pid: int = await eventually(one, limit=ONLINE, what=f"one process of {APP} in the container")
    return pid


async def main_pid(machine: Container) -> int:
    """The agent's pid inside the container, while the unit is active."""

    async def active() -> int | None:
        shown = await machine.run(["systemctl", "show", "-p", "ActiveState,MainPID", UNIT])
        fields = dict(line.split("=", 1) for line in shown.out.split())
        pid = int(fields.get("MainPID", "0"))
        return pid if fields.get("ActiveState") == "active" and pid else None

    pid: int = await eventually(active, limit=ONLINE, what=f"{UNIT} active with a main pid")
    return pid


async def new_agent(
    machine: Container, cloud: Cloud, name: str, api_port: int, *, after: int | None
) -> int:
    """The unit's main pid once it is another agent than `after` and that agent is online."""

    async def online() -> int | None:
        pid = await main_pid(machine)
        if pid == after:
            return None
        health = await health_of(f"http://127.0.0.1:{api_port}")
        cloud_link = (health or {}).get("cloud") or {}
        return pid if cloud_link.get("connected") and cloud_link.get("reports", 0) >= 1 else None

    pid: int = await eventually(online, limit=ONLINE, what="a new baetyl-core online", poll=0.5)
    assert (await cloud.ok("GET", f"/v1/nodes/{name}"))["ready"] == 1
    return pid


async def starts(machine: Container) -> int:
    """How often systemd started the unit in this boot (its own journal lines)."""
    journal = await machine.sh("journalctl -b -u baetyl-core -o cat --no-pager")
    return sum(line.startswith("Started baetyl-core.service") for line in journal.splitlines())


async def adopted(machine: Container, *, times: int) -> None:
    """The journal says, `times` times in all, that an agent adopted the running app."""

    async def logged() -> bool:
        journal = await machine.sh("journalctl -u baetyl-core -o cat --no-pager")
        return journal.count("adopted a running instance") >= times

    await eventually(logged, limit=ONLINE, what=f"adoption number {times} in the journal")


OLD, NEW, SILENT = "0.9.11", "0.9.12", "0.9.13"
UPGRADE_LIMIT = 180.0


async def test_an_agent_upgrades_in_place_under_systemd_and_its_guard_restarts_the_unit(
    systemd_container: Container,
) -> None:
    machine = systemd_container
    wheels = {
        OLD: build_wheel(OLD),
        NEW: build_wheel(NEW),
        # Runs and adopts the apps but dials a port where no broker listens: never confirms.
        SILENT: build_wheel(SILENT, (("agent/core/app.py", "port=config.cloud.port,", "port=9,"),)),
    }
    api_port = free_port()
    # The newest wheel (the last) is the one the install script takes.
    async with serving_cloud([wheels[NEW], wheels[SILENT], wheels[OLD]]) as cloud:
        name = "edge-upgrade"
        await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": {"site": "systemd"}})
        command = (await cloud.ok("GET", f"/v1/nodes/{name}/init"))["cmd"]
        await machine.sh("printf 'upgrade:\\n  confirm_timeout: 15\\n' > /root/base.yml")
        install = await machine.run(
            ["sh", "-c", command],
            env={
                "BAETYL_API_LISTEN": f"127.0.0.1:{api_port}",
                "BAETYL_BASE_CONFIG": "/root/base.yml",
                "PIP_CACHE_DIR": str(PIP_CACHE),
            },
        )
        assert install.code == 0, install.out
        await cloud.ok("POST", "/v1/apps", sleeper_app())
        app = await app_pid(machine)
        agent = await main_pid(machine)
        await eventually(
            lambda: upgrade_view(cloud, name, current=OLD), limit=ONLINE, what="version OLD"
        )

        # The new version replaces the agent in place: the unit's main pid does not change.
        await core_configs(cloud, name, NEW)
        done = await eventually(
            lambda: upgrade_view(cloud, name, version=NEW, state="done"),
            limit=UPGRADE_LIMIT,
            what="the upgrade to NEW",
        )
        assert (done["current"], done["previous"]) == (NEW, OLD)
        assert await main_pid(machine) == agent
        assert f"/versions/{NEW}/" in " ".join(psutil.Process(machine.host_pid(agent)).cmdline())
        assert await app_pid(machine) == app

        # A version that never confirms: NEW's guard records the rollback and restarts the unit
        # (`systemctl restart`, KillMode=process: the guard and the app survive the stop), whose
        # start runs NEW again.
        await core_configs(cloud, name, SILENT)
        back = await eventually(
            lambda: upgrade_view(cloud, name, version=SILENT, state="rolledBack"),
            limit=UPGRADE_LIMIT,
            what="the rollback of SILENT",
        )
        assert back["current"] == NEW
        assert "did not connect and report" in back["upgrade"]["message"]
        restarted = await new_agent(machine, cloud, name, api_port, after=agent)
        assert f"/versions/{NEW}/" in " ".join(
            psutil.Process(machine.host_pid(restarted)).cmdline()
        )
        assert await app_pid(machine) == app
        journal = await machine.sh("journalctl -u baetyl-core -o cat --no-pager")
        assert "rolling the agent back" in journal, journal[-3000:]


def sleeper_app() -> dict[str, object]:
    """A native app of the container's own Python (the host's interpreter is not inside)."""
    command = ["python3", "-c", "import time; time.sleep(3600)"]
    return {
        "name": APP,
        "mode": "native",
        "selector": "site=systemd",
        "services": [{"name": "main", "command": command}],
    }


async def core_configs(cloud: Cloud, name: str, version: str) -> None:
    body = {"version": version, "frequency": 2, "apiport": 30050}
    await cloud.ok("PUT", f"/v1/nodes/{name}/core/configs", body)


async def upgrade_view(
    cloud: Cloud,
    name: str,
    *,
    current: str | None = None,
    version: str | None = None,
    state: str | None = None,
) -> dict[str, Any] | None:
    """The node's versions view once it shows `current`, or an upgrade to `version` in `state`."""
    found: dict[str, Any] = await cloud.ok("GET", f"/v1/nodes/{name}/core/versions")
    upgrade = found.get("upgrade") or {}
    if current is not None and found.get("current") != current:
        return None
    if version is not None and (upgrade.get("version"), upgrade.get("state")) != (version, state):
        return None
    return found
