"""The Kubernetes backend against the real local node (tools/kube): real pods, real controllers.

Each test applies its own apps (unique names) and removes them; a fixture deletes whatever a
failed test left, so the next test starts from empty namespaces. Waits are on the backend's
watched state or the API server's, never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.contracts.report import AppStats, AppStatus
from agent.contracts.resources import Application, Configuration, Secret
from agent.core.backend import DeployError, Deployment, NodeIdentity
from agent.core.kube.backend import KubeBackend, KubeSettings
from agent.core.kube.client import KubeApi, KubeError, ObjectRef
from tests.harness.common import free_port
from tests.harness.kube import KubeCluster
from tools.kit.waiting import eventually
from tools.kube.images import BUSYBOX_IMAGE

pytestmark = pytest.mark.kube
IDENTITY = NodeIdentity("tenant", "edge-1")
NS = "baetyl-edge"
# PID 1 of a container ignores SIGTERM unless it handles it: without the trap each deleted pod
# would take its whole 30 s grace period.
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
LIMIT = 90.0


@pytest.fixture
async def admin(kube_admin: KubeApi) -> AsyncIterator[KubeApi]:
    """The cluster's admin; whatever managed object a test leaves is deleted afterwards."""
    yield kube_admin
    await _delete_managed(kube_admin)


async def _delete_managed(api: KubeApi) -> None:
    kinds = {
        "Deployment": "apps/v1",
        "DaemonSet": "apps/v1",
        "StatefulSet": "apps/v1",
        "Job": "batch/v1",
        "CronJob": "batch/v1beta1",
        "Service": "v1",
        "ConfigMap": "v1",
        "Secret": "v1",
    }
    for namespace in ("baetyl-edge", "baetyl-edge-system"):
        for kind, version in kinds.items():
            found = await api.list(
                kind, namespace, selector="baetyl-managed=true", api_version=version
            )
            for item in found["items"]:
                ref = ObjectRef(version, kind, namespace, item["metadata"]["name"])
                await api.delete(ref)


BackendFactory = Callable[..., Awaitable[KubeBackend]]


@pytest.fixture
async def make_backend(
    kube_cluster: KubeCluster, tmp_path: Path, admin: KubeApi
) -> AsyncIterator[BackendFactory]:
    """Start a backend (state in tmp_path/state unless told); all are closed at the end."""
    started: list[KubeBackend] = []

    async def make(state: Path | None = None, repair_interval: float = 30.0) -> KubeBackend:
        backend = KubeBackend(
            IDENTITY,
            KubeSettings(
                state_dir=state or tmp_path / "state",
                kubeconfig=kube_cluster.kubeconfig,
                node_name=kube_cluster.node_name,
                repair_interval=repair_interval,
            ),
        )
        await backend.start()
        started.append(backend)
        return backend

    try:
        yield make
    finally:
        for backend in started:
            await backend.close()


def app(name: str, version: str = "1", **fields: Any) -> Application:
    services = fields.pop("services", None) or [
        {"name": "main", "image": BUSYBOX_IMAGE, "command": SLEEP}
    ]
    return Application.model_validate(
        {"name": name, "version": version, "services": services, **fields}
    )


async def until(
    backend: KubeBackend, name: str, check: Callable[[AppStats], bool], what: str
) -> AppStats:
    """The app's stats once `check` holds (the backend's watched view)."""

    def probe() -> AppStats | None:
        stats = backend.observe().get(name)
        return stats if stats is not None and check(stats) else None

    return await eventually(
        probe, limit=LIMIT, poll=0.1, what=what, detail=lambda: repr(backend.observe().get(name))
    )


def running(count: int) -> Callable[[AppStats], bool]:
    return lambda s: s.status is AppStatus.RUNNING and len(s.instances) == count


async def objects(api: KubeApi, kind: str, app_name: str, *, version: str = "") -> list[str]:
    found = await api.list(kind, NS, selector=f"baetyl-app-name={app_name}", api_version=version)
    return sorted(item["metadata"]["name"] for item in found["items"])


async def test_a_deployment_runs_rolls_without_dropping_ready_pods_and_is_removed(
    make_backend: BackendFactory, admin: KubeApi
) -> None:
    backend = await make_backend()
    await backend.apply(Deployment(app("roll", replica=2)))
    first = await until(backend, "roll", running(2), "two pods running")
    assert first.version == "1"
    assert all(i.restarts == 0 and i.pod_name for i in first.instances.values())

    available: list[int] = []
    listed = await admin.list("Deployment", NS, selector="baetyl-app-name=roll")

    async def watch() -> None:
        async for event in admin.watch(
            "Deployment",
            NS,
            selector="baetyl-app-name=roll",
            resource_version=listed["metadata"]["resourceVersion"],
        ):
            status = event["object"].get("status", {})
            available.append(int(status.get("availableReplicas", 0)))
            if (
                event["object"]["metadata"].get("annotations", {}).get("baetyl-app-version") == "2"
                and status.get("updatedReplicas") == 2
                and status.get("replicas") == 2
            ):
                return

    watching = asyncio.create_task(watch(), name="test-watch-roll")
    await backend.apply(Deployment(app("roll", "2", replica=2)))
    await asyncio.wait_for(watching, LIMIT)
    second = await until(
        backend,
        "roll",
        lambda s: (
            s.version == "2" and running(2)(s) and not set(s.instances) & set(first.instances)
        ),
        "two new pods",
    )
    assert second.status is AppStatus.RUNNING
    assert min(available) >= 2, f"ready pods dropped below 2 during the rollout: {available}"
    assert len(await objects(admin, "ReplicaSet", "roll")) == 2  # a new ReplicaSet, not recreated

    await backend.remove("roll")
    assert "roll" not in backend.observe()
    assert await objects(admin, "Deployment", "roll") == []
    await eventually(
        lambda: _no_pods(admin, "roll"), limit=LIMIT, what="the pods of roll to be gone"
    )


async def _no_pods(api: KubeApi, name: str) -> bool:
    return await objects(api, "Pod", name) == []


async def test_daemonset_statefulset_job_and_cronjob_apply_update_and_remove(
    make_backend: BackendFactory, admin: KubeApi
) -> None:
    backend = await make_backend()
    once = [{"name": "main", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", "echo done"]}]
    apps = {
        "daemon": app("daemon", workload="daemonset"),
        "state": app("state", workload="statefulset"),
        "once": app("once", workload="job", services=once),
        "timer": app("timer", workload="cronjob", cron_time="*/5 * * * *", services=once),
    }
    for spec in apps.values():
        await backend.apply(Deployment(spec))
    await until(backend, "daemon", running(1), "the daemon set's pod running")
    await until(backend, "state", running(1), "the stateful set's pod running")
    done = await until(
        backend, "once", lambda s: s.status is AppStatus.SUCCEEDED, "the job succeeded"
    )
    assert [i.status for i in done.instances.values()] == [AppStatus.SUCCEEDED]
    timer = await until(backend, "timer", lambda s: s.status is AppStatus.RUNNING, "the cron job")
    assert timer.cron_job is not None  # the CronJob's schedule, as a native node reports it
    assert timer.cron_job.schedule == "*/5 * * * *"
    assert timer.cron_job.next_schedule_time is not None
    assert timer.cron_job.next_schedule_time.minute % 5 == 0
    assert await objects(admin, "StatefulSet", "state") == ["state"]
    assert await objects(admin, "CronJob", "timer", version="batch/v1beta1") == ["timer"]
    first_job = await objects(admin, "Job", "once")

    # A Job cannot change: the new version is a new Job and the old one is pruned.
    await backend.apply(Deployment(app("once", "2", workload="job", services=once)))
    await until(
        backend, "once", lambda s: s.version == "2" and s.status is AppStatus.SUCCEEDED, "job 2"
    )
    second_job = await objects(admin, "Job", "once")
    assert len(second_job) == 1
    assert second_job != first_job
    await backend.apply(Deployment(app("state", "2", workload="statefulset")))
    await until(
        backend,
        "state",
        lambda s: s.version == "2" and running(1)(s) and "state-0" in s.instances,
        "stateful set at version 2",
    )

    for name in apps:
        await backend.remove(name)
    assert backend.observe() == {}
    for kind, version in (
        ("DaemonSet", ""),
        ("StatefulSet", ""),
        ("Job", ""),
        ("CronJob", "batch/v1beta1"),
    ):
        for name in apps:
            # What the garbage collector removes (a Job the cron job started just now, pods)
            # goes a moment after its owner: deletion in Kubernetes is asynchronous.
            await eventually(
                functools.partial(_none_left, admin, kind, name, version),
                limit=60,
                what=f"{kind} {name} gone",
            )


async def _none_left(admin: KubeApi, kind: str, name: str, version: str) -> bool:
    return await objects(admin, kind, name, version=version) == []


async def test_a_registry_secret_becomes_image_pull_secrets_and_configs_roll_the_pods(
    make_backend: BackendFactory, admin: KubeApi
) -> None:
    backend = await make_backend()
    registry = Secret(
        name="pull-creds",
        version="1",
        labels={"secret-type": "registry"},
        data={"address": "registry.local:5000", "username": "robot", "password": "pw"},
    )

    def deployment(version: str, level: str) -> Deployment:
        config = Configuration(name="conf", version=version, data={"level": level})
        spec = app(
            "conf-app",
            version,
            volumes=[
                {"name": "conf", "config": {"name": "conf", "version": version}},
                {"name": "pull", "secret": {"name": "pull-creds", "version": "1"}},
            ],
            services=[
                {
                    "name": "main",
                    "image": BUSYBOX_IMAGE,
                    "command": ["sh", "-c", "cat /etc/conf/level; echo; " + SLEEP[2]],
                    "volumeMounts": [{"name": "conf", "mountPath": "/etc/conf"}],
                }
            ],
        )
        return Deployment(spec, {"conf": config}, {"pull-creds": registry})

    await backend.apply(deployment("1", "debug"))
    first = await until(backend, "conf-app", running(1), "the pod running")
    live = await admin.get(ObjectRef("apps/v1", "Deployment", NS, "conf-app"))
    assert live is not None
    assert live["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "pull-creds"}]
    secret = await admin.get(ObjectRef("v1", "Secret", NS, "pull-creds"))
    assert secret is not None
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    document = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert document["auths"]["registry.local:5000"]["username"] == "robot"
    await eventually(
        lambda: _log_has(backend, "conf-app", "debug"), limit=LIMIT, what="the config in the log"
    )

    await backend.apply(deployment("2", "info"))
    second = await until(
        backend,
        "conf-app",
        lambda s: running(1)(s) and not set(s.instances) & set(first.instances),
        "a new pod after the config change",
    )
    assert second.version == "2"
    config_map = await admin.get(ObjectRef("v1", "ConfigMap", NS, "conf"))
    assert config_map is not None
    assert config_map["data"] == {"level": "info"}
    text = await eventually(
        lambda: _log_has(backend, "conf-app", "info"), limit=LIMIT, what="the new config"
    )
    assert f"==> {next(iter(second.instances))}/main <==" in text

    await backend.remove("conf-app")
    assert await admin.get(ObjectRef("v1", "ConfigMap", NS, "conf")) is None
    assert await admin.get(ObjectRef("v1", "Secret", NS, "pull-creds")) is None


async def _log_has(backend: KubeBackend, name: str, text: str) -> str | None:
    found = await backend.logs(name, tail_lines=10, since_seconds=None)
    return found if text in found else None


async def test_status_counts_restarts_and_says_why_a_pod_cannot_run(
    make_backend: BackendFactory,
) -> None:
    backend = await make_backend()
    crash = [{"name": "main", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", "exit 3"]}]
    await backend.apply(Deployment(app("crasher", services=crash)))
    missing = [{"name": "main", "image": "localhost/baetyl-py/no-such-image:1", "command": SLEEP}]
    await backend.apply(Deployment(app("no-image", services=missing)))

    crashed = await until(
        backend,
        "crasher",
        lambda s: s.status is AppStatus.FAILED and "CrashLoopBackOff" in s.cause,
        "CrashLoopBackOff as the cause",
    )
    (instance,) = crashed.instances.values()
    assert instance.restarts >= 1
    assert "CrashLoopBackOff" in instance.cause
    stuck = await until(
        backend,
        "no-image",
        lambda s: s.status is AppStatus.FAILED and "Image" in s.cause,
        "an image pull error as the cause",
    )
    assert "ErrImagePull" in stuck.cause or "ImagePullBackOff" in stuck.cause
    for name in ("crasher", "no-image"):
        await backend.remove(name)


async def test_drift_is_repaired_a_deleted_deployment_at_once_an_edit_within_the_interval(
    make_backend: BackendFactory, admin: KubeApi
) -> None:
    backend = await make_backend(repair_interval=3.0)
    await backend.apply(Deployment(app("drift")))
    await until(backend, "drift", running(1), "the pod running")
    ref = ObjectRef("apps/v1", "Deployment", NS, "drift")
    before = await admin.get(ref)
    assert before is not None

    await admin.delete(ref)
    back = await eventually(
        lambda: _replaced(admin, ref, before["metadata"]["uid"]), limit=LIMIT, what="re-created"
    )
    assert back["metadata"]["annotations"]["baetyl-app-version"] == "1"

    await admin.request(
        "PATCH",
        "/apis/apps/v1/namespaces/baetyl-edge/deployments/drift",
        body={"spec": {"replicas": 3}},
        content_type="application/merge-patch+json",
    )
    await eventually(lambda: _replicas(admin, ref, 1), limit=LIMIT, what="replicas set back to 1")
    assert backend.repairs >= 2
    await backend.remove("drift")


async def _replaced(api: KubeApi, ref: ObjectRef, uid: str) -> dict[str, Any] | None:
    found = await api.get(ref)
    return found if found is not None and found["metadata"]["uid"] != uid else None


async def _replicas(api: KubeApi, ref: ObjectRef, count: int) -> bool:
    found = await api.get(ref)
    return found is not None and found["spec"]["replicas"] == count


async def test_a_spec_the_api_server_refuses_is_a_deploy_error_and_others_run_on(
    make_backend: BackendFactory, admin: KubeApi
) -> None:
    backend = await make_backend()
    await backend.apply(Deployment(app("steady")))
    await until(backend, "steady", running(1), "the good app running")
    ref = ObjectRef("apps/v1", "Deployment", NS, "steady")
    generation = (await admin.get(ref) or {})["metadata"]["generation"]
    bad = [
        {
            "name": "main",
            "image": BUSYBOX_IMAGE,
            "command": SLEEP,
            "resources": {"limits": {"cpu": "100m"}, "requests": {"cpu": "2"}},
        }
    ]
    with pytest.raises(DeployError) as caught:
        await backend.apply(Deployment(app("greedy", services=bad)))
    assert "422" in str(caught.value)
    assert "must be less than or equal to cpu limit" in str(caught.value)
    assert "greedy" not in backend.observe()
    assert backend.observe()["steady"].status is AppStatus.RUNNING
    assert (await admin.get(ref) or {})["metadata"]["generation"] == generation
    await backend.remove("steady")


async def test_a_services_runtime_is_the_pods_runtime_class_on_the_node(
    make_backend: BackendFactory, admin: KubeApi
) -> None:
    """Baetyl's service `runtime` names the pod's RuntimeClass; the node's containerd runs the
    pod with that class's handler (here `runc`, under a class of the test's own)."""
    backend = await make_backend()
    name = "baetyl-test-runc"
    runtime_class = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                     "metadata": {"name": name}, "handler": "runc"}  # fmt: skip
    classes = "/apis/node.k8s.io/v1/runtimeclasses"
    try:
        await admin.request("POST", classes, body=runtime_class)
    except KubeError as exc:
        if exc.status != 409:  # left by an interrupted run
            raise
    try:
        services = [{"name": "main", "image": BUSYBOX_IMAGE, "command": SLEEP, "runtime": name}]
        await backend.apply(Deployment(app("classy", services=services)))
        await until(backend, "classy", running(1), "the app running under its runtime class")
        pods = await admin.list("Pod", NS, selector="baetyl-app-name=classy")
        assert [p["spec"]["runtimeClassName"] for p in pods["items"]] == [name]
        await backend.remove("classy")
    finally:
        await admin.request("DELETE", f"{classes}/{name}")


async def test_an_agent_restart_touches_no_running_workload(
    make_backend: BackendFactory, admin: KubeApi, tmp_path: Path
) -> None:
    first = await make_backend()
    config = Configuration(name="kept", version="1", data={"a": "b"})
    spec = app("kept", volumes=[{"name": "cfg", "config": {"name": "kept", "version": "1"}}])
    await first.apply(Deployment(spec, {"kept": config}))
    stats = await until(first, "kept", running(1), "the pod running")
    ref = ObjectRef("apps/v1", "Deployment", NS, "kept")
    before = await admin.get(ref)
    assert before is not None
    await first.close()

    second = await make_backend()
    await until(second, "kept", running(1), "the app seen again")
    # Its first repair pass has applied every object again; nothing may have changed.
    await eventually(lambda: second.repair_passes >= 1, limit=LIMIT, what="a repair pass")
    after = await admin.get(ref)
    assert after is not None
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert set(second.observe()["kept"].instances) == set(stats.instances)
    assert second.repairs == 0
    await second.remove("kept")


async def test_node_facts_come_from_the_node_object(
    make_backend: BackendFactory, kube_cluster: KubeCluster
) -> None:
    backend = await make_backend()
    facts = await backend.node_facts()
    assert facts is not None
    assert facts.ready
    assert facts.info.hostname == kube_cluster.node_name
    assert facts.info.address == kube_cluster.node_ip
    assert facts.info.arch in ("amd64", "arm64", "arm")
    assert facts.info.os == "linux"
    assert facts.modeinfo["gitVersion"].startswith("v1.")
    assert int(facts.capacity["cpu"]) >= 1
    # No metrics-server on the local node: usage stays "0", and the backend says why once.
    await eventually(lambda: backend.metrics is False, limit=LIMIT, what="the metrics API asked")


@pytest.mark.timeout(400)
async def test_an_api_server_outage_of_a_minute_is_ridden_out(
    make_backend: BackendFactory, admin: KubeApi, kube_cluster: KubeCluster
) -> None:
    backend = await make_backend(repair_interval=5.0)
    await backend.apply(Deployment(app("outage")))
    await until(backend, "outage", running(1), "the pod running")

    outage = asyncio.create_task(kube_cluster.api_outage(60.0), name="test-api-outage")
    await eventually(lambda: _unreachable(admin), limit=LIMIT, what="the API server down")
    with pytest.raises(DeployError, match="cannot be reached"):
        await backend.apply(Deployment(app("outage", "2")))
    assert backend.observe()["outage"].status is AppStatus.RUNNING  # the last known
    await outage

    # Back: the new version goes through, and the watches resumed (the new pod is seen).
    await eventually(admin.version, limit=LIMIT, what="the API server back")
    await backend.apply(Deployment(app("outage", "2")))
    await until(
        backend, "outage", lambda s: s.version == "2" and running(1)(s), "version 2 running"
    )
    await backend.remove("outage")


async def _unreachable(api: KubeApi) -> bool:
    try:
        await api.version()
    except Exception:
        return True
    return False


async def test_the_hello_kube_example_answers_on_the_nodes_loopback(
    make_backend: BackendFactory,
) -> None:
    """examples/hello-kube: the Python image, configurations and a secret as files, workingDir,
    hostNetwork and a probe on 127.0.0.1 — the app `make demo MODE=kube` runs."""
    root = Path(__file__).resolve().parents[4] / "examples"
    spec = yaml.safe_load((root / "hello-kube/app.yaml").read_text(encoding="utf-8"))
    port = free_port()
    service = spec["services"][0]
    service["env"] = [
        {"name": "HELLO_PORT", "value": str(port)},
        {"name": "HELLO_HOST", "value": "127.0.0.1"},
    ]
    service["ports"][0]["containerPort"] = port
    for probe in ("readinessProbe", "livenessProbe"):
        service[probe]["httpGet"]["port"] = port
    spec["version"] = "1"
    for volume in spec["volumes"]:
        (volume.get("config") or volume["secret"])["version"] = "1"
    configs = {
        c["name"]: Configuration.model_validate({**c, "version": "1"})
        for c in yaml.safe_load_all((root / "hello-native/config.yaml").read_text())
    }
    token = Secret(name="hello-token", version="1", data={"token": "0123456789abcdef"})
    backend = await make_backend()
    await backend.apply(
        Deployment(Application.model_validate(spec), configs, {"hello-token": token})
    )
    await until(backend, "hello", running(1), "hello running (ready)")
    text = await eventually(lambda: _page(port), limit=LIMIT, what="the hello page")
    assert "Hello from Baetyl-Py" in text
    assert "app hello version 1 on node edge-1" in text
    assert "secret token: 16 characters" in text
    await backend.remove("hello")


async def _page(port: int) -> str | None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None
    writer.write(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    answer = await reader.read()
    writer.close()
    text = answer.decode(errors="replace")
    return text if text.startswith("HTTP/1.0 200") else None
