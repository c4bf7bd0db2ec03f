"""`baetyl-core` with `engine.backend: kube`: the real agent process, the real cloud and broker,
the real local node. The cloud deploys a container app; the agent runs it as a Deployment,
reports it with the Node's facts and the API server's version, leaves it alone across a kill,
and removes it when the cloud says so."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent.core.kube.client import KubeApi, ObjectRef
from tests.agent.core.agent_kit import (
    app_running,
    reported,
    running_core,
    spawn_core,
    write_core_config,
)
from tests.harness.cloud import CloudServer
from tests.harness.kube import KubeCluster
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI
from tools.kit.waiting import eventually
from tools.kube.images import BUSYBOX_IMAGE

pytestmark = [pytest.mark.kube, pytest.mark.mosquitto, pytest.mark.timeout(300)]
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
STARTED = '"baetyl-core started"'
REPAIRED = '"first repair pass done"'


async def test_the_agent_runs_a_container_app_as_a_deployment_and_reports_the_node(
    cloud: CloudServer,
    mosquitto: MosquittoBroker,
    pki: HarnessPKI,
    kube_cluster: KubeCluster,
    kube_admin: KubeApi,
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    name, app_name = f"n-{run}", f"k-{run}"
    await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": {"run": run}})
    body = {
        "name": app_name,
        "mode": "kube",
        "selector": f"run={run}",
        "services": [{"name": "main", "image": BUSYBOX_IMAGE, "command": SLEEP}],
    }
    app: dict[str, Any] = await cloud.ok("POST", "/v1/apps", body)
    config = write_core_config(
        tmp_path / name,
        f"default.{name}",
        mosquitto=mosquitto,
        pki=pki,
        kubeconfig=kube_cluster.kubeconfig,
    )
    log_file = tmp_path / "core.log"
    async with running_core(config, log_file) as core:
        stats = await eventually(
            lambda: app_running(cloud, name, app_name, app["version"]),
            limit=120,
            what="the app running, as the cloud sees it",
            detail=lambda: log_file.read_text(errors="replace")[-3000:],
        )
        (pod,) = [i["podName"] for i in stats["instances"].values()]
        assert pod.startswith(f"{app_name}-")
        section = await reported(cloud, name)
        assert section["core"]["backend"] == "kube"
        assert section["modeinfo"]["gitVersion"].startswith("v1.")
        assert list(section["node"]) == [kube_cluster.node_name]
        assert section["nodestats"][kube_cluster.node_name]["ready"] is True
        ref = ObjectRef("apps/v1", "Deployment", "baetyl-edge", app_name)
        before = await kube_admin.get(ref)
        assert before is not None

        # Killed and started again, the agent changes nothing that runs.
        core.process.send_signal(signal.SIGKILL)
        await core.process.wait()
        core.process = await spawn_core(config, log_file)
        await eventually(
            lambda: log_file.read_text(errors="replace").count(STARTED) == 2,
            what="the agent started again",
        )
        await eventually(
            lambda: log_file.read_text(errors="replace").count(REPAIRED) == 2,
            limit=60,
            what="the new agent's first repair pass",
        )
        assert '"repaired": 0' in log_file.read_text(errors="replace").split(REPAIRED)[-1]
        after = await kube_admin.get(ref)
        assert after is not None
        assert after["metadata"]["generation"] == before["metadata"]["generation"]
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        again = await app_running(cloud, name, app_name, app["version"])
        assert again is not None
        assert [i["podName"] for i in again["instances"].values()] == [pod]

        # The cloud deletes the app: the agent deletes its objects.
        await cloud.ok("DELETE", f"/v1/apps/{app_name}")
        await eventually(lambda: _absent(kube_admin, ref), limit=60, what="the Deployment deleted")


async def _absent(api: KubeApi, ref: ObjectRef) -> bool:
    return await api.get(ref) is None
