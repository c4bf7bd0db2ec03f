"""Resource models of DESIGN §7: Baetyl's JSON names, and specs no backend could run are refused."""

import copy
import json
from typing import Any

import pytest

from agent.contracts.resources import (
    Application,
    Configuration,
    ResourceKind,
    Secret,
)
from agent.contracts.wire import PayloadError, validate

NATIVE_APP: dict[str, Any] = {
    "name": "hello",
    "namespace": "default",
    "version": "12",
    "type": "container",
    "mode": "native",
    "labels": {"team": "edge"},
    "selector": "role=gateway,env in (prod,staging)",
    "description": "an example",
    "replica": 1,
    "workload": "deployment",
    "services": [
        {
            "name": "web",
            "command": ["python3", "-m", "http.server"],
            "args": ["8080"],
            "env": [{"name": "MODE", "value": "demo"}],
            "workingDir": "",
            "ports": [{"containerPort": 8080, "hostPort": 8080, "protocol": "TCP"}],
            "volumeMounts": [{"name": "conf", "mountPath": "etc/conf", "readOnly": True}],
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
            "livenessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 5},
        }
    ],
    "volumes": [
        {"name": "conf", "config": {"name": "hello-conf", "version": "3"}},
        {"name": "creds", "secret": {"name": "hello-secret"}},
        {"name": "data", "hostPath": {"path": "/var/lib/hello", "type": "DirectoryOrCreate"}},
        {"name": "tmp", "emptyDir": {}},
    ],
    "createTime": "2026-11-27T10:00:00Z",
}

KUBE_APP: dict[str, Any] = {
    "name": "nginx",
    "mode": "kube",
    "workload": "daemonset",
    "services": [
        {
            "name": "nginx",
            "image": "nginx:1.25",
            "ports": [{"containerPort": 80, "serviceType": "NodePort", "nodePort": 30080}],
        }
    ],
}

FUNCTION_APP: dict[str, Any] = {
    "name": "fn",
    "type": "function",
    "mode": "native",
    "services": [
        {
            "name": "py",
            "functionConfig": {"name": "fn-code", "runtime": "python3"},
            "functions": [{"name": "hello", "handler": "index.handler", "codedir": "code"}],
        }
    ],
}


@pytest.mark.parametrize(
    "spec", [NATIVE_APP, KUBE_APP, FUNCTION_APP], ids=["native", "kube", "function"]
)
def test_valid_apps_round_trip_with_baetyl_field_names(spec: dict[str, Any]) -> None:
    app = validate(Application, spec)
    wire = app.to_wire()
    again = Application.decode(json.dumps(wire))
    assert again == app
    for key in spec:
        assert key in wire


def test_native_app_fields_are_read() -> None:
    app = validate(Application, NATIVE_APP)
    service = app.services[0]
    assert service.volume_mounts[0].mount_path == "etc/conf"
    assert service.liveness_probe is not None
    assert service.liveness_probe.http_get is not None
    assert service.liveness_probe.failure_threshold == 3
    assert app.references()[0][0] is ResourceKind.CONFIGURATION
    assert [(k.value, r.name, r.version) for k, r in app.references()] == [
        ("configuration", "hello-conf", "3"),
        ("secret", "hello-secret", ""),
    ]


def _with(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `spec` with the dotted `path` set to `value` (a `-` value deletes the key)."""
    result = copy.deepcopy(spec)
    target: Any = result
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if value == "-":
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return result


INVALID_APPS = [
    ("name", "Hello", "name"),
    ("name", "a" * 56, "longer than 55"),
    ("namespace", "Bad_NS", "namespace"),
    ("type", "helm", "type"),
    ("mode", "docker", "mode"),
    ("workload", "cronjob", "workload"),
    ("selector", "env in (a,b", "position"),
    ("labels", {"bad key!": "x"}, "label key"),
    ("replica", -1, "replica"),
    ("replica", "1", "replica"),
    ("services", [], "services"),
    ("services.0.name", "web.1", "service name"),
    ("services.0.command", [], "needs a command"),
    ("services.0.env", [{"name": "1BAD"}], "environment variable name"),
    ("services.0.env", [{"name": "A"}, {"name": "A"}], "repeated: A"),
    ("services.0.ports", [{"containerPort": 0}], "containerPort"),
    ("services.0.ports", [{"containerPort": 80, "serviceType": "NodePort"}], "needs a nodePort"),
    (
        "services.0.ports",
        [{"containerPort": 80, "nodePort": 30001}],
        "only allowed with serviceType NodePort",
    ),
    ("services.0.volumeMounts", [{"name": "nope", "mountPath": "x"}], "does not declare"),
    (
        "services.0.volumeMounts",
        [{"name": "conf", "mountPath": "../escape"}],
        "must not contain '..'",
    ),
    ("services.0.resources", {"limits": {"cpu": "lots"}}, "Kubernetes quantity"),
    ("services.0.livenessProbe", {"periodSeconds": 5}, "exactly one of exec"),
    (
        "services.0.livenessProbe",
        {"exec": {"command": ["true"]}, "tcpSocket": {"port": 1}},
        "exactly one of exec",
    ),
    ("services.0.functionConfig", {"runtime": "python3"}, "must not have functionConfig"),
    ("services.0.unknownField", 1, "unknown field; known here:"),
    ("services.0.imagePullPolicyy", "Always", "did you mean 'imagePullPolicy'?"),
    ("services.0.ports", [{"containerPort": 80, "hostIp": "1.2.3.4"}], "did you mean 'hostIP'"),
    ("volumes.0", {"name": "conf"}, "exactly one of config"),
    (
        "volumes.0",
        {"name": "conf", "config": {"name": "c1"}, "emptyDir": {}},
        "exactly one of config",
    ),
    ("volumes.1", {"name": "conf", "emptyDir": {}}, "volume names must be unique"),
    ("volumes.2.hostPath.path", "relative/path", "hostPath.path"),
    ("createTime", "yesterday", "createTime"),
    ("nodeSelecter", "a=b", "nodeSelecter: unknown field; did you mean 'nodeSelector'?"),
]


@pytest.mark.parametrize(
    ("path", "value", "fragment"), INVALID_APPS, ids=[f"{p}={v!r}"[:40] for p, v, _ in INVALID_APPS]
)
def test_invalid_apps_are_refused_naming_the_problem(path: str, value: Any, fragment: str) -> None:
    with pytest.raises(PayloadError) as caught:
        validate(Application, _with(NATIVE_APP, path, value))
    assert fragment in str(caught.value)


def test_kube_container_apps_need_an_image() -> None:
    with pytest.raises(PayloadError, match="needs an image"):
        validate(Application, _with(KUBE_APP, "services.0.image", ""))


def test_function_apps_need_function_config() -> None:
    with pytest.raises(PayloadError, match="needs functionConfig"):
        validate(Application, _with(FUNCTION_APP, "services.0.functionConfig", "-"))


def test_function_handlers_are_module_dot_function() -> None:
    with pytest.raises(PayloadError, match="handler"):
        validate(Application, _with(FUNCTION_APP, "services.0.functions.0.handler", "nodot"))


def test_host_ports_may_not_repeat_or_combine_with_replicas() -> None:
    two = _with(
        NATIVE_APP,
        "services",
        [*NATIVE_APP["services"], {**NATIVE_APP["services"][0], "name": "web-2"}],
    )
    with pytest.raises(PayloadError, match="host port 8080/TCP is published more than once"):
        validate(Application, two)
    with pytest.raises(PayloadError, match="replica > 1"):
        validate(Application, _with(NATIVE_APP, "replica", 2))


def test_service_names_are_unique_across_init_services() -> None:
    spec = _with(NATIVE_APP, "initServices", [{"name": "web", "command": ["true"]}])
    with pytest.raises(PayloadError, match="service names must be unique"):
        validate(Application, spec)


def test_configuration_round_trips_and_checks_keys_and_size() -> None:
    config = validate(
        Configuration, {"name": "cfg", "version": "1", "data": {"conf.yml": "a: 1", "x_y-z": ""}}
    )
    assert Configuration.decode(config.to_bytes()) == config
    with pytest.raises(PayloadError, match="data key 'a/b'"):
        validate(Configuration, {"name": "cfg", "data": {"a/b": "x"}})
    with pytest.raises(PayloadError, match=r"data key '\.\.'"):
        validate(Configuration, {"name": "cfg", "data": {"..": "x"}})
    with pytest.raises(PayloadError, match="must be under 4 MiB"):
        validate(Configuration, {"name": "cfg", "data": {"big": "x" * (4 * 1024 * 1024)}})
    with pytest.raises(PayloadError, match="data"):
        validate(Configuration, {"name": "cfg", "data": {"n": 1}})


def test_secret_type_label_and_size() -> None:
    secret = validate(
        Secret, {"name": "reg", "labels": {"secret-type": "registry"}, "data": {"password": "p"}}
    )
    assert secret.secret_type == "registry"
    assert validate(Secret, {"name": "plain"}).secret_type == "config"
    with pytest.raises(PayloadError, match="secret-type='tls'"):
        validate(Secret, {"name": "s1", "labels": {"secret-type": "tls"}})
    with pytest.raises(PayloadError, match="over the limit of 65536"):
        validate(Secret, {"name": "s1", "data": {"k": "x" * 65536}})


def test_validate_refuses_values_that_are_not_json() -> None:
    with pytest.raises(PayloadError, match="not a JSON value"):
        validate(Configuration, {"name": "cfg", "data": {"k": float("nan")}})


def test_baetyls_deprecated_service_fields_fill_what_the_app_does_not_say() -> None:
    body = copy.deepcopy(KUBE_APP)
    del body["workload"]
    body["services"][0].update(
        type="job", hostNetwork=True, replica=3, jobConfig={"completions": 0, "restartPolicy": ""}
    )
    app = validate(Application, body)
    assert (app.workload, app.host_network, app.replica) == ("job", True, 3)
    assert app.job_config is not None
    assert (app.job_config.completions, app.job_config.restart_policy) == (1, "Never")
    # What the app says wins over its first service.
    body.update(workload="deployment", hostNetwork=False, replica=2)
    app = validate(Application, body)
    assert (app.workload, app.host_network, app.replica) == ("deployment", False, 2)
    # Round trip: the service keeps what it was given.
    again = validate(Application, app.to_wire())
    assert again.services[0].type == "job"
    assert again == app


def test_cron_time_is_a_schedule_or_baetyls_deferred_deployment_time() -> None:
    zero = {**KUBE_APP, "cronTime": "0001-01-01T00:00:00Z", "cronStatus": 0}
    app = validate(Application, zero)
    assert (app.cron_schedule, app.deploy_at) == ("", None)
    later = validate(Application, {**KUBE_APP, "cronTime": "2027-01-01T08:00:00Z", "cronStatus": 1})
    assert later.deploy_at is not None
    assert later.deploy_at.year == 2027
    schedule = validate(Application, {**KUBE_APP, "workload": "cronjob", "cronTime": "*/5 * * * *"})
    assert schedule.cron_schedule == "*/5 * * * *"
    hourly = validate(Application, {**KUBE_APP, "workload": "cronjob", "cronTime": "@hourly"})
    assert hourly.cron_schedule == "@hourly"
    cronjob = {**KUBE_APP, "workload": "cronjob"}
    for bad, fragment in (
        ({"cronStatus": 1}, "needs cronTime"),
        ({"cronTime": "*/5 * * * *"}, "only allowed with workload cronjob"),
        ({**cronjob, "cronTime": "*/5 * * *"}, "cronTime: .* expected 5 fields"),
        ({**cronjob, "cronTime": "0 8 * * 7"}, "day of week field '7': 7 is outside 0-6; Sunday"),
        ({**cronjob, "cronTime": "0 0 30 2 *"}, "never comes"),
        ({**cronjob, "cronTime": "@every 1h"}, "unknown descriptor"),
        ({**cronjob, "cronTime": "0001-01-01T00:00:00Z"}, "workload cronjob needs cronTime"),
        ({**cronjob, "cronTime": "2027-01-01T08:00:00Z", "cronStatus": 1}, "needs cronTime"),
        ({"cronStatus": 3, "cronTime": "2027-01-01T08:00:00Z"}, "cronStatus"),
        ({"autoScaleCfg": {"minReplicas": 0, "metrics": [{"resource": {"name": "cpu"}}]}},
         "minReplicas"),
        ({"autoScaleCfg": {"minReplicas": 2, "maxReplicas": 1,
                           "metrics": [{"resource": {"name": "cpu"}}]}}, "maxReplicas"),
        ({"autoScaleCfg": {"minReplicas": 1, "maxReplicas": 2,
                           "metrics": [{"resource": {"name": "disk"}}]}}, "resource.name"),
    ):  # fmt: skip
        with pytest.raises(PayloadError, match=fragment):
            validate(Application, {**KUBE_APP, **bad})


def test_baetyls_other_app_fields_are_kept_as_given() -> None:
    body = copy.deepcopy(KUBE_APP)
    body.update(
        ota={}, preserveUpdates=True, dnsPolicy="ClusterFirst",
        autoScaleCfg={"minReplicas": 1, "maxReplicas": 3,
                      "metrics": [{"type": "Resource", "resource": {
                          "name": "cpu", "targetType": "Utilization",
                          "averageUtilization": 80}}]},
    )  # fmt: skip
    body["services"][0].update(
        runtime="nvidia",
        labels={"old": "style"},
        volumeMounts=[],
    )
    body["services"][0]["volumeMounts"] = [
        {"name": "tmp", "mountPath": "/tmp/x", "immutable": True, "autoClean": True}
    ]
    body["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    app = validate(Application, body)
    wire = app.to_wire()
    assert wire["preserveUpdates"] is True
    assert wire["autoScaleCfg"]["metrics"][0]["resource"]["averageUtilization"] == 80
    assert wire["services"][0]["runtime"] == "nvidia"
    assert wire["services"][0]["volumeMounts"][0] == {
        "name": "tmp", "mountPath": "/tmp/x", "readOnly": False, "subPath": "",
        "immutable": True, "autoClean": True,
    }  # fmt: skip
    assert validate(Application, wire) == app
