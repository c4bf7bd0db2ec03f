"""The local Kubernetes itself (tools/kube): a real pod runs on the node, answers on loopback,
has its logs served and its limits applied; the fixture checks that `down` leaves the host clean.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.api_client import ApiClient

from tests.harness.common import free_port
from tests.harness.kube import KubeCluster
from tools.kit.waiting import eventually
from tools.kube.images import BUSYBOX_IMAGE

pytestmark = pytest.mark.kube
NAMESPACE = "harness-check"


@pytest.fixture
async def api(kube_cluster: KubeCluster) -> AsyncIterator[ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(kube_cluster.kubeconfig), client_configuration=configuration
    )
    async with ApiClient(configuration) as api_client:
        yield api_client


async def test_a_pod_runs_answers_logs_and_is_limited(
    api: ApiClient, kube_cluster: KubeCluster
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": NAMESPACE}})
    port = free_port()
    pod = {
        "metadata": {"name": "web"},
        "spec": {
            "hostNetwork": True,
            "containers": [
                {
                    "name": "web",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["/bin/sh", "-c"],
                    "args": [
                        f"echo hello > /tmp/index.html; echo serving; "
                        f"exec httpd -f -p 127.0.0.1:{port} -h /tmp"
                    ],
                    "resources": {"limits": {"cpu": "100m", "memory": "24Mi"}},
                }
            ],
        },
    }
    try:

        async def token_made() -> bool:
            # A pod is refused until the namespace's default service account has its token.
            accounts = await core.list_namespaced_service_account(NAMESPACE)
            return any(account.secrets for account in accounts.items)

        await eventually(token_made, limit=60, what="the default service account's token")
        await core.create_namespaced_pod(NAMESPACE, pod)

        async def running() -> bool:
            found = await core.read_namespaced_pod("web", NAMESPACE)
            return bool(found.status.phase == "Running")

        await eventually(running, limit=60, what="pod web Running", poll=0.2)
        async with aiohttp.ClientSession() as session:

            async def answered() -> str | None:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/index.html") as answer:
                        return await answer.text()
                except aiohttp.ClientError:
                    return None

            assert (await eventually(answered, what="httpd answers")).strip() == "hello"
        logs = await core.read_namespaced_pod_log("web", NAMESPACE)
        assert "serving" in logs
        found = await core.read_namespaced_pod("web", NAMESPACE)
        uid = found.metadata.uid
        limits = list(
            Path("/sys/fs/cgroup/memory/kubepods").rglob(f"pod{uid}/memory.limit_in_bytes")
        )
        assert limits, "no memory cgroup for the pod"
        assert int(limits[0].read_text()) == 24 * 1024 * 1024
    finally:
        await core.delete_namespace(NAMESPACE)


async def test_nobody_without_a_certificate_gets_in(kube_cluster: KubeCluster) -> None:
    # The API server on loopback and the kubelet on the machine's address both refuse a caller
    # without a client certificate of the cluster's CA, and the keys are the owner's alone.
    ports = kube_cluster.state.ports
    anonymous = ssl.create_default_context()
    anonymous.check_hostname = False
    anonymous.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession() as session:
        for url in (
            f"https://127.0.0.1:{ports['apiserver']}/api/v1/secrets",
            f"https://{kube_cluster.node_ip}:{ports['kubelet']}/pods",
        ):
            async with session.get(url, ssl=anonymous) as answer:
                assert answer.status in (401, 403), url
    for key in kube_cluster.layout.pki.glob("*.key"):
        assert key.stat().st_mode & 0o077 == 0, key
    assert kube_cluster.kubeconfig.stat().st_mode & 0o077 == 0
