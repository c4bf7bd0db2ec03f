"""The registry file of running instances' dynamic ports, read by the function proxy (DESIGN §9).

`{app: {service: ["127.0.0.1:port", ...]}}`, written atomically (0644: it holds no secret and the
proxy may run as another user) whenever it changes. Only instances that run and are ready are
listed, so the proxy never routes to a process that is starting, backing off or failing its
readiness probe.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from agent.contracts.kit import files

Registry = dict[str, dict[str, list[str]]]
FunctionIndex = dict[str, dict[str, str]]
"""`{app: {function: service}}` of function apps, in each app's order (the first function is what
`/{app}` invokes), written beside the registry as INDEX_FILE."""
INDEX_FILE = "functions.json"


def build(entries: Iterable[tuple[str, str, int]]) -> Registry:
    """The registry from (app, service, port) of ready instances, sorted for stable output."""
    registry: Registry = {}
    for app, service, port in sorted(entries):
        registry.setdefault(app, {}).setdefault(service, []).append(f"127.0.0.1:{port}")
    return registry


class RegistryFile:
    """Writes the registry (or the function index) when its content changes. Blocking: call
    `write` from a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: Registry | FunctionIndex | None = None

    def write(self, registry: Registry | FunctionIndex) -> None:
        """Replace the file with `registry` unless it already holds exactly that."""
        if registry == self._last:
            return
        files.atomic_write_json(self.path, registry, mode=0o644)
        self._last = registry
