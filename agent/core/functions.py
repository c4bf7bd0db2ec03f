"""Function apps made runnable: each function service becomes a service running the Python
function runtime over its code (DESIGN §9, docs/functions.md).

A function app's service names a runtime and a configuration holding its code
(`functionConfig`) and lists its functions; it has no command. `runnable` turns it into a plain
app the backends already run, a pure function of the deployment:

- the code configuration is mounted at `/baetyl/function/code` in each instance;
- a configuration made here (named `<CONFIG_PREFIX><service>`) holds the runtime's config,
  `functions.json` (`functions: [{name, handler, codedir}]`, codedir under the code mount),
  mounted at `/baetyl/function/runtime`;
- the command is `<interpreter> -m function_proxy.runtime --config <that file>` (found through
  `$(BAETYL_INSTANCE_DIR)`, whatever the working directory); the runtime listens on the
  instance's `BAETYL_SERVICE_DYNAMIC_PORT`.

The stored app and what the cloud shows stay as the user wrote them: only the deployment handed
to the backend changes. Names the expansion needs and the app already uses are a DeployError.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from agent.contracts.resources import (
    Application,
    Configuration,
    ContainerPort,
    EnvVar,
    ObjectRef,
    Probe,
    Service,
    TCPSocketAction,
    Volume,
    VolumeMount,
)
from agent.contracts.version import VERSION
from agent.core.backend import DeployError, Deployment

CODE_MOUNT = "/baetyl/function/code"
RUNTIME_MOUNT = "/baetyl/function/runtime"
RUNTIME_FILE = "functions.json"
CONFIG_PREFIX = "baetyl-function-"
"""Prefix of the runtime configurations made here (one per function service)."""
RUNTIME_MODULE = "function_proxy.runtime"
DEFAULT_PROXY = "127.0.0.1:50011"
PROXY_VARIABLE = "BAETYL_FUNCTION_ADDRESS"
INSTANCE_VARIABLE = "BAETYL_INSTANCE_DIR"
"""The instance directory the native backend gives every process (mounts land below it)."""


@dataclass(frozen=True)
class KubeRuntime:
    """How a function service runs on a kube node: a container of `image` (the agent's image,
    which holds `function_proxy`) listening on all of the pod's addresses, port
    `FUNCTION_PORT_BASE + i` for the i-th function service (they share the app's pod)."""

    image: str


DEFAULT_IMAGE = f"baetyl-py/agent:{VERSION}"
"""The agent's image (tools/kube/agent_image.py), in which a kube node runs function runtimes."""
IMAGE_PYTHON = "/usr/bin/python3"
"""The Python of that image (its PYTHONPATH holds the wheel)."""
MAX_NAME = 63
FUNCTION_PORT_BASE = 50100
"""The first runtime port in a kube function app's pod."""


def runtime_port(app: Application, service: str) -> int:
    """The port a function service's runtime listens on in a kube pod."""
    names = [s.name for s in app.services if s.function_config is not None]
    return FUNCTION_PORT_BASE + names.index(service)


def runnable(
    deployment: Deployment,
    interpreter: str,
    *,
    proxy_address: str = DEFAULT_PROXY,
    kube: KubeRuntime | None = None,
) -> Deployment:
    """`deployment` unchanged unless it is a function app; then every function service runs
    the runtime with `interpreter` (the agent's own Python, which has `function_proxy`; on a
    kube node the image's), and gets `BAETYL_FUNCTION_ADDRESS=proxy_address` to call other
    functions through the proxy."""
    app = deployment.app
    if app.type != "function":
        return deployment
    volumes = list(app.volumes)
    configs = dict(deployment.configs)
    services: list[Service] = []
    taken_volumes = {volume.name for volume in volumes}
    for service in app.services:
        config = service.function_config
        if config is None or service.command[1:3] == ["-m", RUNTIME_MODULE]:
            services.append(service)  # not a function service, or made runnable already
            continue
        code_volume, runtime_volume = f"fn-code-{service.name}", f"fn-runtime-{service.name}"
        runtime_config = _runtime_config_name(app.name, service.name)
        for volume in (code_volume, runtime_volume):
            if volume in taken_volumes:
                raise DeployError(
                    f"app {app.name}: volume name {volume} is reserved for function service "
                    f"{service.name}"
                )
        if runtime_config in configs:
            raise DeployError(
                f"app {app.name}: configuration name {runtime_config} is reserved for function "
                f"service {service.name}"
            )
        if config.name not in configs:
            raise DeployError(
                f"app {app.name}: service {service.name}: code configuration {config.name} "
                "was not delivered"
            )
        listed = [
            {
                "name": function.name,
                "handler": function.handler,
                "codedir": _codedir(app, service.name, function.codedir),
            }
            for function in service.functions
        ]
        runtime_data = {RUNTIME_FILE: json.dumps({"functions": listed}, indent=1)}
        configs[runtime_config] = Configuration(
            name=runtime_config,
            version=hashlib.sha256(runtime_data[RUNTIME_FILE].encode()).hexdigest()[:16],
            data=runtime_data,
        )
        volumes += [
            Volume(name=code_volume, config=ObjectRef(name=config.name)),
            Volume(name=runtime_volume, config=ObjectRef(name=runtime_config)),
        ]
        taken_volumes.update((code_volume, runtime_volume))
        update: dict[str, object] = {
            "args": [],
            "env": _with_proxy(service, proxy_address),
            "volume_mounts": [
                *service.volume_mounts,
                VolumeMount(name=code_volume, mount_path=CODE_MOUNT, read_only=True),
                VolumeMount(name=runtime_volume, mount_path=RUNTIME_MOUNT, read_only=True),
            ],
        }
        if kube is None:
            config_path = f"$({INSTANCE_VARIABLE}){RUNTIME_MOUNT}/{RUNTIME_FILE}"
            update["command"] = [interpreter, "-m", RUNTIME_MODULE, "--config", config_path]
        else:
            port = runtime_port(app, service.name)
            update["command"] = [
                interpreter, "-m", RUNTIME_MODULE, "--config", f"{RUNTIME_MOUNT}/{RUNTIME_FILE}",
                "--host", "0.0.0.0", "--port", str(port),  # noqa: S104 - the pod's own network
            ]  # fmt: skip
            update["image"] = kube.image
            update["ports"] = [*service.ports, ContainerPort(container_port=port)]
            if service.readiness_probe is None:
                update["readiness_probe"] = Probe(
                    tcp_socket=TCPSocketAction(port=port), period_seconds=1, failure_threshold=1
                )
        services.append(service.model_copy(update=update))
    expanded = app.model_copy(update={"services": services, "volumes": volumes})
    return replace(deployment, app=expanded, configs=configs)


def runtime_readiness(service: Service, port: int | None) -> Probe | None:
    """A runtime service without a readiness probe of its own is ready once its port accepts:
    a rollout then stops an old instance only after the new one serves, and the registry lists
    it only then, so calls through the proxy are not refused meanwhile. None for other services.
    A TCP connection made by the agent itself, every second: no process is spawned."""
    if port is None or service.command[1:3] != ["-m", RUNTIME_MODULE]:
        return None
    return Probe(tcp_socket=TCPSocketAction(port=port), period_seconds=1, failure_threshold=1)


def function_index(app: Application) -> dict[str, str]:
    """`{function: service}` of a function app (Application.function_services)."""
    return app.function_services()


def _runtime_config_name(app: str, service: str) -> str:
    """The generated configuration's name: unique per app and service, since a kube node keeps
    configurations as ConfigMaps that the apps of a namespace share."""
    name = f"{CONFIG_PREFIX}{app}-{service}"
    if len(name) <= MAX_NAME:
        return name
    return CONFIG_PREFIX + hashlib.sha256(f"{app}/{service}".encode()).hexdigest()[:16]


def _with_proxy(service: Service, address: str) -> list[EnvVar]:
    """The service's environment and the proxy's address (unless the service sets it)."""
    if any(variable.name == PROXY_VARIABLE for variable in service.env):
        return list(service.env)
    return [*service.env, EnvVar(name=PROXY_VARIABLE, value=address)]


def _codedir(app: Application, service: str, codedir: str) -> str:
    """The function's code directory relative to the runtime config's directory."""
    path = PurePosixPath(codedir or ".")
    if path.is_absolute() or ".." in path.parts:
        raise DeployError(
            f"app {app.name}: service {service}: codedir {codedir!r} must be a path inside the "
            "code configuration"
        )
    return str(PurePosixPath("..") / "code" / path)
