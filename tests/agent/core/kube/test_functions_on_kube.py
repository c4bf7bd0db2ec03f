"""A function app on a kube node, end to end: the real cloud, the real agent with the kube
backend, the local node. The runtime runs in the agent's image, behind a ClusterIP Service; the
agent runs `baetyl-function` itself as a system app (a pod on the node's network) and publishes
the Service in the registry it reads; a call to the node's proxy address reaches the function."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from agent.core.kube.client import KubeApi, ObjectRef
from agent.core.sysapps import FUNCTION_PROXY
from tests.agent.core.agent_kit import (
    app_running,
    reported,
    running_core,
    write_core_config,
)
from tests.harness.cloud import CloudServer
from tests.harness.common import free_port
from tests.harness.kube import KubeCluster
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI
from tools.kit.waiting import eventually

pytestmark = [pytest.mark.kube, pytest.mark.mosquitto, pytest.mark.timeout(400)]
CODE = """\
import os


async def greet(event, context):
    return {"greeting": f"hello, {event['name']}", "function": context["functionName"],
            "host": os.environ.get("HOSTNAME", "")}
"""


async def test_a_function_app_runs_on_a_kube_node_behind_the_agents_proxy(
    cloud: CloudServer,
    mosquitto: MosquittoBroker,
    pki: HarnessPKI,
    kube_cluster: KubeCluster,
    kube_admin: KubeApi,
    agent_image: str,
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    name, app_name = f"n-{run}", f"fn-{run}"
    await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": {"run": run}})
    # The code as a zip in the cloud's object store: the node downloads it, and the runtime's
    # pod mounts it from the node (a ConfigMap cannot hold a download).
    await cloud.upload("functions", f"{run}/code.zip", code_zip())
    item = {"type": "object", "source": "local", "bucket": "functions"}
    item |= {"object": f"{run}/code.zip", "unpack": "zip"}
    code = {"name": f"code-{run}", "data": [{"key": "code.zip", "value": item}]}
    code_version = (await cloud.ok("POST", "/v1/configs", code))["version"]
    body = {
        "name": app_name,
        "mode": "kube",
        "type": "function",
        "selector": f"run={run}",
        "services": [
            {
                "name": "py",
                "functionConfig": {"name": f"code-{run}", "runtime": "python3"},
                "functions": [{"name": "greet", "handler": "index.greet"}],
            }
        ],
    }
    app: dict[str, Any] = await cloud.ok("POST", "/v1/apps", body)
    config = write_core_config(
        tmp_path / name,
        f"default.{name}",
        mosquitto=mosquitto,
        pki=pki,
        kubeconfig=kube_cluster.kubeconfig,
    )
    port = free_port()
    settings = yaml.safe_load(config.read_text())
    settings["function"] = {"address": f"127.0.0.1:{port}"}
    settings["kube"]["function_image"] = agent_image
    config.write_text(yaml.safe_dump(settings))
    async with running_core(config, tmp_path / "core.log") as core:
        stats = await eventually(
            lambda: app_running(cloud, name, app_name, app["version"]),
            limit=180,
            what="the function app running, as the cloud sees it",
            detail=lambda: core.log()[-3000:],
        )
        (pod,) = [i["podName"] for i in stats["instances"].values()]

        async def proxy_running() -> dict[str, Any] | None:
            section = await reported(cloud, name)
            found: dict[str, Any] | None = section.get("sysappstats", {}).get(FUNCTION_PROXY)
            return found if found and found["status"] == "Running" else None

        await eventually(
            proxy_running,
            limit=120,
            what="baetyl-function running on the node",
            detail=lambda: core.log()[-3000:],
        )
        registry = json.loads((tmp_path / name / "run" / "services.json").read_text())
        (address,) = registry[app_name]["py"]
        assert address.endswith(":50100")

        async def greeting() -> dict[str, Any] | None:
            url = f"http://127.0.0.1:{port}/{app_name}/greet"
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(url, json={"name": "kube"}) as answer,
                ):
                    if answer.status != 200:
                        return None
                    found: dict[str, Any] = await answer.json()
                    return found
            except aiohttp.ClientError:
                return None

        answer = await eventually(greeting, limit=60, what="the function answering via the proxy")
        assert answer == {"greeting": "hello, kube", "function": "greet", "host": pod}
        volumes = tmp_path / name / "objects" / "volumes"
        assert [p.name for p in volumes.iterdir()] == [f"code-{run}@{code_version}"]

        # The last function app goes: its Deployment, and the proxy's.
        await cloud.ok("DELETE", f"/v1/apps/{app_name}")
        proxy = ObjectRef("apps/v1", "Deployment", "baetyl-edge-system", FUNCTION_PROXY)
        await eventually(
            lambda: _absent(kube_admin, proxy), limit=90, what="the proxy's Deployment deleted"
        )


def code_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", CODE)
    return buffer.getvalue()


async def _absent(api: KubeApi, ref: ObjectRef) -> bool:
    return await api.get(ref) is None
