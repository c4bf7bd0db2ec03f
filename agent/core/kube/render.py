"""An app → the Kubernetes objects that run it; pure, so every rule is table-tested.

Baetyl's mapping (namespaces, labels, one workload per app, one container per service, a
ClusterIP Service named after the app plus `<app>-nodeport`), done better where it was weak:
StatefulSets and CronJobs exist, requests apply as well as limits, a Deployment rolls instead of
being deleted and recreated, and a change of a mounted configuration or secret rolls the pods
(a checksum on the pod template). Every object carries the `baetyl-managed` label, so objects
of removed apps are found and pruned by label.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.contracts.resources import (
    Application,
    ContainerPort,
    Secret,
    Service,
    Volume,
)
from agent.core.backend import Deployment, NodeIdentity, baetyl_env

Manifest = dict[str, Any]

SYSTEM_NAMESPACE = "baetyl-edge-system"
USER_NAMESPACE = "baetyl-edge"
APP_LABEL = "baetyl-app-name"
VERSION_LABEL = "baetyl-app-version"
SERVICE_LABEL = "baetyl-service-name"
MANAGED_LABEL = "baetyl-managed"  # value: "true"; what pruning selects
CHECKSUM_ANNOTATION = "baetyl-resources-checksum"
VERSION_ANNOTATION = "baetyl-app-version"  # the whole version (the label may be a digest of it)
REGISTRY_KEY = ".dockerconfigjson"
DEFAULT_PULL_POLICY = "IfNotPresent"  # an edge node is often offline: use the image it has


@dataclass(frozen=True)
class Capabilities:
    """What the API server serves that changes the rendering (read once at start)."""

    cronjob_api: str = "batch/v1"  # batch/v1beta1 before Kubernetes 1.21


@dataclass(frozen=True)
class Rendered:
    """Everything one app needs, in apply order, and the namespace it lives in."""

    namespace: str
    objects: tuple[Manifest, ...] = field(default_factory=tuple)

    @property
    def workload(self) -> Manifest:
        """The app's workload (Deployment, DaemonSet, StatefulSet, Job or CronJob)."""
        return next(o for o in self.objects if o["kind"] in WORKLOAD_KINDS)


WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob")
_KIND_OF_WORKLOAD = {kind.lower(): kind for kind in WORKLOAD_KINDS}


def workload_kind(app: Application) -> str:
    """The kind of the app's workload: `Deployment` for `workload: deployment`, …"""
    return _KIND_OF_WORKLOAD[app.workload]


def namespace_of(app: Application) -> str:
    """`baetyl-edge-system` for system apps, `baetyl-edge` for the user's."""
    return SYSTEM_NAMESPACE if app.system else USER_NAMESPACE


def service_object_name(name: str) -> str:
    """A Kubernetes Service name (a DNS-1035 label) for an app name, which may hold dots."""
    cleaned = name.replace(".", "-")
    return cleaned if cleaned[0].isalpha() else f"app-{cleaned}"[:63]


def render(
    deployment: Deployment, identity: NodeIdentity, capabilities: Capabilities = Capabilities()
) -> Rendered:
    """The objects of `deployment`: Namespace, ConfigMaps, Secrets, workload, Services."""
    app = deployment.app
    namespace = namespace_of(app)
    registries = _registries(deployment)
    objects: list[Manifest] = [_namespace(namespace)]
    for volume in app.volumes:
        if volume.config is not None:
            config = deployment.configs[volume.config.name]
            objects.append(_config_map(namespace, config.name, config.version, config.data))
        elif volume.secret is not None and volume.secret.name not in registries:
            secret = deployment.secrets[volume.secret.name]
            objects.append(_secret(namespace, secret))
    objects += [_registry_secret(namespace, registries[name]) for name in sorted(registries)]
    objects.append(_workload(deployment, identity, namespace, sorted(registries), capabilities))
    objects += _services(app, namespace)
    return Rendered(namespace, tuple(objects))


def _metadata(name: str, namespace: str | None, labels: Mapping[str, str] = {}) -> Manifest:
    meta: Manifest = {"name": name, "labels": {**labels, MANAGED_LABEL: "true"}}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _namespace(name: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _metadata(name, None)}


def _config_map(namespace: str, name: str, version: str, data: Mapping[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(name, namespace, {"baetyl-config-version": _label_safe(version)}),
        "data": dict(data),
    }


def _secret(
    namespace: str, secret: Secret, kind: str = "Opaque", data: Mapping[str, str] | None = None
) -> Manifest:
    """A Secret holding `data` (the secret's own by default), base64 encoded."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(
            secret.name, namespace, {"baetyl-secret-version": _label_safe(secret.version)}
        ),
        "type": kind,
        "data": {key: _b64(value) for key, value in (data or secret.data).items()},
    }


def _registries(deployment: Deployment) -> dict[str, Secret]:
    """The app's registry secrets by name: they become image pull secrets, never volumes."""
    found = {}
    for volume in deployment.app.volumes:
        if volume.secret is not None:
            secret = deployment.secrets[volume.secret.name]
            if secret.secret_type == "registry":  # noqa: S105 - a type name
                found[secret.name] = secret
    return found


def _registry_secret(namespace: str, secret: Secret) -> Manifest:
    address = secret.data.get("address", "")
    username = secret.data.get("username", "")
    password = secret.data.get("password", "")
    auth = {
        "username": username,
        "password": password,
        "auth": _b64(f"{username}:{password}"),
    }
    document = json.dumps({"auths": {address: auth}}, sort_keys=True)
    return _secret(namespace, secret, "kubernetes.io/dockerconfigjson", {REGISTRY_KEY: document})


def _workload(
    deployment: Deployment,
    identity: NodeIdentity,
    namespace: str,
    pull_secrets: list[str],
    capabilities: Capabilities,
) -> Manifest:
    app = deployment.app
    labels = {**app.labels, APP_LABEL: app.name, VERSION_LABEL: _label_safe(app.version)}
    template = {
        "metadata": {
            "labels": {**labels, MANAGED_LABEL: "true"},
            "annotations": {CHECKSUM_ANNOTATION: resources_checksum(deployment)},
        },
        "spec": _pod_spec(deployment, identity, pull_secrets),
    }
    selector = {"matchLabels": {APP_LABEL: app.name}}
    meta = _metadata(app.name, namespace, labels)
    meta["annotations"] = {VERSION_ANNOTATION: app.version}
    if app.workload == "deployment":
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": app.replica,
                "selector": selector,
                "strategy": _rollout(app),
                "template": template,
            },
        }
    if app.workload == "daemonset":
        return {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta,
            "spec": {"selector": selector, "template": template},
        }
    if app.workload == "statefulset":
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": meta,
            "spec": {
                "replicas": app.replica,
                "serviceName": service_object_name(app.name),
                "podManagementPolicy": "Parallel",
                "selector": selector,
                "template": template,
            },
        }
    job_spec = _job_spec(app, template)
    if app.workload == "job":
        # A Job's template cannot change: each version is its own Job, the old one is pruned.
        meta["name"] = job_name(app)
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec}
    return {
        "apiVersion": capabilities.cronjob_api,
        "kind": "CronJob",
        "metadata": meta,
        "spec": {
            "schedule": app.cron_schedule,
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {"metadata": {"labels": labels}, "spec": job_spec},
        },
    }


def job_name(app: Application) -> str:
    """`<app>-<8 hex of the version>`: one Job per version (a Job's pods cannot be changed)."""
    digest = hashlib.sha256(app.version.encode()).hexdigest()[:7]
    return f"{app.name}-{digest}"


def _job_spec(app: Application, template: Manifest) -> Manifest:
    config = app.job_config
    completions = config.completions if config else 1
    template["spec"]["restartPolicy"] = config.restart_policy if config else "Never"
    return {
        "completions": completions,
        "parallelism": config.parallelism if config else 1,
        "backoffLimit": config.backoff_limit if config else 6,
        "template": template,
    }


def _rollout(app: Application) -> Manifest:
    """Roll one new pod at a time and never drop below the ready count, unless pods of two
    versions could not run side by side on one node (host ports, host network)."""
    every = [*app.init_services, *app.services]
    if app.host_network or any(p.host_port for s in every for p in s.ports):
        return {"type": "Recreate"}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


def resources_checksum(deployment: Deployment) -> str:
    """A digest of every configuration and secret the app mounts: when one changes, so does the
    pod template, and the pods roll (a mounted ConfigMap alone would change under them)."""
    parts = [
        ("config", name, config.version, sorted(config.data.items()))
        for name, config in sorted(deployment.configs.items())
    ] + [
        ("secret", name, secret.version, sorted(secret.data.items()))
        for name, secret in sorted(deployment.secrets.items())
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _pod_spec(deployment: Deployment, identity: NodeIdentity, pull_secrets: list[str]) -> Manifest:
    app = deployment.app
    registries = set(pull_secrets)
    volumes = [
        _volume(volume)
        for volume in app.volumes
        if not (volume.secret is not None and volume.secret.name in registries)
    ]
    dropped = {v.name for v in app.volumes if v.secret is not None and v.secret.name in registries}
    devices = sorted(
        {d.device_path for s in [*app.init_services, *app.services] for d in s.devices}
    )
    volumes += [
        {"name": _device_volume(path), "hostPath": {"path": path, "type": "CharDevice"}}
        for path in devices
    ]
    spec: Manifest = {
        "containers": [_container(deployment, s, identity, dropped) for s in app.services],
    }
    if app.init_services:
        spec["initContainers"] = [
            _container(deployment, s, identity, dropped) for s in app.init_services
        ]
    if volumes:
        spec["volumes"] = volumes
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in pull_secrets]
    if app.host_network:
        spec["hostNetwork"] = True
    if app.dns_policy:
        spec["dnsPolicy"] = app.dns_policy
    elif app.host_network:
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    hostname = next((s.hostname for s in app.services if s.hostname), "")
    if hostname:
        spec["hostname"] = hostname
    if app.runtime_class:
        spec["runtimeClassName"] = app.runtime_class
    return spec


def _volume(volume: Volume) -> Manifest:
    if volume.config is not None:
        return {"name": volume.name, "configMap": {"name": volume.config.name}}
    if volume.secret is not None:
        return {"name": volume.name, "secret": {"secretName": volume.secret.name}}
    if volume.host_path is not None:
        host_path: Manifest = {"path": volume.host_path.path}
        if volume.host_path.type:
            host_path["type"] = volume.host_path.type
        return {"name": volume.name, "hostPath": host_path}
    empty_dir: Manifest = {}
    assert volume.empty_dir is not None  # a Volume has exactly one source
    if volume.empty_dir.medium:
        empty_dir["medium"] = volume.empty_dir.medium
    if volume.empty_dir.size_limit:
        empty_dir["sizeLimit"] = volume.empty_dir.size_limit
    return {"name": volume.name, "emptyDir": empty_dir}


def _device_volume(path: str) -> str:
    return "dev-" + hashlib.sha256(path.encode()).hexdigest()[:12]


def _container(
    deployment: Deployment, service: Service, identity: NodeIdentity, dropped: set[str]
) -> Manifest:
    env: list[Manifest] = [
        {"name": name, "value": value}
        for name, value in baetyl_env(deployment, service.name, identity, mode="kube").items()
    ]
    env.append(
        {"name": "KUBE_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    )
    platform = {item["name"] for item in env}
    env += [{"name": e.name, "value": e.value} for e in service.env if e.name not in platform]
    container: Manifest = {
        "name": service.name,
        "image": service.image,
        "imagePullPolicy": service.image_pull_policy or DEFAULT_PULL_POLICY,
        "env": env,
    }
    if service.command:
        container["command"] = list(service.command)
    if service.args:
        container["args"] = list(service.args)
    if service.working_dir:
        container["workingDir"] = service.working_dir
    if service.ports:
        container["ports"] = [_container_port(p) for p in service.ports]
    mounts = [
        _mount(m.name, m.mount_path, m.read_only, m.sub_path)
        for m in service.volume_mounts
        if m.name not in dropped
    ]
    mounts += [
        {"name": _device_volume(d.device_path), "mountPath": d.device_path} for d in service.devices
    ]
    if mounts:
        container["volumeMounts"] = mounts
    if service.resources is not None:
        resources = {
            key: dict(value)
            for key, value in (
                ("limits", service.resources.limits),
                ("requests", service.resources.requests),
            )
            if value
        }
        if resources:
            container["resources"] = resources
    for key, probe in (
        ("livenessProbe", service.liveness_probe),
        ("readinessProbe", service.readiness_probe),
        ("startupProbe", service.startup_probe),
    ):
        if probe is not None:
            container[key] = probe.to_wire()  # Kubernetes' own shape
    if service.security is not None:
        security = service.security.to_wire()
        if not security.get("privileged"):
            security.pop("privileged", None)
        if security:
            container["securityContext"] = security
    return container


def _container_port(port: ContainerPort) -> Manifest:
    rendered: Manifest = {"containerPort": port.container_port, "protocol": port.protocol}
    if port.host_port:
        rendered["hostPort"] = port.host_port
        if port.host_ip:
            rendered["hostIP"] = port.host_ip
    return rendered


def _mount(name: str, path: str, read_only: bool, sub_path: str) -> Manifest:
    mount: Manifest = {"name": name, "mountPath": path}
    if read_only:
        mount["readOnly"] = True
    if sub_path:
        mount["subPath"] = sub_path
    return mount


def _services(app: Application, namespace: str) -> list[Manifest]:
    """One ClusterIP Service named after the app, and `<app>-nodeport` for NodePort ports."""
    cluster_ports, node_ports = [], []
    for service in app.services:
        for port in service.ports:
            entry: Manifest = {
                "name": f"{service.name}-{port.container_port}-{port.protocol.lower()}"[:63],
                "port": port.container_port,
                "targetPort": port.container_port,
                "protocol": port.protocol,
            }
            if port.service_type == "NodePort":
                node_ports.append({**entry, "nodePort": port.node_port})
            else:
                cluster_ports.append(entry)
    selector = {APP_LABEL: app.name}
    found = []
    for suffix, kind, ports in (
        ("", "ClusterIP", cluster_ports),
        ("-nodeport", "NodePort", node_ports),
    ):
        if not ports:
            continue
        name = service_object_name(app.name) + suffix
        found.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _metadata(name, namespace, {APP_LABEL: app.name, SERVICE_LABEL: name}),
                "spec": {"type": kind, "selector": selector, "ports": ports},
            }
        )
    return found


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _label_safe(value: str) -> str:
    """A version as a label value: as it is when Kubernetes allows it (≤ 63 characters, starting
    and ending with a letter or digit), else a digest of it."""
    if not value or (len(value) <= 63 and value[0].isalnum() and value[-1].isalnum()):
        return value
    return hashlib.sha256(value.encode()).hexdigest()[:16]
