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


async def test_services_route_from_the_host_and_from_pods_and_node_ports_stay_on_loopback(
    api: ApiClient, kube_cluster: KubeCluster
) -> None:
    """kube-proxy (decision #137): a ClusterIP reaches a pod on the bridge from the host and
    from another pod of the same bridge; a NodePort answers on 127.0.0.1, not on the node's
    network address."""
    core = client.CoreV1Api(api)
    namespace = "harness-services"
    await core.create_namespace({"metadata": {"name": namespace}})
    serve = "echo routed > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"
    node_port = 30777

    def pod(name: str, command: str, labels: dict[str, str]) -> dict[str, object]:
        return {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "containers": [
                    {
                        "name": name,
                        "image": BUSYBOX_IMAGE,
                        "imagePullPolicy": "Never",
                        "command": ["/bin/sh", "-c", command],
                    }
                ]
            },
        }

    service = {
        "metadata": {"name": "web"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 8080, "nodePort": node_port}],
        },
    }
    try:

        async def token_made() -> bool:
            accounts = await core.list_namespaced_service_account(namespace)
            return any(account.secrets for account in accounts.items)

        await eventually(token_made, limit=60, what="the default service account's token")
        created = await core.create_namespaced_service(namespace, service)
        cluster_ip = created.spec.cluster_ip
        await core.create_namespaced_pod(namespace, pod("web", serve, {"app": "web"}))
        # The client fetches through the Service's address and says what it got, in its log
        # (no `-T`: Debian's static busybox wget crashes with it).
        fetch = (
            f"until wget -q -O - http://{cluster_ip}/index.html; do sleep 0.5; done; "
            "exec sleep 3600"
        )
        await core.create_namespaced_pod(namespace, pod("client", fetch, {"app": "client"}))

        async def client_log() -> str | None:
            try:
                text = str(await core.read_namespaced_pod_log("client", namespace) or "")
            except client.ApiException:
                return None  # not started yet
            return text if "routed" in text else None

        await eventually(client_log, limit=90, what="the pod fetching through the ClusterIP")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:

            async def fetched(url: str) -> str | None:
                try:
                    async with session.get(url) as answer:
                        return await answer.text()
                except (aiohttp.ClientError, TimeoutError):
                    return None

            for url in (f"http://{cluster_ip}/index.html", f"http://127.0.0.1:{node_port}/"):
                text = await eventually(lambda url=url: fetched(url), limit=30, what=url)
                assert text.strip() == "routed"
            assert await fetched(f"http://{kube_cluster.node_ip}:{node_port}/") is None
    finally:
        await core.delete_namespace(namespace)
