"""A node's `sysApps` (Baetyl's field): the built-in system apps it asks for reach its desire."""

from __future__ import annotations

from typing import Any

from tests.harness.cloud import CloudServer


async def desired_sysapps(cloud: CloudServer, name: str) -> dict[str, Any]:
    shadow = await cloud.ok("GET", f"/v1/nodes/{name}/shadow")
    found: dict[str, Any] = shadow["state"]["desired"].get("sysapps", {})
    return found


async def test_sys_apps_put_the_function_proxy_in_the_desire(cloud: CloudServer) -> None:
    body = {"name": "edge-1", "labels": {"a": "1"}, "sysApps": ["baetyl-function"]}
    created = await cloud.ok("POST", "/v1/nodes", body)
    assert created["sysApps"] == ["baetyl-function"]
    assert await desired_sysapps(cloud, "edge-1") == {"baetyl-function": "builtin"}
    # Relabelling recomputes the apps, and keeps the node's own system apps.
    await cloud.ok("PUT", "/v1/nodes/edge-1", {"labels": {"a": "2"}})
    assert await desired_sysapps(cloud, "edge-1") == {"baetyl-function": "builtin"}
    # What GET returns can be PUT back unchanged.
    view = await cloud.ok("GET", "/v1/nodes/edge-1")
    keep = {k: view[k] for k in ("name", "labels", "description", "sysApps", "nodeMode")}
    again = await cloud.ok("PUT", "/v1/nodes/edge-1", keep)
    assert again["version"] == view["version"]
    updated = await cloud.ok("PUT", "/v1/nodes/edge-1", {"sysApps": []})
    assert updated["sysApps"] == []
    assert await desired_sysapps(cloud, "edge-1") == {}


async def test_unknown_system_apps_are_refused_and_change_nothing(cloud: CloudServer) -> None:
    answer = await cloud.call("POST", "/v1/nodes", {"name": "edge-1", "sysApps": ["baetyl-rule"]})
    assert (answer.status, answer.body["code"]) == (400, "ErrRequestParamInvalid")
    assert "offered: baetyl-function" in answer.body["message"]
    assert (await cloud.ok("GET", "/v1/nodes"))["total"] == 0
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
    twice = await cloud.call(
        "PUT", "/v1/nodes/edge-1", {"sysApps": ["baetyl-function", "baetyl-function"]}
    )
    assert twice.status == 400
    assert await desired_sysapps(cloud, "edge-1") == {}


async def test_a_read_token_cannot_change_sys_apps(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
    reader = await cloud.token(role="read")
    await cloud.all_refused(
        reader, 403, [("PUT", "/v1/nodes/edge-1", {"sysApps": ["baetyl-function"]})]
    )
    other = await cloud.token(namespace="tenant-b")
    await cloud.all_refused(
        other, 404, [("PUT", "/v1/nodes/edge-1", {"sysApps": ["baetyl-function"]})]
    )
    assert await desired_sysapps(cloud, "edge-1") == {}
