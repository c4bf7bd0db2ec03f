"""The app → Kubernetes objects mapping (agent/core/kube/render.py), rule by rule, plus one
snapshot of a rich app so that any change of the output is seen in review."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.contracts.resources import Application, Configuration, Secret
from agent.core.backend import Deployment, NodeIdentity
from agent.core.kube import render
from agent.core.kube.render import Capabilities

IDENTITY = NodeIdentity("tenant", "edge-1")
SNAPSHOT = Path(__file__).parent / "snapshots" / "rich-app.json"


def app(**fields: Any) -> Application:
    base: dict[str, Any] = {
        "name": "web",
        "version": "v1",
        "services": [{"name": "main", "image": "nginx:1"}],
    }
    base.update(fields)
    return Application.model_validate(base)


def rendered(application: Application, **resources: Any) -> render.Rendered:
    return render.render(Deployment(application, **resources), IDENTITY)


def kinds(result: render.Rendered) -> list[str]:
    return [o["kind"] for o in result.objects]


def pod(result: render.Rendered) -> dict[str, Any]:
    workload = result.workload
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: dict[str, Any] = spec["template"]
    return template


def container(result: render.Rendered, index: int = 0) -> dict[str, Any]:
    found: dict[str, Any] = pod(result)["spec"]["containers"][index]
    return found


CONFIG = Configuration(name="settings", version="7", data={"app.conf": "level=debug"})
SECRET = Secret(name="token", version="3", data={"token": "s3cret"})
REGISTRY = Secret(
    name="private-registry",
    version="1",
    labels={"secret-type": "registry"},
    data={"address": "registry.local:5000", "username": "robot", "password": "pw"},
)


def rich_app() -> tuple[Application, dict[str, Any]]:
    application = app(
        labels={"team": "edge"},
        replica=2,
        volumes=[
            {"name": "conf", "config": {"name": "settings", "version": "7"}},
            {"name": "tok", "secret": {"name": "token", "version": "3"}},
            {"name": "pull", "secret": {"name": "private-registry", "version": "1"}},
            {"name": "data", "hostPath": {"path": "/var/lib/web", "type": "DirectoryOrCreate"}},
            {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        ],
        initServices=[{"name": "prepare", "image": "busybox:1", "command": ["true"]}],
        services=[
            {
                "name": "main",
                "image": "registry.local:5000/web:2",
                "imagePullPolicy": "Always",
                "command": ["/web"],
                "args": ["--port", "8080"],
                "workingDir": "/srv",
                "hostname": "web-host",
                "env": [{"name": "MODE", "value": "edge"}],
                "ports": [
                    {"containerPort": 8080},
                    {"containerPort": 9090, "serviceType": "NodePort", "nodePort": 30090},
                ],
                "volumeMounts": [
                    {"name": "conf", "mountPath": "/etc/web", "readOnly": True},
                    {"name": "tok", "mountPath": "/run/secrets/web"},
                    {"name": "pull", "mountPath": "/never"},
                    {"name": "data", "mountPath": "/data", "subPath": "web"},
                    {"name": "scratch", "mountPath": "/tmp"},
                ],
                "resources": {
                    "limits": {"cpu": "500m", "memory": "128Mi"},
                    "requests": {"cpu": "100m", "memory": "64Mi"},
                },
                "security": {
                    "runAsUser": 1000,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 5},
                "startupProbe": {"exec": {"command": ["cat", "/ready"]}, "failureThreshold": 30},
                "devices": [{"devicePath": "/dev/ttyUSB0"}],
            }
        ],
    )
    resources = {
        "configs": {"settings": CONFIG},
        "secrets": {"token": SECRET, "private-registry": REGISTRY},
    }
    return application, resources


def test_rich_app_matches_the_snapshot() -> None:
    application, resources = rich_app()
    result = list(rendered(application, **resources).objects)
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert text == SNAPSHOT.read_text(encoding="utf-8"), "UPDATE_SNAPSHOTS=1 to accept a change"


def test_objects_come_in_apply_order_in_the_user_namespace() -> None:
    application, resources = rich_app()
    result = rendered(application, **resources)
    assert result.namespace == "baetyl-edge"
    assert kinds(result) == [
        "Namespace",
        "ConfigMap",
        "Secret",
        "Secret",
        "Deployment",
        "Service",
        "Service",
    ]
    for manifest in result.objects[1:]:
        assert manifest["metadata"]["namespace"] == "baetyl-edge"


def test_every_object_is_labelled_managed_so_it_can_be_pruned() -> None:
    application, resources = rich_app()
    for manifest in rendered(application, **resources).objects:
        assert manifest["metadata"]["labels"][render.MANAGED_LABEL] == "true"


def test_system_apps_go_to_the_system_namespace() -> None:
    assert rendered(app(system=True)).namespace == "baetyl-edge-system"


def test_workload_and_pods_carry_baetyls_labels_and_the_apps() -> None:
    result = rendered(app(labels={"team": "edge"}))
    labels = result.workload["metadata"]["labels"]
    assert labels["baetyl-app-name"] == "web"
    assert labels["baetyl-app-version"] == "v1"
    assert labels["team"] == "edge"
    assert pod(result)["metadata"]["labels"]["baetyl-app-version"] == "v1"
    assert result.workload["spec"]["selector"] == {"matchLabels": {"baetyl-app-name": "web"}}


def test_a_version_kubernetes_cannot_take_as_a_label_becomes_a_digest() -> None:
    label = rendered(app(version="-odd-")).workload["metadata"]["labels"]["baetyl-app-version"]
    assert label != "-odd-"
    assert len(label) == 16


def test_baetyl_environment_and_the_node_name_from_the_downward_api() -> None:
    env = container(rendered(app()))["env"]
    values = {e["name"]: e.get("value") for e in env}
    assert values["BAETYL_APP_NAME"] == "web"
    assert values["BAETYL_SERVICE_NAME"] == "main"
    assert values["BAETYL_APP_VERSION"] == "v1"
    assert values["BAETYL_NODE_NAME"] == "edge-1"
    assert values["BAETYL_NODE_NAMESPACE"] == "tenant"
    assert values["BAETYL_RUN_MODE"] == "kube"
    node = next(e for e in env if e["name"] == "KUBE_NODE_NAME")
    assert node["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_the_spec_cannot_override_baetyls_variables() -> None:
    services = [
        {"name": "main", "image": "x", "env": [{"name": "BAETYL_APP_NAME", "value": "forged"}]}
    ]
    env = container(rendered(app(services=services)))["env"]
    assert [e["value"] for e in env if e["name"] == "BAETYL_APP_NAME"] == ["web"]


def test_limits_and_requests_both_apply() -> None:
    application, resources = rich_app()
    assert container(rendered(application, **resources))["resources"] == {
        "limits": {"cpu": "500m", "memory": "128Mi"},
        "requests": {"cpu": "100m", "memory": "64Mi"},
    }


def test_registry_secret_becomes_an_image_pull_secret_and_never_a_volume() -> None:
    application, resources = rich_app()
    result = rendered(application, **resources)
    secret = next(o for o in result.objects if o["metadata"]["name"] == "private-registry")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    document = json.loads(_decoded(secret["data"][".dockerconfigjson"]))
    auth = document["auths"]["registry.local:5000"]
    assert (auth["username"], auth["password"]) == ("robot", "pw")
    assert _decoded(auth["auth"]) == "robot:pw"
    spec = pod(result)["spec"]
    assert spec["imagePullSecrets"] == [{"name": "private-registry"}]
    assert "pull" not in {v["name"] for v in spec["volumes"]}
    assert "pull" not in {m["name"] for m in container(result)["volumeMounts"]}


def test_volumes_map_one_to_one() -> None:
    application, resources = rich_app()
    volumes = {v["name"]: v for v in pod(rendered(application, **resources))["spec"]["volumes"]}
    assert volumes["conf"] == {"name": "conf", "configMap": {"name": "settings"}}
    assert volumes["tok"] == {"name": "tok", "secret": {"secretName": "token"}}
    assert volumes["data"]["hostPath"] == {"path": "/var/lib/web", "type": "DirectoryOrCreate"}
    assert volumes["scratch"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}


def test_a_device_is_a_char_device_host_path_mounted_at_its_path() -> None:
    application, resources = rich_app()
    result = rendered(application, **resources)
    mount = next(m for m in container(result)["volumeMounts"] if m["mountPath"] == "/dev/ttyUSB0")
    volume = next(v for v in pod(result)["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["hostPath"] == {"path": "/dev/ttyUSB0", "type": "CharDevice"}


def test_config_or_secret_change_changes_the_pod_template() -> None:
    application, resources = rich_app()
    before = pod(rendered(application, **resources))["metadata"]["annotations"]
    changed = CONFIG.model_copy(update={"data": {"app.conf": "level=info"}})
    after = pod(rendered(application, **{**resources, "configs": {"settings": changed}}))
    assert after["metadata"]["annotations"] != before
    rotated = SECRET.model_copy(update={"data": {"token": "new"}})
    again = pod(
        rendered(
            application, **{**resources, "secrets": {**resources["secrets"], "token": rotated}}
        )
    )
    assert again["metadata"]["annotations"] != before


def test_deployment_rolls_without_dropping_ready_pods() -> None:
    strategy = rendered(app(replica=3)).workload["spec"]["strategy"]
    assert strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"hostNetwork": True},
        {
            "services": [
                {"name": "main", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]}
            ]
        },
    ],
)
def test_apps_on_host_ports_or_network_recreate(fields: dict[str, Any]) -> None:
    assert rendered(app(**fields)).workload["spec"]["strategy"] == {"type": "Recreate"}


def test_host_network_pods_resolve_through_the_cluster() -> None:
    spec = pod(rendered(app(hostNetwork=True)))["spec"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"


@pytest.mark.parametrize(
    ("workload", "kind", "api"),
    [
        ("deployment", "Deployment", "apps/v1"),
        ("daemonset", "DaemonSet", "apps/v1"),
        ("statefulset", "StatefulSet", "apps/v1"),
        ("job", "Job", "batch/v1"),
    ],
)
def test_each_workload_kind(workload: str, kind: str, api: str) -> None:
    result = rendered(app(workload=workload))
    assert (result.workload["kind"], result.workload["apiVersion"]) == (kind, api)


def test_statefulset_names_its_governing_service() -> None:
    spec = rendered(app(workload="statefulset", replica=2)).workload["spec"]
    assert spec["serviceName"] == "web"
    assert spec["replicas"] == 2


def test_job_takes_its_config_and_is_named_per_version() -> None:
    job_config = {
        "completions": 3,
        "parallelism": 2,
        "backoffLimit": 1,
        "restartPolicy": "OnFailure",
    }
    first = rendered(app(workload="job", jobConfig=job_config)).workload
    assert first["spec"]["completions"] == 3
    assert first["spec"]["parallelism"] == 2
    assert first["spec"]["backoffLimit"] == 1
    assert first["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    second = rendered(app(workload="job", version="v2")).workload
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert second["spec"]["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("api", ["batch/v1", "batch/v1beta1"])
def test_cronjob_takes_baetyls_cron_time(api: str) -> None:
    result = render.render(
        Deployment(app(workload="cronjob", cronTime="*/5 * * * *")),
        IDENTITY,
        Capabilities(cronjob_api=api),
    )
    assert result.workload["apiVersion"] == api
    assert result.workload["spec"]["schedule"] == "*/5 * * * *"
    assert pod(result)["spec"]["restartPolicy"] == "Never"


def test_cluster_ip_and_node_port_services() -> None:
    application, resources = rich_app()
    services = [o for o in rendered(application, **resources).objects if o["kind"] == "Service"]
    cluster, node = services
    assert cluster["metadata"]["name"] == "web"
    assert cluster["spec"]["type"] == "ClusterIP"
    assert cluster["spec"]["ports"] == [
        {"name": "main-8080-tcp", "port": 8080, "targetPort": 8080, "protocol": "TCP"}
    ]
    assert node["metadata"]["name"] == "web-nodeport"
    assert node["spec"]["ports"][0]["nodePort"] == 30090
    assert cluster["spec"]["selector"] == {"baetyl-app-name": "web"}


def test_an_app_without_ports_has_no_service() -> None:
    assert "Service" not in kinds(rendered(app()))


def test_host_port_and_host_ip() -> None:
    ports = [{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"}]
    services = [{"name": "main", "image": "x", "ports": ports}]
    assert container(rendered(app(services=services)))["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "hostPort": 8080, "hostIP": "127.0.0.1"}
    ]


def test_service_names_are_dns_labels_even_for_dotted_app_names() -> None:
    services = [{"name": "main", "image": "x", "ports": [{"containerPort": 80}]}]
    result = rendered(app(name="web.v2", services=services))
    service = next(o for o in result.objects if o["kind"] == "Service")
    assert service["metadata"]["name"] == "web-v2"
    assert render.service_object_name("1st.app") == "app-1st-app"


def test_pull_policy_defaults_to_the_image_the_node_has() -> None:
    assert container(rendered(app()))["imagePullPolicy"] == "IfNotPresent"


def test_privileged_false_is_left_out_and_true_kept() -> None:
    plain = [{"name": "main", "image": "x", "security": {"privileged": False}}]
    assert "securityContext" not in container(rendered(app(services=plain)))
    privileged = [{"name": "main", "image": "x", "security": {"privileged": True}}]
    assert container(rendered(app(services=privileged)))["securityContext"] == {"privileged": True}


@given(
    replica=st.integers(min_value=0, max_value=5),
    system=st.booleans(),
    workload=st.sampled_from(["deployment", "daemonset", "statefulset", "job"]),
    limit=st.sampled_from(["100m", "1", "0.5"]),
)
def test_any_app_renders_to_managed_objects_in_its_namespace(
    replica: int, system: bool, workload: str, limit: str
) -> None:
    services = [{"name": "main", "image": "x", "resources": {"limits": {"cpu": limit}}}]
    result = rendered(app(replica=replica, system=system, workload=workload, services=services))
    assert result.objects[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": result.namespace, "labels": {render.MANAGED_LABEL: "true"}},
    }
    for manifest in result.objects[1:]:
        assert manifest["metadata"]["namespace"] == result.namespace
        assert manifest["metadata"]["labels"][render.MANAGED_LABEL] == "true"
    assert container(result)["resources"]["limits"]["cpu"] == limit


def _decoded(text: str) -> str:
    return base64.b64decode(text).decode()


def test_a_services_runtime_is_the_pods_runtime_class() -> None:
    gpu = app(services=[{"name": "main", "image": "nginx:1", "runtime": "nvidia"}])
    assert pod(rendered(gpu))["spec"]["runtimeClassName"] == "nvidia"
    assert "runtimeClassName" not in pod(rendered(app()))["spec"]
