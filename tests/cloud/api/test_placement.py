"""Matching and propagation (DESIGN §7) through the REST API: apps land in exactly the desired
state of the nodes whose labels match, and config/secret changes flow into new app versions."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from agent.contracts import selectors
from tests.cloud.api.node_helpers import native_app
from tests.harness.cloud import CloudServer


async def node(
    cloud: CloudServer, name: str, labels: dict[str, str], token: str | None = None
) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": labels}, token=token)


async def desired_apps(cloud: CloudServer, name: str, token: str | None = None) -> dict[str, str]:
    shadow = await cloud.ok("GET", f"/v1/nodes/{name}/shadow", token=token)
    return dict(shadow["state"]["desired"].get("apps", {}))


async def shadow_version(cloud: CloudServer, name: str) -> int:
    return int((await cloud.ok("GET", f"/v1/nodes/{name}/shadow"))["version"])


async def test_an_app_goes_to_exactly_the_matching_nodes(cloud: CloudServer) -> None:
    await node(cloud, "edge-1", {"role": "gateway", "zone": "a"})
    await node(cloud, "edge-2", {"role": "gateway", "zone": "b"})
    await node(cloud, "edge-3", {"role": "camera"})
    created = await cloud.ok("POST", "/v1/apps", native_app("gw", "role=gateway,zone in (a,b)"))
    assert await desired_apps(cloud, "edge-1") == {"gw": created["version"]}
    assert await desired_apps(cloud, "edge-2") == {"gw": created["version"]}
    assert await desired_apps(cloud, "edge-3") == {}
    assert cloud.desired_changes[-1] == ["default.edge-1", "default.edge-2"]
    # The write returns the versions the bridge pushes (decision #111): those of the documents.
    assert cloud.desired_versions[-1] == {
        "default.edge-1": await shadow_version(cloud, "edge-1"),
        "default.edge-2": await shadow_version(cloud, "edge-2"),
    }
    view = await cloud.ok("GET", "/v1/nodes/edge-1")
    assert view["desire"]["apps"] == [{"name": "gw", "version": created["version"]}]


async def test_an_empty_selector_matches_no_node(cloud: CloudServer) -> None:
    await node(cloud, "edge-1", {"role": "gateway"})
    await cloud.ok("POST", "/v1/apps", native_app("nowhere", ""))
    assert await desired_apps(cloud, "edge-1") == {}
    assert cloud.desired_changes == []


async def test_a_tenant_cannot_create_a_system_app(cloud: CloudServer) -> None:
    # System apps are the platform's; a tenant's would land in desired.sysapps outside its quota.
    await node(cloud, "edge-1", {"role": "gateway"})
    before = await cloud.ok("GET", "/v1/nodes/edge-1/shadow")
    answer = await cloud.call(
        "POST", "/v1/apps", native_app("agent-extra", "role=gateway", system=True)
    )
    assert (answer.status, answer.body["code"]) == (400, "ErrRequestParamInvalid")
    assert "system" in answer.body["message"]
    assert (await cloud.call("GET", "/v1/apps/agent-extra")).status == 404
    assert await cloud.ok("GET", "/v1/nodes/edge-1/shadow") == before
    assert cloud.desired_changes == []


async def test_an_app_cannot_be_turned_into_a_system_app(cloud: CloudServer) -> None:
    created = await cloud.ok("POST", "/v1/apps", native_app("gw", "role=gateway"))
    answer = await cloud.call("PUT", "/v1/apps/gw", created | {"system": True})
    assert (answer.status, answer.body["code"]) == (400, "ErrRequestParamInvalid")
    assert (await cloud.ok("GET", "/v1/apps/gw")) == created


async def test_a_new_node_gets_the_apps_that_already_match_it(cloud: CloudServer) -> None:
    created = await cloud.ok("POST", "/v1/apps", native_app("gw", "role=gateway"))
    await node(cloud, "late", {"role": "gateway"})
    assert await desired_apps(cloud, "late") == {"gw": created["version"]}


async def test_relabelling_a_node_moves_apps_and_bumps_its_version_once(cloud: CloudServer) -> None:
    await node(cloud, "edge-1", {"role": "gateway"})
    gw = await cloud.ok("POST", "/v1/apps", native_app("gw", "role=gateway"))
    cam = await cloud.ok("POST", "/v1/apps", native_app("cam", "role=camera"))
    before = await shadow_version(cloud, "edge-1")
    await cloud.ok("PUT", "/v1/nodes/edge-1", {"name": "edge-1", "labels": {"role": "camera"}})
    assert await desired_apps(cloud, "edge-1") == {"cam": cam["version"]}
    assert await shadow_version(cloud, "edge-1") == before + 1
    assert gw["version"] != cam["version"]


async def test_changing_an_app_selector_moves_it_between_nodes(cloud: CloudServer) -> None:
    await node(cloud, "a1", {"zone": "a"})
    await node(cloud, "b1", {"zone": "b"})
    await cloud.ok("POST", "/v1/apps", native_app("mover", "zone=a"))
    moved = await cloud.ok("PUT", "/v1/apps/mover", native_app("mover", "zone=b"))
    assert await desired_apps(cloud, "a1") == {}
    assert await desired_apps(cloud, "b1") == {"mover": moved["version"]}


async def test_deleting_an_app_removes_it_from_every_node(cloud: CloudServer) -> None:
    await node(cloud, "edge-1", {"role": "gateway"})
    await cloud.ok("POST", "/v1/apps", native_app("gw", "role=gateway"))
    await cloud.ok("DELETE", "/v1/apps/gw")
    assert await desired_apps(cloud, "edge-1") == {}
    assert (await cloud.ok("GET", "/v1/nodes/edge-1/apps"))["items"] == []


async def test_an_unchanged_app_update_touches_no_shadow(cloud: CloudServer) -> None:
    await node(cloud, "edge-1", {"role": "gateway"})
    await cloud.ok("POST", "/v1/apps", native_app("gw", "role=gateway"))
    before = await shadow_version(cloud, "edge-1")
    notified = len(cloud.desired_changes)
    await cloud.ok("PUT", "/v1/apps/gw", native_app("gw", "role=gateway"))
    assert await shadow_version(cloud, "edge-1") == before
    assert len(cloud.desired_changes) == notified


def _config(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "data": [{"key": "conf.yml", "value": {"type": "kv", "value": text}}]}


async def test_a_config_update_gives_referencing_apps_a_new_version_on_their_nodes_only(
    cloud: CloudServer,
) -> None:
    await node(cloud, "edge-1", {"role": "gateway"})
    await node(cloud, "edge-2", {"role": "camera"})
    first = await cloud.ok("POST", "/v1/configs", _config("settings", "level: 1"))
    volume = {"name": "settings", "config": {"name": "settings"}}
    mount = {"name": "settings", "mountPath": "etc"}
    using = native_app("user", "role=gateway", volumes=[volume])
    using["services"][0]["volumeMounts"] = [mount]
    app_v1 = await cloud.ok("POST", "/v1/apps", using)
    other = await cloud.ok("POST", "/v1/apps", native_app("other", "role=camera"))
    assert app_v1["volumes"][0]["config"]["version"] == first["version"]

    second = await cloud.ok("PUT", "/v1/configs/settings", _config("settings", "level: 2"))
    assert second["version"] != first["version"]
    app_v2 = await cloud.ok("GET", "/v1/apps/user")
    assert app_v2["volumes"][0]["config"]["version"] == second["version"]
    assert app_v2["version"] != app_v1["version"]
    assert await desired_apps(cloud, "edge-1") == {"user": app_v2["version"]}
    assert await desired_apps(cloud, "edge-2") == {"other": other["version"]}
    assert cloud.desired_changes[-1] == ["default.edge-1"]


async def test_a_referenced_config_cannot_be_deleted(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/configs", _config("settings", "x"))
    await cloud.ok(
        "POST",
        "/v1/apps",
        native_app("user", "", volumes=[{"name": "cfg", "config": {"name": "settings"}}]),
    )
    answer = await cloud.call("DELETE", "/v1/configs/settings")
    assert answer.status == 403
    assert answer.body["code"] == "ErrResourceHasBeenUsed"
    refs = await cloud.ok("GET", "/v1/apps/user/configs")
    assert [item["name"] for item in refs["items"]] == ["settings"]


async def test_placement_never_crosses_namespaces(cloud: CloudServer) -> None:
    other = await cloud.token(namespace="tenant-b")
    await node(cloud, "edge-1", {"role": "gateway"})
    await node(cloud, "edge-1", {"role": "gateway"}, token=other)
    mine = await cloud.ok("POST", "/v1/apps", native_app("gw", "role=gateway"))
    assert await desired_apps(cloud, "edge-1") == {"gw": mine["version"]}
    assert await desired_apps(cloud, "edge-1", token=other) == {}
    assert cloud.desired_changes == [["default.edge-1"]]


async def test_concurrent_app_updates_leave_every_shadow_consistent(cloud: CloudServer) -> None:
    """50 concurrent app updates over 20 nodes: every shadow ends exactly as the final apps say,
    and no node's shadow version ever goes down while they run."""
    rng = random.Random(7)
    zones = ["a", "b", "c", "d"]
    for index in range(20):
        await node(cloud, f"n{index:02d}", {"zone": zones[index % 4], "tier": str(index % 2)})
    for index in range(10):
        await cloud.ok("POST", "/v1/apps", native_app(f"app-{index}", f"zone={zones[index % 4]}"))

    seen: dict[str, list[int]] = {f"n{i:02d}": [] for i in range(20)}
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            for name, versions in seen.items():
                versions.append(await shadow_version(cloud, name))

    async def update(step: int) -> None:
        index = rng.randrange(10)
        selector = f"zone in ({zones[rng.randrange(4)]},{zones[rng.randrange(4)]})"
        if rng.random() < 0.3:
            selector += f",tier={rng.randrange(2)}"
        spec = native_app(f"app-{index}", selector, description=f"step {step}")
        await cloud.ok("PUT", f"/v1/apps/app-{index}", spec)

    watcher = asyncio.create_task(watch(), name="shadow-watcher")
    await asyncio.gather(*(update(step) for step in range(50)))
    stop.set()
    await watcher

    apps = (await cloud.ok("GET", "/v1/apps"))["items"]
    for index in range(20):
        name = f"n{index:02d}"
        labels = {"zone": zones[index % 4], "tier": str(index % 2)}
        expected = {
            app["name"]: app["version"] for app in apps if _matches(app["selector"], labels)
        }
        assert await desired_apps(cloud, name) == expected, name
        versions = seen[name]
        assert versions == sorted(versions), f"{name} went back: {versions}"
        shadow = await cloud.ok("GET", f"/v1/nodes/{name}/shadow")
        assert shadow["state"]["delta"] == shadow["state"]["desired"]  # nothing reported yet


def _matches(selector: str, labels: dict[str, str]) -> bool:
    return selectors.parse(selector).matches(labels)
