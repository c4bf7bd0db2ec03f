"""Helpers of the node API tests: what an agent's report would do, written straight to the store.

Reports arrive over MQTT in a later release; until then the tests play the agent in-process (the
store is open in the test's event loop while the server runs).
"""

from __future__ import annotations

import time
from typing import Any

from agent.contracts import shadow
from cloud.store import shadows
from tests.harness.cloud import CloudServer


async def report(
    name: str, reported: dict[str, Any], *, at: float | None = None, namespace: str = "default"
) -> None:
    """Merge `reported` into the node's shadow as if the node had reported it at `at`."""
    when = time.time() if at is None else at
    doc = await shadows.load_document(namespace, name)
    assert doc is not None, f"node {namespace}.{name} has no shadow"
    new = shadow.apply_update(doc, shadow.REPORTED, reported, version=None, now=when)
    await shadows.save_document(
        namespace, name, new, expected_version=doc["version"], reported_at=when
    )


async def node(
    cloud: CloudServer, name: str, labels: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    """Create a node through the API and return its view."""
    body: dict[str, Any] = {"name": name, "labels": labels or {}, **extra}
    created: dict[str, Any] = await cloud.ok("POST", "/v1/nodes", body)
    return created


def native_app(name: str, selector: str = "", **extra: Any) -> dict[str, Any]:
    """A minimal native app body for `POST /v1/apps`, with any top-level fields added."""
    spec: dict[str, Any] = {
        "name": name,
        "mode": "native",
        "selector": selector,
        "services": [{"name": "main", "command": ["sleep", "infinity"]}],
    }
    spec.update(extra)
    return spec


def app_mounting(
    name: str, volume: dict[str, Any], *, mount_path: str, selector: str = ""
) -> dict[str, Any]:
    """A native app whose one service mounts `volume` at `mount_path`."""
    spec = native_app(name, selector, volumes=[volume])
    spec["services"][0]["volumeMounts"] = [{"name": volume["name"], "mountPath": mount_path}]
    return spec
