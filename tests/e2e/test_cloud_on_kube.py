"""The cloud on Kubernetes, as an operator runs it: the image built offline from the wheel
(tools/kube/cloud_image.py), the manifests `baetyl-cloud kube-manifest` prints, applied with
kubectl to the local node (kube-proxy routing the Services), PostgreSQL outside the cluster
reached with a password, two REST replicas and the broker pod. A node on the host then activates
through the REST Service, comes online through the broker's NodePort, runs an app, and is shut
out by the broker once deleted through either replica."""

from __future__ import annotations

import asyncio
import re
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest

from agent.core.kube.client import KubeApi, ObjectRef
from agent.init.files import Layout
from cloud.kube_manifest import CLOUD, REST_PORT
from tests.agent.core.agent_kit import app_body, app_running, python_service, reported
from tests.harness.kube import KubeCluster
from tests.harness.postgres import PostgresCluster
from tests.harness.wheel import agent_wheel
from tools.kit.node import NodeInstall
from tools.kit.rest import Rest, healthy
from tools.kit.waiting import eventually
from tools.kube import cloud_image
from tools.kube.cluster import import_archive
from tools.kube.layout import BIN, POD_SUBNET

pytestmark = [pytest.mark.kube, pytest.mark.timeout(600)]
BINDIR = Path(sys.executable).parent
NAMESPACE = "baetyl-cloud-e2e"
REST_NODE_PORT = 30104
MQTT_NODE_PORT = 30983
PUBLIC = f"http://127.0.0.1:{REST_NODE_PORT}"
SERVER = (
    "import http.server as h; "
    "h.HTTPServer(('127.0.0.1', 0), h.BaseHTTPRequestHandler).serve_forever()"
)


@pytest.fixture
async def image(kube_cluster: KubeCluster) -> str:
    """The cloud image, built from the wheel of the working tree and imported into the node."""
    wheel = await asyncio.to_thread(agent_wheel)
    archive = await asyncio.to_thread(cloud_image.build, wheel)
    await import_archive(kube_cluster.layout, archive)
    return cloud_image.DEFAULT_REFERENCE


@pytest.fixture
def database(kube_cluster: KubeCluster) -> Iterator[str]:
    """A PostgreSQL on the host that pods reach at the node's address, with a password."""
    cluster = PostgresCluster(also_listen=kube_cluster.node_ip)
    try:
        server = cluster.allow_password(POD_SUBNET)
        cluster.create_database("baetyl_kube")
        yield f"{server}/baetyl_kube"
    finally:
        cluster.stop()


def kubectl(cluster: KubeCluster, *args: str, stdin: str | None = None) -> str:
    """Run kubectl as the cluster admin; its output, or an AssertionError with its errors."""
    done = subprocess.run(
        [str(BIN / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture
async def deployed(
    kube_cluster: KubeCluster, image: str, database: str, tmp_path: Path
) -> AsyncIterator[Path]:
    """The manifests applied; the keys directory they were rendered from. Removed after."""
    keys = tmp_path / "keys"
    render = await asyncio.create_subprocess_exec(
        str(BINDIR / "baetyl-cloud"), "--log-level", "warning", "kube-manifest",
        "--public-host", "127.0.0.1", "--keys-dir", str(keys), "--db", database,
        "--namespace", NAMESPACE, "--image", image, "--replicas", "2",
        "--rest-node-port", str(REST_NODE_PORT), "--mqtt-node-port", str(MQTT_NODE_PORT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    manifest, errors = await render.communicate()
    assert render.returncode == 0, errors.decode()
    await asyncio.to_thread(kubectl, kube_cluster, "apply", "-f", "-", stdin=manifest.decode())
    try:
        yield keys
    finally:
        await asyncio.to_thread(
            kubectl, kube_cluster, "delete", "namespace", NAMESPACE, "--wait=true", "--timeout=90s"
        )


async def pods_ready(api: KubeApi) -> list[dict[str, Any]] | None:
    """The namespace's three pods once all are Ready."""
    pods = (await api.list("Pod", NAMESPACE))["items"]
    ready = [
        pod
        for pod in pods
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
    ]
    return ready if len(ready) == 3 and len(pods) == 3 else None


async def pod_report(api: KubeApi) -> str:
    """Each pod's phase, restarts and last log lines: what a failure shows."""
    lines = []
    for pod in (await api.list("Pod", NAMESPACE))["items"]:
        name = pod["metadata"]["name"]
        statuses = pod.get("status", {}).get("containerStatuses", [])
        restarts = sum(s.get("restartCount", 0) for s in statuses)
        lines.append(f"{name}: {pod.get('status', {}).get('phase')} restarts={restarts}")
        container = pod["spec"]["containers"][0]["name"]
        try:
            log = await api.logs(NAMESPACE, name, container, tail_lines=8, since_seconds=None)
        except Exception as exc:
            log = f"(no log: {exc})"
        lines += [f"    {line[:300]}" for line in log.splitlines()]
    return "\n".join(lines)


async def broker_lets_in(layout: Layout, nid: str) -> bool:
    """Whether the broker's NodePort accepts an MQTT connection with the node's certificate."""
    context = ssl.create_default_context(cafile=str(layout.ca_file))
    context.load_cert_chain(layout.cert_file, layout.key_file)
    try:
        async with aiomqtt.Client(
            "127.0.0.1", MQTT_NODE_PORT, identifier=nid, timeout=5, tls_context=context
        ):
            return True
    except aiomqtt.MqttError:
        return False


async def test_the_cloud_runs_on_kubernetes_with_two_replicas_and_serves_a_node(
    kube_cluster: KubeCluster, deployed: Path, tmp_path: Path
) -> None:
    api = await KubeApi.connect(kube_cluster.kubeconfig)
    node = NodeInstall(tmp_path / "node")
    try:
        pods = await eventually(
            lambda: pods_ready(api),
            limit=180,
            what="the broker and both REST replicas Ready",
            detail=lambda: pod_report(api),
        )
        names = sorted(pod["metadata"]["name"] for pod in pods)
        assert names[1:] == [f"{CLOUD}-0", f"{CLOUD}-1"]
        assert names[0].startswith("baetyl-broker-")

        async def both_ready() -> bool:
            # The controller's count follows the pods' readiness a moment later.
            found = await api.get(ObjectRef("apps/v1", "StatefulSet", NAMESPACE, CLOUD))
            return found is not None and found.get("status", {}).get("readyReplicas") == 2

        await eventually(both_ready, limit=60, what="the StatefulSet counting 2 ready replicas")

        # The operator's first token, made in a replica against the shared database.
        exec_token = (
            "-n", NAMESPACE, "exec", f"{CLOUD}-0", "--", "baetyl-cloud", "--log-level", "warning",
            "token", "create", "--data-dir", "/var/lib/baetyl-cloud",
        )  # fmt: skip
        token = (await asyncio.to_thread(kubectl, kube_cluster, *exec_token)).strip()
        async with aiohttp.ClientSession() as session:
            assert await healthy(session, PUBLIC)
            cloud = Rest(session, PUBLIC, token)
            # Each replica on its own (pod addresses) sees what the other wrote.
            direct = {
                pod["metadata"]["name"]: Rest(
                    session, f"http://{pod['status']['podIP']}:{REST_PORT}", token
                )
                for pod in pods
                if pod["metadata"]["name"].startswith(CLOUD)
            }
            run = uuid.uuid4().hex[:6]
            name = f"edge-{run}"
            await direct[f"{CLOUD}-1"].ok("POST", "/v1/nodes", {"name": name, "labels": {"r": run}})
            assert (await direct[f"{CLOUD}-0"].ok("GET", f"/v1/nodes/{name}"))["name"] == name

            # The install command names the public addresses; its wheel is the image's.
            command = (await cloud.ok("GET", f"/v1/nodes/{name}/init"))["cmd"]
            assert f"'{PUBLIC}/v1/init/baetyl-install.sh?token=" in command
            (install_token,) = re.findall(r"token=([^'&]+)'", command)
            script_url = f"{PUBLIC}/v1/init/baetyl-install.sh?token={install_token}"
            async with session.get(script_url) as answer:
                script = await answer.text()
                assert answer.status == 200, script
            wheel = await asyncio.to_thread(agent_wheel)
            assert f"WHEEL_FILE={wheel.name}" in script
            async with session.get(f"{PUBLIC}/v1/init/dist/{wheel.name}") as answer:
                assert answer.status == 200
                assert await answer.read() == wheel.read_bytes()

            # A node on the host activates through the REST Service and comes online through
            # the broker's NodePort; an app reaches it through whichever replica.
            init = await asyncio.create_subprocess_exec(
                str(BINDIR / "baetyl-init"), "--cloud", PUBLIC, "--token", install_token,
                "--prefix", str(node.prefix), "--no-systemd",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            output, _ = await init.communicate()
            assert init.returncode == 0, output.decode()
            assert "the node is online" in output.decode()
            nid = f"default.{name}"
            app = await cloud.ok(
                "POST", "/v1/apps", app_body(f"web-{run}", f"r={run}", python_service(SERVER))
            )
            await eventually(
                lambda: app_running(cloud, name, f"web-{run}", app["version"]),
                limit=90,
                what="the app running on the node",
            )
            assert (await reported(cloud, name))["core"]["backend"] == "native"

            # Deleted through one replica, the node is shut out by the broker pod, which reads
            # the revocation from the database (`baetyl-cloud broker --sync-interval`).
            layout = Layout(node.prefix)
            await asyncio.to_thread(node.stop)
            assert await broker_lets_in(layout, nid)
            await direct[f"{CLOUD}-0"].ok("DELETE", f"/v1/nodes/{name}")
            await eventually(
                lambda: _refused(layout, nid),
                limit=30,
                what="the deleted node's certificate refused",
            )
    finally:
        await asyncio.to_thread(node.stop)
        await api.close()


async def _refused(layout: Layout, nid: str) -> bool:
    return not await broker_lets_in(layout, nid)
