"""Fields of an app spec that the node's backend accepts but does not act on, as warnings.

Specs carry every field of Baetyl's v2 spec (decision #145), and some have no meaning for one
backend: an image for a native process, `devices` for a process that opens `/dev` itself, an
autoscaler on a node without metrics. Silently dropping them would leave a user believing they
work; refusing them would refuse Baetyl's own bodies. So the app is run and its status says
which fields were left unused (`warnings` of AppStats, issue 16).
"""

from __future__ import annotations

from typing import Literal

from agent.contracts.resources import Application, Service

BackendKind = Literal["native", "kube"]


def unused_fields(app: Application, backend: BackendKind) -> list[str]:
    """One line per field of `app` that `backend` leaves unused, naming where it is."""
    found: list[str] = []
    if app.auto_scale_cfg is not None and app.auto_scale_cfg.metrics:
        found.append("autoScaleCfg: no autoscaler runs on this node; the app keeps its replica")
    if app.ota:
        found.append("ota: no Android node here; the OTA block is kept, not acted on")
    if app.node_selector:
        found.append("nodeSelector: a node here is one host; the selector is not used")
    if backend == "native":
        found += _native_app(app)
    every = [("initServices", s) for s in app.init_services] + [
        ("services", s) for s in app.services
    ]
    for group, service in every:
        where = f"{group} {service.name!r}"
        if backend == "native":
            lines = _native_service(service)
        else:
            lines = _kube_service(service, app.runtime_class)
        found += [f"{where}: {line}" for line in lines]
    return found


def _native_app(app: Application) -> list[str]:
    found: list[str] = []
    if app.dns_policy:
        found.append("dnsPolicy: a native process uses the host's resolver")
    return found


def _native_service(service: Service) -> list[str]:
    found: list[str] = []
    if service.image and (service.command or service.program_config is not None):
        found.append("image: a native service runs its command, not an image")
    if service.image_pull_policy:
        found.append("imagePullPolicy: no image is pulled for a native service")
    if service.hostname:
        found.append("hostname: a native process has the host's name")
    if service.devices:
        found.append("devices: a native process opens device paths itself, as the agent's user")
    if service.runtime:
        found.append("runtime: no container runtime runs a native service")
    if service.startup_probe is not None:
        found.append("startupProbe: the native backend runs liveness and readiness probes only")
    if service.security is not None and service.security != type(service.security)():
        found.append("security: a native process runs as the agent's user, unconfined")
    for index, port in enumerate(service.ports):
        if port.service_type is not None or port.node_port is not None:
            found.append(f"ports[{index}]: no Kubernetes Service on a native node")
        if port.host_ip:
            found.append(f"ports[{index}].hostIP: the native backend does not bind addresses")
    return found


def _kube_service(service: Service, pod_runtime: str) -> list[str]:
    if service.runtime and service.runtime != pod_runtime:
        return [f"runtime: a pod has one runtime class; the app's pod runs with {pod_runtime!r}"]
    return []
