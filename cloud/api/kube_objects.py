"""Kubernetes objects as Baetyl converts them (baetyl-cloud `api/yaml.go`): into the bodies of
this cloud's own REST routes, which then validate them as they validate any request.

- Secret: `kubernetes.io/dockerconfigjson` becomes a registry, `kubernetes.io/tls` a
  certificate, any other type a secret (data base64-decoded; `stringData` as given).
- ConfigMap: a configuration; an item whose text is a YAML mapping with `type: object` or
  `type: function` is an object item, any other item is kept as text.
- Deployment, DaemonSet, Job: a container app in kube mode (workload from the kind, replicas,
  the object's labels, containers as services, volumes, imagePullSecrets as registries, the
  Job's counts and restart policy as `jobConfig`).
- Service: the NodePorts it declares go onto the container ports of the apps it selects by
  their labels (a ClusterIP Service changes nothing, as in Baetyl).

Only the fields that are converted are read; any other field is refused by name, so a manifest
is never half-applied in silence (Baetyl drops such fields). Fields that only Kubernetes' own
machinery reads (annotations, `status`, the workload `selector`, the pod template's metadata, a
Service port's `name`) are accepted and ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import Field, ValidationError

from agent.contracts.wire import WireModel, describe_errors
from cloud.errors import Invalid

KINDS: Final = ("Secret", "ConfigMap", "Deployment", "DaemonSet", "Job", "Service")
API_VERSIONS: Final = {
    "Secret": "v1",
    "ConfigMap": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
}
WORKLOADS: Final = {"Deployment": "deployment", "DaemonSet": "daemonset", "Job": "job"}
DOCKER_CONFIG: Final = "kubernetes.io/dockerconfigjson"
TLS: Final = "kubernetes.io/tls"
OBJECT_TYPES: Final = ("object", "function")

Ignored = Any  # a field Kubernetes' machinery reads and this cloud has no use for


class _Kube(WireModel):
    """A Kubernetes object part: camelCase, only the converted fields, anything else refused."""


class ObjectMeta(_Kube):
    """`metadata`: the name, the labels and the namespace (which must be the token's)."""

    name: Annotated[str, Field(min_length=1)]
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: Ignored = None
    uid: Ignored = None
    resource_version: Ignored = None
    generation: Ignored = None
    creation_timestamp: Ignored = None
    managed_fields: Ignored = None
    self_link: Ignored = None


class _Object(_Kube):
    api_version: str
    kind: str
    metadata: ObjectMeta
    status: Ignored = None


class KubeSecret(_Object):
    """A Secret."""

    type: str = "Opaque"
    data: dict[str, str] = Field(default_factory=dict, repr=False)
    string_data: dict[str, str] = Field(default_factory=dict, repr=False)


class KubeConfigMap(_Object):
    """A ConfigMap."""

    data: dict[str, str] = Field(default_factory=dict)


class EnvVar(_Kube):
    """An environment variable with a literal value (`valueFrom` is not converted)."""

    name: str
    value: str = ""


class KubePort(_Kube):
    """A container port."""

    container_port: int
    host_port: int | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")
    protocol: str | None = None
    name: Ignored = None


class KubeMount(_Kube):
    """A volume mount."""

    name: str
    mount_path: str
    read_only: bool | None = None
    sub_path: str | None = None


class KubeResources(_Kube):
    """Resource limits and requests (Kubernetes quantities, numbers accepted)."""

    limits: dict[str, str | int | float] = Field(default_factory=dict)
    requests: dict[str, str | int | float] = Field(default_factory=dict)


class Container(_Kube):
    """A container: one service of the app."""

    name: str
    image: str = ""
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    working_dir: str = ""
    env: list[EnvVar] = Field(default_factory=list)
    ports: list[KubePort] = Field(default_factory=list)
    volume_mounts: list[KubeMount] = Field(default_factory=list)
    resources: KubeResources | None = None
    liveness_probe: dict[str, Any] | None = None
    readiness_probe: dict[str, Any] | None = None
    startup_probe: dict[str, Any] | None = None
    image_pull_policy: str | None = None
    security_context: dict[str, Any] | None = None


class NameRef(_Kube):
    """`{name}` (an imagePullSecret, a ConfigMap volume's source)."""

    name: str


class SecretSource(_Kube):
    """A Secret volume's source."""

    secret_name: str


class HostPathSource(_Kube):
    """A hostPath volume's source."""

    path: str
    type: str | None = None


class EmptyDirSource(_Kube):
    """An emptyDir volume's source."""

    medium: str | None = None
    size_limit: str | int | None = None


class KubeVolume(_Kube):
    """A volume: ConfigMap, Secret, hostPath or emptyDir."""

    name: str
    config_map: NameRef | None = None
    secret: SecretSource | None = None
    host_path: HostPathSource | None = None
    empty_dir: EmptyDirSource | None = None


class PodSpec(_Kube):
    """The pod a workload runs."""

    containers: Annotated[list[Container], Field(min_length=1)]
    init_containers: list[Container] = Field(default_factory=list)
    volumes: list[KubeVolume] = Field(default_factory=list)
    image_pull_secrets: list[NameRef] = Field(default_factory=list)
    host_network: bool = False
    dns_policy: str | None = None
    restart_policy: str | None = None


class PodTemplate(_Kube):
    """`spec.template`; its metadata selects pods in Kubernetes and is ignored here."""

    metadata: Ignored = None
    spec: PodSpec


class WorkloadSpec(_Kube):
    """The spec of a Deployment, DaemonSet or Job (each kind reads its own fields)."""

    template: PodTemplate
    selector: Ignored = None
    replicas: int | None = None
    backoff_limit: int | None = None
    completions: int | None = None
    parallelism: int | None = None


class KubeWorkload(_Object):
    """A Deployment, DaemonSet or Job."""

    spec: WorkloadSpec


class ServicePort(_Kube):
    """A Service port: `targetPort` (default `port`) is the container port it leads to."""

    port: int
    target_port: int | None = None
    node_port: int | None = None
    protocol: str | None = None
    name: Ignored = None


class ServiceSpec(_Kube):
    """What a Service selects and exposes."""

    selector: Annotated[dict[str, str], Field(min_length=1)]
    ports: Annotated[list[ServicePort], Field(min_length=1)]
    type: Literal["ClusterIP", "NodePort"] = "ClusterIP"


class KubeService(_Object):
    """A Service."""

    spec: ServiceSpec


@dataclass(frozen=True)
class Converted:
    """A Kubernetes object as the body of one of this cloud's kinds."""

    kind: str  # registry, secret, certificate, config or app
    name: str
    body: dict[str, Any]


@dataclass(frozen=True)
class PortRule:
    """A Service: the apps its selector matches get `nodePorts` (container port → NodePort)."""

    name: str
    namespace: str | None
    selector: dict[str, str]
    node_ports: dict[int, int]


_MODELS: Final[dict[str, type[_Object]]] = {
    "Secret": KubeSecret,
    "ConfigMap": KubeConfigMap,
    "Deployment": KubeWorkload,
    "DaemonSet": KubeWorkload,
    "Job": KubeWorkload,
    "Service": KubeService,
}


def is_kube(value: Mapping[str, Any]) -> bool:
    """Whether a document is a Kubernetes object (it names its `apiVersion`)."""
    return "apiVersion" in value


def parse(value: dict[str, Any]) -> _Object:
    """The document as the Kubernetes object of its kind; Invalid naming every problem."""
    kind = value.get("kind")
    if not isinstance(kind, str) or kind not in _MODELS:
        raise Invalid(
            f"kind: Kubernetes kind {kind!r} is not converted; the kinds are {', '.join(KINDS)}"
        )
    model = _MODELS[kind]
    if value.get("apiVersion") != API_VERSIONS[kind]:
        raise Invalid(
            f"apiVersion: a {kind} is {API_VERSIONS[kind]}, not {value.get('apiVersion')!r}"
        )
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        lines = [
            line.replace(": unknown field", ": not converted (or misspelt)")
            for line in describe_errors(exc, model)
        ]
        raise Invalid("; ".join(lines)) from exc


def kind_of(obj: _Object) -> str:
    """The Baetyl-Py kind a Kubernetes object becomes (`port-rule` for a Service)."""
    if isinstance(obj, KubeSecret):
        return {DOCKER_CONFIG: "registry", TLS: "certificate"}.get(obj.type, "secret")
    if isinstance(obj, KubeConfigMap):
        return "config"
    if isinstance(obj, KubeWorkload):
        return "app"
    return "port-rule"


def secrets_mounted(obj: _Object) -> set[str]:
    """The Secrets a workload's volumes name (whose types decide how they are mounted)."""
    if not isinstance(obj, KubeWorkload):
        return set()
    return {v.secret.secret_name for v in obj.spec.template.spec.volumes if v.secret is not None}


def convert(obj: _Object, secret_types: Mapping[str, str]) -> Converted | PortRule:
    """The body (or, for a Service, the port rule) of a parsed object. `secret_types` gives the
    kind (secret, certificate, registry) of each Secret a workload mounts that is known."""
    if isinstance(obj, KubeSecret):
        return _secret(obj)
    if isinstance(obj, KubeConfigMap):
        return Converted("config", obj.metadata.name, _config(obj))
    if isinstance(obj, KubeWorkload):
        return Converted("app", obj.metadata.name, _app(obj, secret_types))
    if isinstance(obj, KubeService):
        return _port_rule(obj)
    raise AssertionError(f"no conversion of {type(obj).__name__}")  # pragma: no cover


def _head(obj: _Object) -> dict[str, Any]:
    head: dict[str, Any] = {"name": obj.metadata.name, "labels": obj.metadata.labels}
    if obj.metadata.namespace is not None:
        head["namespace"] = obj.metadata.namespace
    return head


def _secret(secret: KubeSecret) -> Converted:
    data = {key: _decoded(key, text) for key, text in secret.data.items()}
    data.update(secret.string_data)
    kind = kind_of(secret)
    if kind == "registry":
        return Converted(kind, secret.metadata.name, {**_head(secret), **_registry(data)})
    if kind == "certificate":
        unknown = sorted(set(data) - {"tls.crt", "tls.key"})
        if unknown:
            raise Invalid(
                f"data: a kubernetes.io/tls Secret becomes a certificate of tls.crt and tls.key; "
                f"{', '.join(unknown)} would be lost"
            )
        if not data.get("tls.crt") or not data.get("tls.key"):
            raise Invalid("data: a kubernetes.io/tls Secret needs tls.crt and tls.key")
        pem = {"certificate": data["tls.crt"], "key": data["tls.key"]}
        return Converted(kind, secret.metadata.name, {**_head(secret), "data": pem})
    return Converted(kind, secret.metadata.name, {**_head(secret), "data": data})


def _decoded(key: str, text: str) -> str:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise Invalid(f"data.{key}: not base64 (use stringData for plain text)") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"data.{key}: secrets hold text; this value is not UTF-8") from None


def _registry(data: Mapping[str, str]) -> dict[str, str]:
    """Address, username and password of a `.dockerconfigjson` with exactly one registry."""
    text = data.get(".dockerconfigjson")
    if text is None:
        raise Invalid("data: a kubernetes.io/dockerconfigjson Secret needs .dockerconfigjson")
    try:
        auths = json.loads(text).get("auths")
    except (ValueError, AttributeError):
        auths = None
    if not isinstance(auths, dict) or len(auths) != 1:
        raise Invalid(
            'data..dockerconfigjson: expected {"auths": {ADDRESS: {username, password}}} '
            "naming exactly one registry"
        )
    ((address, entry),) = auths.items()
    if not isinstance(entry, dict):
        raise Invalid(f"data..dockerconfigjson: auths.{address} must be an object")
    fields = {str(k).lower(): v for k, v in entry.items()}  # Docker writes Username, Password
    username, password = fields.get("username"), fields.get("password")
    if not username and not password and isinstance(fields.get("auth"), str):
        try:
            username, _, password = base64.b64decode(fields["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Invalid(f"data..dockerconfigjson: auths.{address}.auth is not base64") from None
    if not isinstance(username, str) or not isinstance(password, str):
        raise Invalid(f"data..dockerconfigjson: auths.{address} needs a username and a password")
    return {"address": str(address), "username": username, "password": password}


def _config(config: KubeConfigMap) -> dict[str, Any]:
    items = [{"key": key, "value": _item(text)} for key, text in config.data.items()]
    return {**_head(config), "data": items}


def _item(text: str) -> dict[str, Any]:
    """A ConfigMap value: an object item when it is a YAML mapping of `type: object|function`
    (values read as text, as Baetyl reads them), else the text itself."""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = None
    if (
        isinstance(parsed, dict)
        and parsed.get("type") in OBJECT_TYPES
        and all(isinstance(v, str | int | float | bool) for v in parsed.values())
    ):
        return {str(k): _text(v) for k, v in parsed.items()}
    return {"type": "kv", "value": text}


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _app(workload: KubeWorkload, secret_types: Mapping[str, str]) -> dict[str, Any]:
    kind, spec = workload.kind, workload.spec
    pod = spec.template.spec
    body: dict[str, Any] = {
        **_head(workload),
        "type": "container",
        "mode": "kube",
        "workload": WORKLOADS[kind],
        "services": [_service(c) for c in pod.containers],
        "volumes": [_volume(v, secret_types) for v in pod.volumes],
        "registries": [{"name": ref.name} for ref in pod.image_pull_secrets],
    }
    if pod.init_containers:
        body["initServices"] = [_service(c) for c in pod.init_containers]
    if pod.host_network:
        body["hostNetwork"] = True
    if pod.dns_policy is not None:
        body["dnsPolicy"] = pod.dns_policy
    _only(kind, spec, {"Deployment": {"replicas"}, "DaemonSet": set(), "Job": _JOB_FIELDS}[kind])
    if kind == "Deployment":
        body["replica"] = 1 if spec.replicas is None else spec.replicas
    if kind == "Job":
        job: dict[str, Any] = {"restartPolicy": pod.restart_policy or "Never"}
        for field in _JOB_FIELDS:
            if getattr(spec, field) is not None:
                job[_CAMEL[field]] = getattr(spec, field)
        body["jobConfig"] = job
    elif pod.restart_policy not in (None, "Always"):
        raise Invalid(
            f"spec.template.spec.restartPolicy: a {kind}'s pods always restart "
            f"(Kubernetes allows only Always), not {pod.restart_policy!r}"
        )
    return body


_JOB_FIELDS: Final = {"backoff_limit", "completions", "parallelism"}
_CAMEL: Final = {
    "backoff_limit": "backoffLimit",
    "completions": "completions",
    "parallelism": "parallelism",
    "replicas": "replicas",
}


def _only(kind: str, spec: WorkloadSpec, allowed: set[str]) -> None:
    """Refuse a workload field another kind has (a DaemonSet has no `replicas`)."""
    given = sorted(
        _CAMEL[field]
        for field in ("replicas", *_JOB_FIELDS)
        if field not in allowed and getattr(spec, field) is not None
    )
    if given:
        raise Invalid(f"spec.{given[0]}: a {kind} has no such field in Kubernetes")


def _service(container: Container) -> dict[str, Any]:
    service: dict[str, Any] = {"name": container.name, "image": container.image}
    for field, given in (
        ("command", container.command),
        ("args", container.args),
        ("workingDir", container.working_dir),
        ("imagePullPolicy", container.image_pull_policy),
        ("livenessProbe", container.liveness_probe),
        ("readinessProbe", container.readiness_probe),
        ("startupProbe", container.startup_probe),
        ("security", container.security_context),
    ):
        if given:
            service[field] = given
    if container.env:
        service["env"] = [{"name": e.name, "value": e.value} for e in container.env]
    if container.ports:
        service["ports"] = [_port(p) for p in container.ports]
    if container.volume_mounts:
        service["volumeMounts"] = [_mount(m) for m in container.volume_mounts]
    if container.resources is not None:
        service["resources"] = {
            "limits": {k: _text(v) for k, v in container.resources.limits.items()},
            "requests": {k: _text(v) for k, v in container.resources.requests.items()},
        }
    return service


def _port(port: KubePort) -> dict[str, Any]:
    converted: dict[str, Any] = {"containerPort": port.container_port}
    for field, given in (
        ("hostPort", port.host_port),
        ("hostIP", port.host_ip),
        ("protocol", port.protocol),
    ):
        if given is not None:
            converted[field] = given
    return converted


def _mount(mount: KubeMount) -> dict[str, Any]:
    converted: dict[str, Any] = {"name": mount.name, "mountPath": mount.mount_path}
    if mount.read_only is not None:
        converted["readOnly"] = mount.read_only
    if mount.sub_path is not None:
        converted["subPath"] = mount.sub_path
    return converted


def _volume(volume: KubeVolume, secret_types: Mapping[str, str]) -> dict[str, Any]:
    sources = [volume.config_map, volume.secret, volume.host_path, volume.empty_dir]
    if sum(source is not None for source in sources) != 1:
        raise Invalid(
            f"volume {volume.name!r}: exactly one of configMap, secret, hostPath and emptyDir "
            "is converted"
        )
    if volume.config_map is not None:
        return {"name": volume.name, "config": {"name": volume.config_map.name}}
    if volume.secret is not None:
        name = volume.secret.secret_name
        kind = secret_types.get(name, "secret")
        if kind == "registry":
            raise Invalid(
                f"volume {volume.name!r}: {name!r} is a registry (kubernetes.io/dockerconfigjson);"
                " name it in imagePullSecrets, it cannot be mounted"
            )
        return {"name": volume.name, kind: {"name": name}}
    if volume.host_path is not None:
        host_path: dict[str, Any] = {"path": volume.host_path.path}
        if volume.host_path.type is not None:
            host_path["type"] = volume.host_path.type
        return {"name": volume.name, "hostPath": host_path}
    assert volume.empty_dir is not None
    empty: dict[str, Any] = {}
    if volume.empty_dir.medium:
        empty["medium"] = volume.empty_dir.medium
    if volume.empty_dir.size_limit is not None:
        empty["sizeLimit"] = _text(volume.empty_dir.size_limit)
    return {"name": volume.name, "emptyDir": empty}


def _port_rule(service: KubeService) -> PortRule:
    spec = service.spec
    node_ports: dict[int, int] = {}
    if spec.type == "NodePort":
        for port in spec.ports:
            if port.node_port is None:
                raise Invalid(
                    f"spec.ports: port {port.port} needs a nodePort: this cloud does not pick one"
                )
            node_ports[port.port if port.target_port is None else port.target_port] = port.node_port
    return PortRule(service.metadata.name, service.metadata.namespace, spec.selector, node_ports)
