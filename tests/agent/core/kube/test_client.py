"""The backend's API client against the real local API server (tools/kube): server-side apply,
lists by label, 422s with the server's message, watches, and the lean import of
kubernetes_asyncio (no generated API or model classes loaded)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from agent.contracts.resources import Application
from agent.core.backend import Deployment, NodeIdentity
from agent.core.kube import render
from agent.core.kube.client import KubeApi, KubeError, ObjectRef
from tests.harness.kube import KubeCluster
from tools.kube.images import BUSYBOX_IMAGE

pytestmark = pytest.mark.kube
IDENTITY = NodeIdentity("tenant", "edge-1")


@pytest.fixture
def api(kube_admin: KubeApi) -> KubeApi:
    return kube_admin


def sleeper(name: str, **fields: Any) -> Application:
    spec: dict[str, Any] = {
        "name": name,
        "version": "1",
        "services": [{"name": "main", "image": BUSYBOX_IMAGE, "command": ["sleep", "3600"]}],
    }
    spec.update(fields)
    return Application.model_validate(spec)


async def apply_all(api: KubeApi, app: Application) -> list[dict[str, Any]]:
    return [await api.apply(o) for o in render.render(Deployment(app), IDENTITY).objects]


async def test_apply_twice_changes_nothing_the_second_time(api: KubeApi) -> None:
    first = await apply_all(api, sleeper("client-idem"))
    again = await apply_all(api, sleeper("client-idem"))
    # The Deployment's status moves on its own (its controller writes it), so its spec is
    # compared by generation; the Namespace has no controller writing it.
    assert again[0]["metadata"]["resourceVersion"] == first[0]["metadata"]["resourceVersion"]
    assert again[-1]["kind"] == "Deployment"
    assert again[-1]["metadata"]["generation"] == first[-1]["metadata"]["generation"] == 1
    managers = {m["manager"] for m in again[-1]["metadata"]["managedFields"]}
    assert "baetyl-core" in managers


async def test_apply_takes_back_a_field_someone_else_changed(api: KubeApi) -> None:
    await apply_all(api, sleeper("client-drift", replica=2))
    ref = ObjectRef("apps/v1", "Deployment", "baetyl-edge", "client-drift")
    await api.request(
        "PATCH",
        "/apis/apps/v1/namespaces/baetyl-edge/deployments/client-drift",
        body={"spec": {"replicas": 5}},
        content_type="application/merge-patch+json",
    )
    edited = await api.get(ref)
    assert edited is not None
    assert edited["spec"]["replicas"] == 5
    await apply_all(api, sleeper("client-drift", replica=2))
    repaired = await api.get(ref)
    assert repaired is not None
    assert repaired["spec"]["replicas"] == 2


async def test_invalid_object_is_a_422_with_the_servers_message(api: KubeApi) -> None:
    services = [
        {
            "name": "main",
            "image": BUSYBOX_IMAGE,
            "resources": {"limits": {"cpu": "100m"}, "requests": {"cpu": "2"}},
        }
    ]
    rendered = render.render(Deployment(sleeper("client-bad", services=services)), IDENTITY)
    await api.apply(rendered.objects[0])  # the namespace
    with pytest.raises(KubeError) as caught:
        await api.apply(rendered.workload)
    assert caught.value.status == 422
    assert caught.value.invalid
    assert "must be less than or equal to cpu limit" in str(caught.value)
    assert await api.get(ObjectRef("apps/v1", "Deployment", "baetyl-edge", "client-bad")) is None


async def test_list_by_label_and_delete(api: KubeApi) -> None:
    await apply_all(api, sleeper("client-list"))
    found = await api.list("Deployment", "baetyl-edge", selector="baetyl-app-name=client-list")
    assert [d["metadata"]["name"] for d in found["items"]] == ["client-list"]
    ref = ObjectRef("apps/v1", "Deployment", "baetyl-edge", "client-list")
    assert await api.delete(ref) is True
    assert await api.delete(ref) is False
    missing = await api.list("ConfigMap", "no-such-namespace")
    assert missing["items"] == []


async def test_watch_sees_an_applied_object(api: KubeApi) -> None:
    listed = await api.list("ConfigMap", "baetyl-edge")
    version = listed["metadata"]["resourceVersion"]
    seen: list[str] = []

    async def watch() -> None:
        # Closed on the way out: an abandoned stream would keep its connection until the
        # garbage collector finds it, in some later test.
        stream = api.watch(
            "ConfigMap", "baetyl-edge", selector="baetyl-managed=true", resource_version=version
        )
        async with contextlib.aclosing(stream):
            async for event in stream:
                seen.append(f"{event['type']} {event['object']['metadata']['name']}")
                if event["object"]["metadata"]["name"] == "watched":
                    return

    watching = asyncio.create_task(watch(), name="test-watch")
    await api.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "watched",
                "namespace": "baetyl-edge",
                "labels": {"baetyl-managed": "true"},
            },
            "data": {"a": "b"},
        }
    )
    await asyncio.wait_for(watching, 30)
    assert "ADDED watched" in seen


def test_the_client_loads_no_generated_api_or_model_class(kube_cluster: KubeCluster) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from agent.core.kube.client import KubeApi

        async def main():
            api = await KubeApi.connect(Path({str(kube_cluster.kubeconfig)!r}))
            print((await api.version())["gitVersion"])
            await api.close()

        asyncio.run(main())
        loaded = [m for m in sys.modules if m.startswith("kubernetes_asyncio.client.models.")
                  or m.startswith("kubernetes_asyncio.client.api.")]
        print(len(loaded))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    version, loaded = done.stdout.split()
    assert version == "v1.20.2"
    assert loaded == "0"
