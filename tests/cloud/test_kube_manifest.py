"""The cloud's Kubernetes manifests (cloud.kube_manifest, `baetyl-cloud kube-manifest`): what
they say, what they refuse, the keys they carry, and the committed example staying a rendering.
They run for real in tests/e2e/test_cloud_on_kube.py."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from cloud.kube_manifest import (
    DB_ENV,
    KEYS_DIR,
    CloudManifestSettings,
    ManifestError,
    load_keys,
    objects,
    render,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy/kubernetes/cloud/baetyl-cloud.yml"
EXAMPLE_SETTINGS = CloudManifestSettings(public_host="cloud.example.com")
DB = "postgres://baetyl:secret@db.example.com:5432/baetyl"
BAETYL_CLOUD = Path(sys.executable).parent / "baetyl-cloud"


def by_kind(documents: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def container(document: dict[str, Any]) -> dict[str, Any]:
    (only,) = document["spec"]["template"]["spec"]["containers"]
    return dict(only)


def test_the_committed_example_is_a_fresh_rendering() -> None:
    """deploy/kubernetes/cloud/baetyl-cloud.yml is `kube-manifest --public-host
    cloud.example.com` without Secrets; regenerate it after changing the renderer (README)."""
    assert EXAMPLE.read_text(encoding="utf-8") == render(EXAMPLE_SETTINGS)


def test_every_replica_is_a_broker_user_and_connects_with_its_own_certificate() -> None:
    documents = by_kind(objects(CloudManifestSettings(public_host="10.0.0.5", replicas=3)))
    statefulset = documents[("StatefulSet", "baetyl-cloud")]
    assert statefulset["spec"]["replicas"] == 3
    args = container(documents[("Deployment", "baetyl-broker")])["args"]
    replicas = [args[i + 1] for i, a in enumerate(args) if a == "--replica"]
    assert replicas == ["baetyl-cloud-0", "baetyl-cloud-1", "baetyl-cloud-2"]
    serve = container(statefulset)
    flags = dict(zip(serve["args"][1::2], serve["args"][2::2], strict=False))
    assert flags["--mqtt-replica"] == "$(POD_NAME)"
    assert flags["--mqtt-cert"] == f"{KEYS_DIR}/$(POD_NAME).pem"
    assert flags["--init-url"] == "http://10.0.0.5:30004"
    assert flags["--node-mqtt-url"] == "mqtts://10.0.0.5:30883"
    assert "--db" not in flags  # the URL comes from the Secret, through the environment
    env = {e["name"]: e for e in serve["env"]}
    assert env[DB_ENV]["valueFrom"]["secretKeyRef"] == {"name": "baetyl-cloud-db", "key": "url"}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # The broker's certificate covers the address the replicas dial and the public one.
    assert "$(BAETYL_BROKER_SERVICE_HOST)" in args
    assert "10.0.0.5" in args


def test_the_pods_run_with_least_privilege() -> None:
    documents = by_kind(objects(EXAMPLE_SETTINGS))
    for kind, name in (("StatefulSet", "baetyl-cloud"), ("Deployment", "baetyl-broker")):
        spec = documents[(kind, name)]["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        security = container(documents[(kind, name)])["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
    cloud = container(documents[("StatefulSet", "baetyl-cloud")])["securityContext"]
    assert cloud["readOnlyRootFilesystem"] is True
    assert "add" not in cloud["capabilities"]
    keys = documents[("StatefulSet", "baetyl-cloud")]["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "keys",
        "secret": {"secretName": "baetyl-cloud-keys", "defaultMode": 0o400},
    } in keys


def test_services_come_before_the_pods_that_read_their_variables() -> None:
    kinds = [d["kind"] for d in objects(EXAMPLE_SETTINGS)]
    assert kinds[0] == "Namespace"
    assert max(i for i, k in enumerate(kinds) if k == "Service") < kinds.index("Deployment")
    assert kinds[-2:] == ["Deployment", "StatefulSet"]


def test_the_secrets_carry_the_shared_keys_and_each_replicas_certificate(tmp_path: Path) -> None:
    keys = load_keys(tmp_path / "keys", ["baetyl-cloud-0", "baetyl-cloud-1"])
    documents = by_kind(objects(EXAMPLE_SETTINGS, keys=keys, db_url=DB))
    data = documents[("Secret", "baetyl-cloud-keys")]["data"]
    assert set(data) == {
        "ca.pem", "ca.key", "secret.key",
        "baetyl-cloud-0.pem", "baetyl-cloud-0.key", "baetyl-cloud-1.pem", "baetyl-cloud-1.key",
    }  # fmt: skip
    ca = x509.load_pem_x509_certificate(base64.b64decode(data["ca.pem"]))
    replica = x509.load_pem_x509_certificate(base64.b64decode(data["baetyl-cloud-1.pem"]))
    assert replica.subject.rfc4514_string() == "CN=baetyl-cloud:baetyl-cloud-1"
    assert replica.issuer == ca.subject
    db = documents[("Secret", "baetyl-cloud-db")]["data"]["url"]
    assert base64.b64decode(db).decode() == DB
    # A second rendering keeps the CA and the secret key (a new CA would cut every node off).
    again = load_keys(tmp_path / "keys", ["baetyl-cloud-0", "baetyl-cloud-1", "baetyl-cloud-2"])
    assert again["ca.key"] == keys["ca.key"]
    assert again["secret.key"] == keys["secret.key"]
    assert again["baetyl-cloud-0.pem"] == keys["baetyl-cloud-0.pem"]
    assert "baetyl-cloud-2.pem" in again


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"replicas": 0}, "replicas must be 1 to 32"),
        ({"replicas": 33}, "replicas must be 1 to 32"),
        ({"rest_node_port": 8080}, "range 30000-32767"),
        ({"mqtt_node_port": 30004}, "must differ"),
        ({"public_host": "http://x"}, "public host"),
        ({"public_host": ""}, "public host"),
    ],
)
def test_settings_that_cannot_work_are_refused(options: dict[str, Any], message: str) -> None:
    values = {"public_host": "cloud.example.com", **options}
    with pytest.raises(ManifestError, match=message):
        CloudManifestSettings(**values)


def test_a_database_the_replicas_cannot_share_or_missing_keys_are_refused(tmp_path: Path) -> None:
    keys = load_keys(tmp_path / "keys", ["baetyl-cloud-0"])
    with pytest.raises(ManifestError, match="PostgreSQL"):
        objects(CloudManifestSettings(public_host="h", replicas=1), keys=keys, db_url="sqlite:///x")
    with pytest.raises(ManifestError, match=r"baetyl-cloud-1\.pem"):
        objects(CloudManifestSettings(public_host="h", replicas=2), keys=keys, db_url=DB)
    with pytest.raises(ManifestError, match="go together"):
        objects(EXAMPLE_SETTINGS, keys=keys)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BAETYL_CLOUD), "--log-level", "warning", "kube-manifest", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_the_command_prints_the_manifests_and_refuses_bad_options(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    done = run_cli("--public-host", "cloud.example.com", "--keys-dir", str(keys), "--db", DB)
    assert done.returncode == 0, done.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(done.stdout)]
    assert kinds.count("Secret") == 2
    assert (keys / "ca.key").stat().st_mode & 0o077 == 0
    plain = run_cli("--public-host", "cloud.example.com")
    assert plain.returncode == 0
    assert plain.stdout == EXAMPLE.read_text(encoding="utf-8")
    for args, expected in (
        (("--public-host", "h", "--keys-dir", str(keys)), "--keys-dir and --db go together"),
        (("--public-host", "h", "--replicas", "0"), "expected a whole number from 1 to 32"),
        (("--public-host", "h", "--mqtt-node-port", "80"), "--mqtt-node-port"),
        (("--public-host", "a/b"), "public host"),
        (("--public-host", "h", "--keys-dir", str(keys), "--db", "sqlite:///x.db"), "PostgreSQL"),
    ):
        refused = run_cli(*args)
        assert refused.returncode == 2, (args, refused.stdout)
        assert expected in refused.stderr
        assert refused.stdout == ""
