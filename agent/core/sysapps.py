"""System apps the agent runs by itself: `baetyl-function`, the function proxy (DESIGN §9).

Baetyl ships the proxy as a system app the cloud puts on a node. Here the node decides: while a
function app is wanted, the engine also wants `baetyl-function`, whose spec is made here — the
agent's own Python running `function_proxy.cli` over the native backend's registry, listening on
`function.address` of core.yml. It is then an app like the others: deployed by the backend,
restarted when it crashes, adopted across agent restarts, reported under `sysapps`, and removed
when the last function app goes. Its version is a digest of its spec, so a changed address or
interpreter rolls it like any new version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from agent.contracts.resources import Application

FUNCTION_PROXY: Final = "baetyl-function"
PROXY_MODULE: Final = "function_proxy.cli"


def function_proxy_app(
    *,
    interpreter: str,
    registry_file: Path,
    address: str,
    image: str | None = None,
    host_registry_dir: Path | None = None,
) -> Application:
    """The `baetyl-function` system app serving at `address` (`host:port`).

    Native: the agent's Python runs it. Kube (`image` given): a pod of the agent's image on
    the node's network, so it serves on the node's `address` as on a native node, with the
    registry's directory (which the agent writes) mounted from the host.
    """
    host, port = address.rsplit(":", 1)
    probe = {"port": int(port), "host": host} if image else {"port": int(port)}
    service: dict[str, Any] = {
        "name": FUNCTION_PROXY,
        "command": [interpreter, "-m", PROXY_MODULE],
        "args": ["--registry", str(registry_file), "--listen", address],
        # Up once it accepts connections: a caller that starts with it finds it serving.
        "readinessProbe": {"tcpSocket": probe, "periodSeconds": 1},
        "livenessProbe": {"tcpSocket": probe, "periodSeconds": 10, "failureThreshold": 3},
    }
    spec: dict[str, Any] = {
        "name": FUNCTION_PROXY,
        "mode": "native",
        "type": "container",
        "system": True,
        "description": "the function proxy, run by the agent while function apps exist",
        "services": [service],
    }
    if image:
        directory = str(registry_file.parent)
        service.update(
            image=image,
            command=["baetyl-function"],
            volumeMounts=[{"name": "registry", "mountPath": directory, "readOnly": True}],
        )
        spec.update(
            mode="kube",
            hostNetwork=True,
            volumes=[
                {
                    "name": "registry",
                    "hostPath": {"path": str(host_registry_dir or directory), "type": "Directory"},
                }
            ],
        )
    version = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return Application.model_validate({**spec, "version": version})


class BuiltinApps:
    """What the engine adds to the desired apps: the proxy while a function app is wanted, or
    while the desired state names it (the node's `sysApps` lists it, as in Baetyl)."""

    def __init__(self, proxy: Application | None) -> None:
        self._proxy = proxy

    def __call__(self, wanted: Sequence[Application], requested: set[str]) -> list[Application]:
        """The built-in system apps `wanted` (the specs of the desired apps) and `requested`
        (built-in names the desired state lists) call for."""
        if self._proxy is None:
            return []
        if FUNCTION_PROXY in requested or any(app.type == "function" for app in wanted):
            return [self._proxy]
        return []
