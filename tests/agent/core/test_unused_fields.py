"""Which fields of a spec each backend leaves unused, as the warnings its app status carries."""

from __future__ import annotations

import copy
from typing import Any

from agent.contracts.resources import Application
from agent.contracts.wire import validate
from agent.core.unused_fields import unused_fields

BAETYLS: dict[str, Any] = {
    "name": "baetyl-style",
    "mode": "native",
    "dnsPolicy": "ClusterFirst",
    "nodeSelector": "disk=ssd",
    "ota": {"apkInfo": {"version": "1"}},
    "autoScaleCfg": {"minReplicas": 1, "maxReplicas": 2,
                     "metrics": [{"resource": {"name": "cpu"}}]},
    "services": [{
        "name": "main",
        "image": "hub.example/agent:1",
        "command": ["sleep", "1"],
        "imagePullPolicy": "IfNotPresent",
        "hostname": "agent",
        "devices": [{"devicePath": "/dev/ttyUSB0"}],
        "runtime": "nvidia",
        "security": {"privileged": True},
        "startupProbe": {"tcpSocket": {"port": 80}},
        "ports": [{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"}],
    }],
}  # fmt: skip


def test_a_native_node_names_every_container_field_it_leaves_unused() -> None:
    warnings = unused_fields(validate(Application, BAETYLS), "native")
    named = [line.split(":", 2)[1].strip() if line.startswith("services") else
             line.split(":", 1)[0] for line in warnings]  # fmt: skip
    assert named == [
        "autoScaleCfg", "ota", "nodeSelector", "dnsPolicy",
        "image", "imagePullPolicy", "hostname", "devices", "runtime", "startupProbe",
        "security", "ports[0].hostIP",
    ]  # fmt: skip
    assert warnings[4].startswith("services 'main': image:")


def test_a_kube_node_uses_them_but_for_the_autoscaler_and_a_second_runtime_class() -> None:
    body = copy.deepcopy(BAETYLS)
    body["mode"] = "kube"
    del body["services"][0]["command"]
    app = validate(Application, body)
    assert app.runtime_class == "nvidia"
    assert [line.split(":")[0] for line in unused_fields(app, "kube")] == [
        "autoScaleCfg", "ota", "nodeSelector",
    ]  # fmt: skip
    # A pod has one runtime class: a second service naming another is told which one runs it.
    body["services"].append({"name": "side", "image": "hub.example/side:1", "runtime": "kata"})
    warnings = unused_fields(validate(Application, body), "kube")
    assert warnings[-1] == (
        "services 'side': runtime: a pod has one runtime class; the app's pod runs with 'nvidia'"
    )


def test_a_plain_app_has_no_warnings() -> None:
    plain = {"name": "plain", "mode": "native",
             "services": [{"name": "main", "command": ["sleep", "1"]}]}  # fmt: skip
    assert unused_fields(validate(Application, plain), "native") == []


def test_a_cronjobs_schedule_is_used_on_both_kinds_of_node() -> None:
    timed = {"name": "timed", "mode": "native", "workload": "cronjob", "cronTime": "@hourly",
             "services": [{"name": "main", "command": ["true"]}]}  # fmt: skip
    assert unused_fields(validate(Application, timed), "native") == []
    timed.update(mode="kube", services=[{"name": "main", "image": "hub.example/timed:1"}])
    assert unused_fields(validate(Application, timed), "kube") == []
