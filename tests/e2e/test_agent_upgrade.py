"""Agent self-upgrade end to end (issue 16 part 4, decision #153, docs/agent.md "Upgrades").

A real cloud serves four wheels built from the working tree in the test: the installed version,
a good newer one, one that runs but never connects, and one that exits at start. A node is
installed with the cloud's own install script (no systemd); its agent is then upgraded through
`PUT /v1/nodes/{name}/core/configs` as a Baetyl user does it:
- a wheel whose bytes differ from the digest the cloud announced is refused, nothing switches;
- the good version replaces the agent in place (same pid) and confirms itself;
- each broken version is rolled back by the previous version's guard;
and the app the node runs keeps its pid throughout.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.installing import Cloud, Node, core_processes, node_prefix, serving_cloud, shell
from tests.harness.wheel import agent_wheel
from tools.kit.procs import alive, app_processes
from tools.kit.waiting import eventually

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(600)]

OLD, NEW, SILENT, CRASHING = "0.9.1", "0.9.2", "0.9.3", "0.9.4"
CONFIRM_TIMEOUT = 15
UPGRADE_LIMIT = 180.0
NAME = "edge-upgrade"
APP = "upgrade-sleeper"


@pytest.fixture(scope="module")
def wheels() -> dict[str, Path]:
    """The four versions, built once per session (cached by source hash)."""
    return {
        OLD: agent_wheel(OLD),
        NEW: agent_wheel(NEW),
        # Runs, adopts the apps, but dials a port where no broker listens: never reports.
        SILENT: agent_wheel(SILENT, (("agent/core/app.py", "port=config.cloud.port,", "port=9,"),)),
        # Passes --version and --check, then exits as soon as it runs.
        CRASHING: agent_wheel(
            CRASHING,
            (
                (
                    "agent/core/app.py",
                    "        await self.store.open()\n",
                    "        raise OSError('broken on purpose')\n",
                ),
            ),
        ),
    }


@pytest.fixture
async def cloud(wheels: dict[str, Path]) -> AsyncIterator[Cloud]:
    """The cloud, whose newest wheel (the one the install script takes) is the old version."""
    async with serving_cloud([wheels[v] for v in (NEW, SILENT, CRASHING, OLD)]) as serving:
        yield serving


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    base = tmp_path / "base.yml"
    base.write_text(f"upgrade:\n  confirm_timeout: {CONFIRM_TIMEOUT}\n", encoding="utf-8")
    async with node_prefix(tmp_path, BAETYL_BASE_CONFIG=str(base)) as prefix:
        yield prefix


async def core_configs(cloud: Cloud, version: str) -> Any:
    body = {"version": version, "frequency": 2, "apiport": 30050}
    return await cloud.ok("PUT", f"/v1/nodes/{NAME}/core/configs", body)


async def versions(cloud: Cloud) -> dict[str, Any]:
    found: dict[str, Any] = await cloud.ok("GET", f"/v1/nodes/{NAME}/core/versions")
    return found


async def upgrade_state(cloud: Cloud, version: str, state: str) -> dict[str, Any] | None:
    """The versions view once the node reported `state` for an upgrade to `version`."""
    found = await versions(cloud)
    upgrade = found.get("upgrade") or {}
    return found if (upgrade.get("version"), upgrade.get("state")) == (version, state) else None


def the_core(node: Node) -> psutil.Process:
    (core,) = core_processes(node.config)
    return core


async def stop_agent(node: Node) -> None:
    core = the_core(node)
    core.terminate()
    await eventually(lambda: not alive(core.pid), limit=30, what="the agent to stop")


async def test_an_agent_upgrades_itself_refuses_a_bad_digest_and_rolls_broken_versions_back(
    cloud: Cloud, node: Node
) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": NAME, "labels": {"site": "upgrade"}})
    command = (await cloud.ok("GET", f"/v1/nodes/{NAME}/init"))["cmd"]
    code, out = await shell(node, command)
    assert code == 0, out
    start_again = (
        f"{node.prefix}/venv/bin/baetyl-init --no-systemd --prefix {node.prefix} "
        f"--cloud {cloud.url} --token {command.split('token=')[1].split(chr(39))[0]}"
    )
    await cloud.ok(
        "POST",
        "/v1/apps",
        {
            "name": APP,
            "mode": "native",
            "selector": "site=upgrade",
            "services": [
                {"name": "main", "command": [sys.executable, "-c", "import time; time.sleep(900)"]}
            ],
        },
    )
    (app,) = await eventually(
        lambda: app_processes(node.run_dir, APP), limit=60, what="the app process"
    )
    shown = await eventually(
        lambda: _current(cloud, OLD), limit=60, what="the node reporting the old version"
    )
    assert shown["available"] == [OLD, NEW, SILENT, CRASHING]
    assert shown["latest"] == CRASHING
    assert shown["versions"] == [OLD, CRASHING]

    # A version the cloud has no wheel of is refused with the versions it has.
    status, answer = await cloud.call(
        "PUT", f"/v1/nodes/{NAME}/core/configs",
        {"version": "9.9.9", "frequency": 2, "apiport": 30050},
    )  # fmt: skip
    assert status == 400
    assert NEW in answer["message"]

    # 1. The wheel served differs from the digest announced: refused, nothing switches.
    await stop_agent(node)
    await core_configs(cloud, NEW)
    served = next(cloud.dist.glob(f"baetyl_py-{NEW}-*.whl"))
    genuine = served.read_bytes()
    shutil.copyfile(next(cloud.dist.glob(f"baetyl_py-{SILENT}-*.whl")), served)
    code, out = await shell(node, start_again)
    assert code == 0, out
    failed = await eventually(
        lambda: upgrade_state(cloud, NEW, "failed"), limit=UPGRADE_LIMIT, what="a refusal"
    )
    assert "could not be downloaded" in failed["upgrade"]["message"]
    assert "the item says" in failed["upgrade"]["message"]
    assert failed["current"] == OLD
    assert [p.pid for p in app_processes(node.run_dir, APP)] == [app.pid]
    assert not (node.prefix / "var/lib/baetyl/versions" / NEW).exists()

    # 2. The genuine wheel: the agent becomes the new version in place and confirms it.
    served.write_bytes(genuine)
    await stop_agent(node)
    code, out = await shell(node, start_again)
    assert code == 0, out
    core = the_core(node)
    done = await eventually(
        lambda: upgrade_state(cloud, NEW, "done"), limit=UPGRADE_LIMIT, what="the upgrade"
    )
    assert (done["current"], done["previous"], done["wanted"]) == (NEW, OLD, NEW)
    assert done["versions"] == [OLD, NEW, CRASHING]
    assert the_core(node).pid == core.pid  # replaced in place
    assert str(node.prefix / "var/lib/baetyl/versions" / NEW) in " ".join(core.cmdline())
    assert [p.pid for p in app_processes(node.run_dir, APP)] == [app.pid]
    view = await cloud.ok("GET", f"/v1/nodes/{NAME}")
    assert "core" not in (view.get("delta") or {}), view.get("delta")

    # 3. A version that runs but never reports: rolled back to NEW by NEW's guard.
    await core_configs(cloud, SILENT)
    back = await eventually(
        lambda: upgrade_state(cloud, SILENT, "rolledBack"), limit=UPGRADE_LIMIT,
        what="the rollback of a silent version",
    )  # fmt: skip
    assert back["current"] == NEW
    assert "did not connect and report" in back["upgrade"]["message"]
    restarted = the_core(node)
    assert restarted.pid != core.pid  # the guard stopped the silent one and started NEW
    assert int(node.pid_file.read_text()) == restarted.pid
    versions_dir = node.prefix / "var/lib/baetyl/versions"
    assert sorted(p.name for p in versions_dir.iterdir()) == [NEW]  # the silent one is gone
    assert [p.pid for p in app_processes(node.run_dir, APP)] == [app.pid]

    # 4. A version that exits at start: rolled back at once, not after the deadline.
    await core_configs(cloud, CRASHING)
    back = await eventually(
        lambda: upgrade_state(cloud, CRASHING, "rolledBack"), limit=UPGRADE_LIMIT,
        what="the rollback of a crashing version",
    )  # fmt: skip
    assert back["current"] == NEW
    assert "exited before" in back["upgrade"]["message"]
    assert [p.pid for p in app_processes(node.run_dir, APP)] == [app.pid]

    # A rolled-back wheel is not tried again by the agent's next start.
    await stop_agent(node)
    log = node.prefix / "var/log/baetyl/core.log"
    seen = log.read_text(encoding="utf-8").count("not trying again an agent wheel that failed")
    code, out = await shell(node, start_again)
    assert code == 0, out
    await eventually(
        lambda: log.read_text(encoding="utf-8").count(
            "not trying again an agent wheel that failed"
        ) > seen,
        limit=60, what="the agent to pass over the failed wheel",
    )  # fmt: skip
    again = await versions(cloud)
    assert (again["current"], again["upgrade"]["state"]) == (NEW, "rolledBack")


async def _current(cloud: Cloud, version: str) -> dict[str, Any] | None:
    found = await versions(cloud)
    return found if found["current"] == version else None
