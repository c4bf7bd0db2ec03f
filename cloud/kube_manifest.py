"""The cloud on Kubernetes: the manifests `baetyl-cloud kube-manifest` prints
(deploy/kubernetes/cloud/, docs/kubernetes.md "The cloud on Kubernetes").

What runs, in one namespace:
- `baetyl-broker`, a Deployment of one pod running `baetyl-cloud broker`: Mosquitto with mutual
  TLS, the ACL and the node-limits plugin, following the deny list and the revoked
  certificates in the database (cloud.serve_broker). Its Service is a NodePort: nodes dial it.
- `baetyl-cloud`, the REST API replicas: a StatefulSet, so that every replica has a stable name
  (`baetyl-cloud-0`, `-1`, …) and with it its own MQTT identity, `baetyl-cloud:<pod name>`,
  which the broker's ACL lists (decision #135). Its Service is a NodePort too: the REST API for
  users and installing nodes.
- Secrets: `baetyl-cloud-keys` (the CA, `secret.key` and each replica's client certificate,
  shared as DESIGN §11 requires of replicas) and `baetyl-cloud-db` (the PostgreSQL URL).

Pods find the broker through the Service variables Kubernetes puts in every pod created after
the Service (`$(BAETYL_BROKER_SERVICE_HOST)`), so no cluster DNS is needed. Rendering is pure:
`keys` are the files to put in the keys Secret (see `load_keys`, which makes them).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent.contracts.version import VERSION
from cloud.broker.pki_files import ensure_replica_certificate, load_or_create_ca
from cloud.secretbox import SecretBox

CLOUD_IMAGE = "baetyl-py/cloud"
"""The cloud image's name; the tag is VERSION (tools/kube/cloud_image builds it)."""
DIST_DIR = "/opt/baetyl-cloud/dist"
"""Where the cloud image holds the agent wheel it serves to installing nodes."""
DATA_DIR = "/var/lib/baetyl-cloud"
KEYS_DIR = "/etc/baetyl-cloud/keys"
REST_PORT = 9004
MQTT_PORT = 8883
BROKER = "baetyl-broker"
CLOUD = "baetyl-cloud"
KEYS_SECRET = "baetyl-cloud-keys"  # noqa: S105 - a Secret's name
DB_SECRET = "baetyl-cloud-db"  # noqa: S105 - a Secret's name
DB_ENV = "BAETYL_CLOUD_DB"
"""The variable `--db` defaults to: the URL stays out of the command line."""
SHARED_KEYS = ("ca.pem", "ca.key", "secret.key")
LABEL = "app.kubernetes.io/name"


class ManifestError(ValueError):
    """Options that cannot make a working deployment."""


@dataclass(frozen=True)
class CloudManifestSettings:
    """What the manifests are rendered from.

    Attributes:
        public_host: the address nodes and users reach the NodePorts at (a node's address,
            or a load balancer's name).
        replicas: REST API replicas (each a broker user).
        namespace: the Kubernetes namespace of everything.
        image: the cloud image (the broker runs the same one).
        rest_node_port, mqtt_node_port: the Services' NodePorts.
        init_url: the address installing nodes use (default `http://public_host:rest_node_port`).
        node_mqtt_url: the broker address given to nodes (default
            `mqtts://public_host:mqtt_node_port`).
        agent_image: the agent image of the Kubernetes install manifest (None: the cloud's
            default).
        sync_interval: seconds between two reads of the deny list by the broker.
    """

    public_host: str
    replicas: int = 2
    namespace: str = "baetyl-cloud"
    image: str = f"{CLOUD_IMAGE}:{VERSION}"
    rest_node_port: int = 30004
    mqtt_node_port: int = 30883
    init_url: str | None = None
    node_mqtt_url: str | None = None
    agent_image: str | None = None
    sync_interval: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 32:
            raise ManifestError(f"replicas must be 1 to 32, got {self.replicas}")
        for name, port in (("rest", self.rest_node_port), ("mqtt", self.mqtt_node_port)):
            if not 30000 <= port <= 32767:
                raise ManifestError(
                    f"the {name} NodePort must be in Kubernetes' range 30000-32767, got {port}"
                )
        if self.rest_node_port == self.mqtt_node_port:
            raise ManifestError("the REST and MQTT NodePorts must differ")
        if not self.public_host or any(c in self.public_host for c in "/: \t"):
            raise ManifestError(f"public host must be a host name or address: {self.public_host!r}")

    @property
    def replica_names(self) -> list[str]:
        """The StatefulSet's pod names: each replica's MQTT identity."""
        return [f"{CLOUD}-{i}" for i in range(self.replicas)]

    @property
    def init(self) -> str:
        return self.init_url or f"http://{self.public_host}:{self.rest_node_port}"

    @property
    def node_mqtt(self) -> str:
        return self.node_mqtt_url or f"mqtts://{self.public_host}:{self.mqtt_node_port}"


def load_keys(directory: Path, replica_names: Sequence[str]) -> dict[str, bytes]:
    """Blocking: the keys Secret's files, created in `directory` when missing and kept there.

    The CA and `secret.key` are made once and reused by every later rendering (a new CA would
    cut off every node, a new secret key every sealed secret: back the directory up). Each
    replica's client certificate (`<replica>.pem`, `.key`) is issued by that CA when missing.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = load_or_create_ca(directory)
    SecretBox.load_or_create(directory / "secret.key")
    files = {name: (directory / name).read_bytes() for name in SHARED_KEYS}
    for replica in replica_names:
        cert, key = ensure_replica_certificate(directory, ca, replica)
        files[f"{replica}.pem"] = cert.read_bytes()
        files[f"{replica}.key"] = key.read_bytes()
    return files


def render(
    settings: CloudManifestSettings,
    *,
    keys: Mapping[str, bytes] | None = None,
    db_url: str | None = None,
) -> str:
    """The manifests as one multi-document YAML; the Secrets only when `keys` and `db_url`
    are given (without them, create the Secrets yourself as docs/kubernetes.md shows)."""
    return yaml.safe_dump_all(objects(settings, keys=keys, db_url=db_url), sort_keys=False)


def objects(
    settings: CloudManifestSettings,
    *,
    keys: Mapping[str, bytes] | None = None,
    db_url: str | None = None,
) -> list[dict[str, Any]]:
    """The Kubernetes objects in apply order: Services before the pods that read their
    variables."""
    if (keys is None) != (db_url is None):
        raise ManifestError("the keys and the database URL go together")
    if keys is not None:
        missing = [
            name
            for name in (*SHARED_KEYS, *(f"{r}.pem" for r in settings.replica_names))
            if name not in keys
        ]
        if missing:
            raise ManifestError(f"keys missing: {', '.join(missing)}")
    if db_url is not None and not db_url.startswith(("postgres://", "postgresql://")):
        raise ManifestError("the replicas share one PostgreSQL database: give a postgres:// URL")
    namespace = settings.namespace
    result: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    ]
    if keys is not None and db_url is not None:
        result += [
            _secret(namespace, KEYS_SECRET, keys),
            _secret(namespace, DB_SECRET, {"url": db_url.encode()}),
        ]
    result += [
        _service(settings, BROKER, MQTT_PORT, settings.mqtt_node_port),
        _service(settings, CLOUD, REST_PORT, settings.rest_node_port),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(namespace, f"{CLOUD}-pods"),
            "spec": {
                "clusterIP": "None",
                "selector": {LABEL: CLOUD},
                "ports": [{"name": "rest", "port": REST_PORT}],
            },
        },
        _broker(settings),
        _cloud(settings),
    ]
    return result


def _metadata(namespace: str, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {LABEL: name}}


def _secret(namespace: str, name: str, data: Mapping[str, bytes]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(namespace, name),
        "type": "Opaque",
        "data": {key: base64.b64encode(data[key]).decode("ascii") for key in sorted(data)},
    }


def _service(
    settings: CloudManifestSettings, name: str, port: int, node_port: int
) -> dict[str, Any]:
    port_name = "mqtts" if port == MQTT_PORT else "rest"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(settings.namespace, name),
        "spec": {
            "type": "NodePort",
            "selector": {LABEL: name},
            "ports": [{"name": port_name, "port": port, "targetPort": port, "nodePort": node_port}],
        },
    }


def _db_env() -> dict[str, Any]:
    return {"name": DB_ENV, "valueFrom": {"secretKeyRef": {"name": DB_SECRET, "key": "url"}}}


def _shared_key_mounts() -> list[dict[str, Any]]:
    """The CA and secret key where `--data-dir` expects them (the data directory itself is an
    emptyDir the process writes to)."""
    return [
        {"name": "keys", "mountPath": f"{DATA_DIR}/pki/ca.pem", "subPath": "ca.pem"},
        {"name": "keys", "mountPath": f"{DATA_DIR}/pki/ca.key", "subPath": "ca.key"},
        {"name": "keys", "mountPath": f"{DATA_DIR}/secret.key", "subPath": "secret.key"},
    ]


def _volumes() -> list[dict[str, Any]]:
    return [
        {"name": "data", "emptyDir": {}},
        {"name": "keys", "secret": {"secretName": KEYS_SECRET, "defaultMode": 0o400}},
    ]


def _broker(settings: CloudManifestSettings) -> dict[str, Any]:
    namespace = settings.namespace
    args = [
        "broker",
        "--data-dir", DATA_DIR,
        "--listen", f"0.0.0.0:{MQTT_PORT}",
        "--server-name", "$(BAETYL_BROKER_SERVICE_HOST)",
        "--server-name", BROKER,
        "--server-name", f"{BROKER}.{namespace}.svc",
        "--server-name", settings.public_host,
        "--sync-interval", f"{settings.sync_interval:g}",
    ]  # fmt: skip
    for replica in settings.replica_names:
        args += ["--replica", replica]
    probe = {"tcpSocket": {"port": MQTT_PORT}, "periodSeconds": 5}
    container = {
        "name": "broker",
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["baetyl-cloud"],
        "args": args,
        "env": [_db_env()],
        "ports": [{"name": "mqtts", "containerPort": MQTT_PORT}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "initialDelaySeconds": 30, "periodSeconds": 20},
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            # Root only to hand Mosquitto its files and drop to its account, and to signal it.
            "capabilities": {
                "drop": ["ALL"],
                "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID"],
            },
        },
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}, *_shared_key_mounts()],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(namespace, BROKER),
        "spec": {
            "replicas": 1,
            # One broker: the old pod stops before the new one takes the port and the sessions.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {LABEL: BROKER}},
            "template": {
                "metadata": {"labels": {LABEL: BROKER}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 15,
                    "containers": [container],
                    "volumes": _volumes(),
                },
            },
        },
    }


def _cloud(settings: CloudManifestSettings) -> dict[str, Any]:
    namespace = settings.namespace
    args = [
        "serve",
        "--data-dir", DATA_DIR,
        "--listen", f"0.0.0.0:{REST_PORT}",
        "--init-url", settings.init,
        "--node-mqtt-url", settings.node_mqtt,
        "--mqtt-url", "mqtts://$(BAETYL_BROKER_SERVICE_HOST):$(BAETYL_BROKER_SERVICE_PORT)",
        "--mqtt-ca", f"{KEYS_DIR}/ca.pem",
        "--mqtt-cert", f"{KEYS_DIR}/$(POD_NAME).pem",
        "--mqtt-key", f"{KEYS_DIR}/$(POD_NAME).key",
        "--mqtt-replica", "$(POD_NAME)",
        "--dist-dir", DIST_DIR,
    ]  # fmt: skip
    if settings.agent_image is not None:
        args += ["--agent-image", settings.agent_image]
    health = {"httpGet": {"path": "/health", "port": REST_PORT}}
    container = {
        "name": "cloud",
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["baetyl-cloud"],
        "args": args,
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            _db_env(),
        ],
        "ports": [{"name": "rest", "containerPort": REST_PORT}],
        "readinessProbe": {**health, "periodSeconds": 5},
        "livenessProbe": {**health, "initialDelaySeconds": 30, "periodSeconds": 20},
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "1Gi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            *_shared_key_mounts(),
            {"name": "keys", "mountPath": KEYS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(namespace, CLOUD),
        "spec": {
            "replicas": settings.replicas,
            "serviceName": f"{CLOUD}-pods",
            # Replicas are interchangeable behind the Service: start and replace them together.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {LABEL: CLOUD}},
            "template": {
                "metadata": {"labels": {LABEL: CLOUD}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 20,
                    "containers": [container],
                    "volumes": [*_volumes(), {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
