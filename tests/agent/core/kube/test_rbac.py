"""The install manifest's RBAC (`/v1/init/baetyl-init-deployment.yml`) on the real API server:
the agent's service account can do all the kube backend does — a backend running with only that
account's token applies, watches, reads logs and removes user and system apps — and
SubjectAccessReviews show it can do nothing else (other namespaces, cluster objects, exec,
granting rights)."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.contracts.report import AppStatus
from agent.contracts.resources import Application, Configuration, Secret
from agent.core.backend import Deployment, NodeIdentity
from agent.core.kube.backend import KubeBackend, KubeSettings
from agent.core.kube.client import KubeApi, ObjectRef
from cloud.installer.render import InstallValues, deployment_manifest
from tests.harness.kube import KubeCluster
from tools.kit.waiting import eventually
from tools.kube.images import BUSYBOX_IMAGE

pytestmark = pytest.mark.kube
ACCOUNT = "system:serviceaccount:baetyl-edge-system:baetyl-agent"
RBAC_KINDS = (
    "Namespace",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
)
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]


def manifest_objects() -> list[dict[str, Any]]:
    """The RBAC part of the manifest the cloud serves (the rest needs the agent image)."""
    values = InstallValues(cloud_url="http://127.0.0.1:9004", token="t0ken", nid="default.edge-1")
    text = deployment_manifest(values, image="localhost/baetyl-py/agent:test")
    return [d for d in yaml.safe_load_all(text) if d and d["kind"] in RBAC_KINDS]


@pytest.fixture
async def admin(kube_admin: KubeApi) -> AsyncIterator[KubeApi]:
    """The admin, with the manifest's RBAC objects applied for the test and deleted after."""
    applied = [await kube_admin.apply(manifest) for manifest in manifest_objects()]
    yield kube_admin
    for manifest in reversed(applied):
        if manifest["kind"] != "Namespace":
            await kube_admin.delete(ObjectRef.of(manifest))


@pytest.fixture
async def agent_kubeconfig(admin: KubeApi, kube_cluster: KubeCluster, tmp_path: Path) -> Path:
    """A kubeconfig holding only the agent service account's token (what the pod would have)."""

    async def token() -> str | None:
        found = await admin.list("Secret", "baetyl-edge-system")
        for secret in found["items"]:
            annotations = secret["metadata"].get("annotations", {})
            if (
                secret.get("type") == "kubernetes.io/service-account-token"
                and annotations.get("kubernetes.io/service-account.name") == "baetyl-agent"
            ):
                return base64.b64decode(secret["data"]["token"]).decode()
        return None

    value = await eventually(token, limit=60, what="the service account's token")
    admin_config = yaml.safe_load(kube_cluster.kubeconfig.read_text(encoding="utf-8"))
    cluster = admin_config["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "baetyl-agent", "user": {"token": value}}],
        "contexts": [
            {"name": "agent", "context": {"cluster": cluster["name"], "user": "baetyl-agent"}}
        ],
        "current-context": "agent",
    }
    path = tmp_path / "agent.kubeconfig"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    path.chmod(0o600)
    return path


async def test_the_backend_does_all_it_does_with_the_manifests_rights_alone(
    agent_kubeconfig: Path,
    kube_cluster: KubeCluster,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = KubeBackend(
        NodeIdentity("default", "edge-1"),
        KubeSettings(
            state_dir=tmp_path / "state",
            kubeconfig=agent_kubeconfig,
            node_name=kube_cluster.node_name,
        ),
    )
    await backend.start()
    try:
        config = Configuration(name="rbac-conf", version="1", data={"k": "v"})
        secret = Secret(name="rbac-secret", version="1", data={"s": "x"})
        user = Application.model_validate(
            {
                "name": "rbac-user",
                "version": "1",
                "volumes": [
                    {"name": "conf", "config": {"name": "rbac-conf", "version": "1"}},
                    {"name": "sec", "secret": {"name": "rbac-secret", "version": "1"}},
                ],
                "services": [
                    {
                        "name": "main",
                        "image": BUSYBOX_IMAGE,
                        "command": ["sh", "-c", "echo started; " + SLEEP[2]],
                        "ports": [{"containerPort": 9000}],
                        "volumeMounts": [
                            {"name": "conf", "mountPath": "/etc/conf"},
                            {"name": "sec", "mountPath": "/etc/sec"},
                        ],
                    }
                ],
            }
        )
        system = Application.model_validate(
            {
                "name": "rbac-system",
                "version": "1",
                "system": True,
                "workload": "cronjob",
                "cronTime": "0 3 * * *",
                "services": [{"name": "main", "image": BUSYBOX_IMAGE, "command": ["true"]}],
            }
        )
        await backend.apply(Deployment(user, {"rbac-conf": config}, {"rbac-secret": secret}))
        await backend.apply(Deployment(system))

        def running() -> bool:
            seen = backend.observe()
            return all(
                name in seen and seen[name].status is AppStatus.RUNNING
                for name in ("rbac-user", "rbac-system")
            )

        await eventually(running, limit=90, what="both apps running", detail=backend.observe)
        log = await eventually(
            lambda: _log(backend, "rbac-user"), limit=60, what="the user app's log"
        )
        assert "started" in log
        facts = await backend.node_facts()
        assert facts is not None
        assert facts.info.hostname == kube_cluster.node_name
        await backend.remove("rbac-user")
        await backend.remove("rbac-system")
        assert backend.observe() == {}
        assert backend.rollout_failures() == {}
    finally:
        await backend.close()
    # Watches and pruning only log what the server refuses: a 403 anywhere is a missing right.
    # (The message and the error field only: a record's timestamps may hold "403" too.)
    refused = [
        r.__dict__
        for r in caplog.records
        if re.search(r"\b403\b", f"{r.getMessage()} {getattr(r, 'error', '')}")
    ]
    assert refused == []


async def _log(backend: KubeBackend, app: str) -> str | None:
    text = await backend.logs(app, tail_lines=5, since_seconds=None)
    return text if "started" in text else None


ALLOWED = [
    ("patch", "apps", "deployments", "baetyl-edge", ""),
    ("delete", "batch", "jobs", "baetyl-edge", ""),
    ("watch", "", "pods", "baetyl-edge-system", ""),
    ("get", "", "pods/log", "baetyl-edge", ""),
    ("create", "", "secrets", "baetyl-edge-system", ""),
    ("get", "", "nodes", "", ""),
    ("get", "", "namespaces", "", "baetyl-edge"),
    ("list", "metrics.k8s.io", "pods", "baetyl-edge", ""),
]
DENIED = [
    ("patch", "apps", "deployments", "default", ""),
    ("get", "", "secrets", "kube-system", ""),
    ("list", "", "pods", "default", ""),
    ("create", "", "pods/exec", "baetyl-edge", ""),
    ("create", "", "pods", "baetyl-edge", ""),
    ("patch", "", "nodes", "", ""),
    ("delete", "", "namespaces", "", "baetyl-edge"),
    ("get", "", "namespaces", "", "kube-system"),
    ("create", "rbac.authorization.k8s.io", "rolebindings", "baetyl-edge", ""),
    ("create", "rbac.authorization.k8s.io", "clusterroles", "", ""),
    ("escalate", "rbac.authorization.k8s.io", "roles", "baetyl-edge", ""),
    ("impersonate", "", "serviceaccounts", "kube-system", ""),
    ("create", "certificates.k8s.io", "certificatesigningrequests", "", ""),
    ("list", "metrics.k8s.io", "pods", "kube-system", ""),
]


async def _may(api: KubeApi, verb: str, group: str, resource: str, ns: str, name: str) -> bool:
    resource, _, subresource = resource.partition("/")
    attributes = {"verb": verb, "group": group, "resource": resource}
    attributes |= {k: v for k, v in (("subresource", subresource), ("namespace", ns)) if v}
    if name:
        attributes["name"] = name
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": ACCOUNT, "resourceAttributes": attributes},
    }
    answer = await api.request(
        "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=review
    )
    return bool(answer["status"].get("allowed"))


@pytest.mark.parametrize(("verb", "group", "resource", "namespace", "name"), ALLOWED)
async def test_the_agent_may(
    admin: KubeApi, verb: str, group: str, resource: str, namespace: str, name: str
) -> None:
    assert await _may(admin, verb, group, resource, namespace, name)


@pytest.mark.parametrize(("verb", "group", "resource", "namespace", "name"), DENIED)
async def test_the_agent_may_not(
    admin: KubeApi, verb: str, group: str, resource: str, namespace: str, name: str
) -> None:
    assert not await _may(admin, verb, group, resource, namespace, name)
