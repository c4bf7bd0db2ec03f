"""Baetyl's deferred deployments (`cronStatus: 1` with a `cronTime`) through a real server: the
app goes to no node until its time, then to every matching node, with `cronStatus` 2."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.cloud.api.node_helpers import native_app, node
from tests.harness.cloud import CloudServer
from tools.kit.waiting import eventually


def at(seconds: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def desired_apps(cloud: CloudServer, name: str) -> dict[str, str]:
    shadow = await cloud.ok("GET", f"/v1/nodes/{name}/shadow")
    apps: dict[str, str] = shadow["state"]["desired"].get("apps", {})
    return apps


async def test_a_deferred_app_waits_for_its_time_then_goes_to_its_nodes(
    cloud: CloudServer,
) -> None:
    await node(cloud, "edge-1", {"role": "gw"})
    later = native_app("later", "role=gw", cronStatus=1, cronTime=at(1.5))
    created = await cloud.ok("POST", "/v1/apps", later)
    assert (created["cronStatus"], created["selector"]) == (1, "role=gw")
    now = await cloud.ok("POST", "/v1/apps", native_app("now", "role=gw"))
    assert await desired_apps(cloud, "edge-1") == {"now": now["version"]}
    # A node that comes (or is relabelled) while the app waits does not get it either.
    await node(cloud, "edge-2", {"role": "gw"})
    assert "later" not in await desired_apps(cloud, "edge-2")

    async def deployed() -> dict[str, object] | None:
        app: dict[str, object] = await cloud.ok("GET", "/v1/apps/later")
        return app if app["cronStatus"] == 2 else None

    released = await eventually(deployed, limit=30, what="the deferred app deployed")
    assert released["version"] != created["version"]
    for name in ("edge-1", "edge-2"):
        assert (await desired_apps(cloud, name))["later"] == released["version"]
    assert cloud.desired_changes  # the nodes were told


async def test_a_deferred_time_must_lie_ahead_and_zero_time_means_none(
    cloud: CloudServer,
) -> None:
    await node(cloud, "edge-1", {"role": "gw"})
    past = native_app("past", "role=gw", cronStatus=1, cronTime=at(-60))
    answer = await cloud.call("POST", "/v1/apps", past)
    assert answer.status == 400
    assert "time to come" in answer.body["message"]
    assert (await cloud.call("GET", "/v1/apps/past")).status == 404
    # Go's zero time, as every Baetyl body carries it: no deferral, placed at once.
    plain = native_app("plain", "role=gw", cronStatus=0, cronTime="0001-01-01T00:00:00Z")
    made = await cloud.ok("POST", "/v1/apps", plain)
    assert (await desired_apps(cloud, "edge-1"))["plain"] == made["version"]
    # Waiting, then put back to cronStatus 0: placed at once (Baetyl's "1 → 0").
    waiting = await cloud.ok(
        "POST", "/v1/apps", native_app("held", "role=gw", cronStatus=1, cronTime=at(3600))
    )
    assert "held" not in await desired_apps(cloud, "edge-1")
    undone = await cloud.ok("PUT", "/v1/apps/held", {**waiting, "cronStatus": 0})
    assert (await desired_apps(cloud, "edge-1"))["held"] == undone["version"]
