"""baetyl-core against the real cloud and broker: a rollout that fails on the node is reported
as Failed with its cause in the cloud, and retried with the app's backoff until it succeeds.

The spec passes the cloud's checks (they cannot know the node): its hostPath volume lies under
a path that is a plain file on this node, so materialising the instance fails at runtime.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from agent.core.app import Core
from tests.agent.core import test_core_with_cloud
from tests.agent.core.agent_kit import SLEEPER, app_body, app_running, python_service, reported
from tests.agent.core.test_core_with_cloud import RunningCore
from tests.harness.cloud import CloudServer
from tools.kit.waiting import eventually

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(120)]

running_core = test_core_with_cloud.running_core  # the same fixture: a Core in this loop


async def _failed_with_cause(cloud: CloudServer, node: str, app: str, version: str) -> str:
    stats = (await reported(cloud, node)).get("appstats", {}).get(app)
    if stats and stats["version"] == version and stats["status"] == "Failed":
        return str(stats.get("cause", ""))
    return ""


async def test_a_rollout_failing_on_the_node_is_reported_with_its_cause_and_retried(
    cloud: CloudServer, running_core: RunningCore, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    node = f"n-{run}"
    await cloud.ok("POST", "/v1/nodes", {"name": node, "labels": {"run": run}})
    blocker = tmp_path / f"blocker-{run}"
    blocker.write_text("a file where the app wants a directory")
    service = python_service(SLEEPER)
    service["volumeMounts"] = [{"name": "data", "mountPath": "data"}]
    volume = {
        "name": "data",
        "hostPath": {"path": str(blocker / "data"), "type": "DirectoryOrCreate"},
    }
    body = app_body(f"fails-{run}", f"run={run}", service, volumes=[volume])
    core: Core
    async with running_core(f"default.{node}") as core:
        app = await cloud.ok("POST", "/v1/apps", body)
        cause = await eventually(
            lambda: _failed_with_cause(cloud, node, app["name"], app["version"]),
            limit=30,
            what="the app reported Failed with a cause",
        )
        assert "volume 'data'" in cause
        assert "Not a directory" in cause
        attempts = core.engine.reconciles
        blocker.unlink()  # the node is repaired: the next retry (backoff 1 s doubling) succeeds
        stats = await eventually(
            lambda: app_running(cloud, node, app["name"], app["version"]),
            limit=40,
            what="the app running after a retry",
        )
        assert core.engine.reconciles > attempts
        assert not stats.get("cause")
        assert (blocker / "data").is_dir()
