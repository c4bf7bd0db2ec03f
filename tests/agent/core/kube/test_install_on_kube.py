"""Installing a node on Kubernetes for real: the manifest the cloud serves
(`/v1/init/baetyl-init-deployment.yml`) applied to the local cluster, the agent image built
offline from the wheel (tools/kube/agent_image.py), baetyl-init activating the node from an init
container, baetyl-core running in the pod with the service account's rights only, and an app
the cloud deploys running as a Deployment the agent made."""

from __future__ import annotations

import contextlib
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.core.kube.client import KubeApi, KubeError, ObjectRef
from tests.agent.core.agent_kit import app_running, reported
from tests.harness.cloud import CloudServer
from tools.kit.waiting import eventually
from tools.kube.images import BUSYBOX_IMAGE

pytestmark = [pytest.mark.kube, pytest.mark.mosquitto, pytest.mark.timeout(400)]
HOST_STATE = Path("/var/lib/baetyl-py")  # the manifest's hostPath: the node's identity
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]


@pytest.fixture
def host_state() -> Any:
    """The host directory the manifest keeps the node's files in; never one that was there."""
    if HOST_STATE.exists():
        pytest.skip(f"{HOST_STATE} exists (a node installed here?): this test does not touch it")
    yield HOST_STATE
    shutil.rmtree(HOST_STATE, ignore_errors=True)


async def test_the_served_manifest_runs_the_agent_in_the_cluster_and_it_deploys_an_app(
    cloud: CloudServer, kube_admin: KubeApi, agent_image: str, host_state: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    name, app_name = f"k3s-{run}", f"in-{run}"
    await cloud.ok("POST", "/v1/nodes", {"name": name, "nodeMode": "kube", "labels": {"run": run}})
    command = (await cloud.ok("GET", f"/v1/nodes/{name}/init"))["cmd"]
    (url,) = re.findall(r"'(http[^']+baetyl-init-deployment\.yml\?token=[^']+)'", command)
    answer = await cloud.call("GET", url.removeprefix(cloud.url), anonymous=True)
    assert answer.status == 200, answer.body
    documents = [d for d in yaml.safe_load_all(answer.body) if d]
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == agent_image

    applied = [await kube_admin.apply(document) for document in documents]
    try:
        await eventually(
            lambda: _online(cloud, kube_admin, name),
            limit=90,
            what="the node online, its agent running in the cluster",
            detail=lambda: _agent_pod(kube_admin),
        )
        body = {
            "name": app_name,
            "mode": "kube",
            "selector": f"run={run}",
            "services": [{"name": "main", "image": BUSYBOX_IMAGE, "command": SLEEP}],
        }
        app = await cloud.ok("POST", "/v1/apps", body)
        await eventually(
            lambda: app_running(cloud, name, app_name, app["version"]),
            limit=120,
            what="the app running, deployed by the agent in the pod",
        )
        made = await kube_admin.get(ObjectRef("apps/v1", "Deployment", "baetyl-edge", app_name))
        assert made is not None
        managers = {m["manager"] for m in made["metadata"]["managedFields"]}
        assert "baetyl-core" in managers
        section = await reported(cloud, name)
        assert section["core"]["backend"] == "kube"
        assert section["modeinfo"]["gitVersion"].startswith("v1.")
        await cloud.ok("DELETE", f"/v1/apps/{app_name}")
        await eventually(
            lambda: _absent(kube_admin, "baetyl-edge", app_name), limit=60, what="the app deleted"
        )
    finally:
        for manifest in reversed(applied):
            if manifest["kind"] != "Namespace":
                with contextlib.suppress(Exception):
                    await kube_admin.delete(ObjectRef.of(manifest))
        await eventually(
            lambda: _no_agent_pod(kube_admin), limit=60, what="the agent pod to be gone"
        )


async def _online(cloud: CloudServer, api: KubeApi, name: str) -> bool:
    """The node is online; a failed container of the agent's pod fails the test with its log."""
    found = await api.list("Pod", "baetyl-edge-system")
    for pod in found["items"]:
        status = pod.get("status", {})
        for container in [
            *status.get("initContainerStatuses", []),
            *status.get("containerStatuses", []),
        ]:
            ended = container.get("lastState", {}).get("terminated") or {}
            if ended.get("exitCode"):
                log = await api.logs(
                    "baetyl-edge-system",
                    pod["metadata"]["name"],
                    container["name"],
                    tail_lines=40,
                    since_seconds=None,
                )
                pytest.fail(f"{container['name']} failed ({ended}):\n{log}")
    node = await cloud.ok("GET", f"/v1/nodes/{name}")
    return bool(node.get("ready") == 1)


async def _agent_pod(api: KubeApi) -> str:
    """The agent pod's phase and the end of baetyl-core's log."""
    found = await api.list("Pod", "baetyl-edge-system")
    said = []
    for pod in found["items"]:
        name = pod["metadata"]["name"]
        try:
            log = await api.logs(
                "baetyl-edge-system", name, "baetyl-core", tail_lines=40, since_seconds=None
            )
        except KubeError as exc:
            log = str(exc)
        said.append(f"{name} {pod.get('status', {}).get('phase')}:\n{log}")
    return "\n".join(said) or "no agent pod"


async def _no_agent_pod(api: KubeApi) -> bool:
    found = await api.list("Pod", "baetyl-edge-system")
    return not found["items"]


async def _absent(api: KubeApi, namespace: str, name: str) -> bool:
    return await api.get(ObjectRef("apps/v1", "Deployment", namespace, name)) is None
