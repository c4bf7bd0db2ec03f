"""The install command, script and manifest: their shape, and values that cannot inject code."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.installer import render
from cloud.installer.render import InstallValues

VALUES = InstallValues(cloud_url="http://cloud.example:9004", token="tok.en", nid="default.edge-1")
EVIL = InstallValues(
    cloud_url="http://x/'$(touch pwned-url)'`touch pwned-tick`",
    token="a'b\"c;$(touch pwned-token) \n d",
    nid="default.edge-1",
)
_VARIABLES = ("CLOUD_URL", "TOKEN", "NODE_ID", "WHEEL_URL", "WHEEL_FILE")


@pytest.mark.parametrize(
    ("mode", "method", "expected"),
    [
        (
            "native",
            "curl",
            "curl -fsSL -o baetyl-install.sh "
            "'http://cloud.example:9004/v1/init/baetyl-install.sh?token=tok.en' "
            "&& sh baetyl-install.sh",
        ),
        (
            "native",
            "wget",
            "wget -q -O baetyl-install.sh "
            "'http://cloud.example:9004/v1/init/baetyl-install.sh?token=tok.en' "
            "&& sh baetyl-install.sh",
        ),
        (
            "kube",
            "curl",
            "curl -fsSL 'http://cloud.example:9004/v1/init/baetyl-init-deployment.yml?token=tok.en'"
            " | kubectl apply -f -",
        ),
        (
            "kube",
            "wget",
            "wget -qO- 'http://cloud.example:9004/v1/init/baetyl-init-deployment.yml?token=tok.en'"
            " | kubectl apply -f -",
        ),
    ],
)
def test_the_install_command_fetches_with_the_chosen_tool(
    mode: render.Mode, method: render.Method, expected: str
) -> None:
    assert render.install_command(VALUES, mode=mode, method=method) == expected


def test_the_script_is_valid_posix_sh_and_names_what_it_installs() -> None:
    script = render.install_script(VALUES, wheel_file="baetyl_py-0.1.0-py3-none-any.whl")
    assert script.startswith("#!/bin/sh\n")
    assert "set -eu" in script
    check = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True, check=False)
    assert check.returncode == 0, check.stderr
    assert "WHEEL_URL=http://cloud.example:9004/v1/init/dist/baetyl_py-0.1.0-py3-none-any.whl" in (
        script
    )
    assert "@@" not in script


def test_script_values_are_shell_words_that_run_nothing(tmp_path: Path) -> None:
    script = render.install_script(EVIL, wheel_file="baetyl_py-1.whl")
    head = script[script.index("CLOUD_URL=") : script.index("PREFIX=")]
    shown = " ".join(f'"${name}"' for name in _VARIABLES)
    result = subprocess.run(
        ["sh", "-c", f"{head}\nprintf '%s\\0' {shown}"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    values = result.stdout.decode().split("\0")[:-1]
    assert values == [
        EVIL.cloud_url,
        EVIL.token,
        EVIL.nid,
        f"{EVIL.cloud_url}/v1/init/dist/baetyl_py-1.whl",
        "baetyl_py-1.whl",
    ]
    assert list(tmp_path.iterdir()) == []


def test_the_command_quotes_the_url_as_one_shell_word() -> None:
    command = render.install_command(EVIL, mode="native", method="curl")
    words = shlex.split(command)
    assert words[:4] == ["curl", "-fsSL", "-o", "baetyl-install.sh"]
    assert words[4] == f"{EVIL.cloud_url}/v1/init/baetyl-install.sh?token={EVIL.token}"
    assert words[5:] == ["&&", "sh", "baetyl-install.sh"]


def manifest(values: InstallValues = VALUES, image: str = "registry.local/agent:1") -> list[Any]:
    return list(yaml.safe_load_all(render.deployment_manifest(values, image=image)))


def by_kind(docs: list[Any], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def test_the_manifest_has_every_object_the_agent_needs() -> None:
    docs = manifest()
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == sorted(
        [
            "Namespace",
            "Namespace",
            "ServiceAccount",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "Secret",
            "ConfigMap",
            "Deployment",
        ]
    )
    assert {doc["metadata"]["name"] for doc in by_kind(docs, "Namespace")} == {
        "baetyl-edge-system",
        "baetyl-edge",
    }
    (secret,) = by_kind(docs, "Secret")
    assert secret["stringData"] == {"token": "tok.en"}
    (config_map,) = by_kind(docs, "ConfigMap")
    assert yaml.safe_load(config_map["data"]["core.yml"])["engine"]["backend"] == "kube"
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "baetyl-agent"
    (init,) = pod["initContainers"]
    (core,) = pod["containers"]
    assert init["image"] == core["image"] == "registry.local/agent:1"
    assert init["command"] == ["baetyl-init"]
    assert init["args"][:4] == [
        "--cloud",
        "http://cloud.example:9004",
        "--token",
        "$(BAETYL_INSTALL_TOKEN)",
    ]
    assert {"--no-systemd", "--no-start"} <= set(init["args"])
    assert init["env"][0]["valueFrom"]["secretKeyRef"] == {
        "name": "baetyl-install-token",
        "key": "token",
    }
    assert core["command"] == ["baetyl-core"]
    assert core["args"] == ["-c", "/baetyl/etc/baetyl/core.yml"]


def test_the_agent_gets_least_privilege_rbac() -> None:
    docs = manifest()
    roles = by_kind(docs, "Role") + by_kind(docs, "ClusterRole")
    for role in roles:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], (role["metadata"]["name"], rule)
    manage = {"get", "list", "watch", "create", "update", "patch", "delete"}
    user, system = sorted(by_kind(docs, "Role"), key=lambda r: r["metadata"]["namespace"])
    assert (user["metadata"]["namespace"], system["metadata"]["namespace"]) == (
        "baetyl-edge",
        "baetyl-edge-system",
    )
    assert user["rules"] == system["rules"]
    granted = {
        resource: set(rule["verbs"])
        for rule in user["rules"]
        for resource in rule["resources"]
        if rule["apiGroups"] != ["metrics.k8s.io"]
    }
    (metrics,) = [rule for rule in user["rules"] if rule["apiGroups"] == ["metrics.k8s.io"]]
    assert (metrics["resources"], metrics["verbs"]) == (["pods"], ["get", "list"])
    for workload in ("deployments", "daemonsets", "statefulsets", "jobs", "cronjobs", "services"):
        assert granted[workload] == manage
    for data in ("configmaps", "secrets"):
        assert granted[data] == manage
    assert granted["pods"] == {"get", "list", "watch"}
    assert granted["pods/log"] == {"get"}
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert cluster_role["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": [""],
            "resources": ["namespaces"],
            "resourceNames": ["baetyl-edge", "baetyl-edge-system"],
            "verbs": ["get"],
        },
    ]
    for binding in by_kind(docs, "RoleBinding") + by_kind(docs, "ClusterRoleBinding"):
        assert binding["roleRef"]["name"] != "cluster-admin"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "baetyl-agent", "namespace": "baetyl-edge-system"}
        ]


def test_manifest_values_stay_plain_strings() -> None:
    docs = manifest(EVIL, image='evil"\nkind: Pod')
    (secret,) = by_kind(docs, "Secret")
    assert secret["stringData"]["token"] == EVIL.token
    (deployment,) = by_kind(docs, "Deployment")
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert init["image"] == 'evil"\nkind: Pod'
    assert init["args"][1] == EVIL.cloud_url
    assert len(docs) == 12
