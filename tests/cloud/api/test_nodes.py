"""The node routes of `/v1/nodes` on a real server: views, lists, matching, tenancy, bad input."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from agent.contracts.report import reported_problems
from agent.core.node import StatsCollector
from cloud.store.models import AppNode, Shadow
from tests.cloud.api.node_helpers import native_app, node, report
from tests.harness.cloud import CloudServer


async def snapshot(cloud: CloudServer) -> Any:
    """Everything a refused request must leave alone: the node list and every shadow."""
    listed = await cloud.ok("GET", "/v1/nodes")
    shadows = {
        item["name"]: await cloud.ok("GET", f"/v1/nodes/{item['name']}/shadow")
        for item in listed["items"]
    }
    return listed, shadows


async def test_a_created_node_has_the_system_label_and_no_desire_or_report(
    cloud: CloudServer,
) -> None:
    created = await node(cloud, "edge-1", {"zone": "a"}, description="first")
    assert created["namespace"] == "default"
    assert created["name"] == "edge-1"
    assert created["labels"] == {"zone": "a", "baetyl-node-name": "edge-1"}
    assert created["description"] == "first"
    assert created["nodeMode"] == "native"
    assert created["mode"] == "cloud"
    assert created["ready"] == 0
    assert re.fullmatch(r"[0-9a-f]{16}", created["version"])
    assert "desire" not in created
    assert "report" not in created
    assert cloud.desired_changes == []  # no app matches, so no desire changed


async def test_a_node_view_shows_desire_and_report(cloud: CloudServer) -> None:
    await node(cloud, "edge-1", node_mode="kube", annotations={"owner": "ops"})
    view = await cloud.ok("GET", "/v1/nodes/edge-1")
    assert view["nodeMode"] == "kube"
    assert view["annotations"] == {"owner": "ops"}
    assert view["desire"] == {"apps": [], "sysapps": [], "nodeprops": {}}
    assert view["report"] == {}


async def test_a_new_node_receives_the_apps_its_labels_match(cloud: CloudServer) -> None:
    app = await cloud.ok("POST", "/v1/apps", native_app("web", "env=prod"))
    await cloud.ok("POST", "/v1/apps", native_app("other", "env=dev"))
    await node(cloud, "edge-1", {"env": "prod"})
    view = await cloud.ok("GET", "/v1/nodes/edge-1")
    assert view["desire"]["apps"] == [{"name": "web", "version": app["version"]}]
    assert cloud.desired_changes == [["default.edge-1"]]
    apps = await cloud.ok("GET", "/v1/nodes/edge-1/apps")
    assert apps["total"] == 1
    item = apps["items"][0]
    assert (item["name"], item["version"], item["selector"]) == ("web", app["version"], "env=prod")
    assert item["namespace"] == "default"
    assert item["system"] is False


async def test_relabelling_moves_apps_and_keeps_nodeprops(cloud: CloudServer) -> None:
    prod = await cloud.ok("POST", "/v1/apps", native_app("web", "env=prod"))
    dev = await cloud.ok("POST", "/v1/apps", native_app("debug", "env=dev"))
    created = await node(cloud, "edge-1", {"env": "prod"})
    await cloud.ok("PUT", "/v1/nodes/edge-1/properties", {"state": {"desire": {"k": "v"}}})
    cloud.desired_changes.clear()

    updated = await cloud.ok("PUT", "/v1/nodes/edge-1", {"labels": {"env": "dev"}})
    assert updated["labels"] == {"env": "dev", "baetyl-node-name": "edge-1"}
    assert updated["version"] != created["version"]
    assert "desire" not in updated
    view = await cloud.ok("GET", "/v1/nodes/edge-1")
    assert view["desire"]["apps"] == [{"name": "debug", "version": dev["version"]}]
    assert view["desire"]["nodeprops"] == {"k": "v"}
    assert cloud.desired_changes == [["default.edge-1"]]
    assert prod["name"] not in [a["name"] for a in view["desire"]["apps"]]


async def test_an_update_keeps_omitted_fields_and_an_empty_one_changes_nothing(
    cloud: CloudServer,
) -> None:
    created = await node(cloud, "edge-1", {"zone": "a"}, description="d", annotations={"o": "x"})
    same = await cloud.ok("PUT", "/v1/nodes/edge-1", {"name": "edge-1", "nodeMode": "native"})
    assert same["version"] == created["version"]
    assert same["updateTime"] == created["updateTime"]
    changed = await cloud.ok("PUT", "/v1/nodes/edge-1", {"description": "new"})
    assert changed["labels"] == created["labels"]
    assert changed["annotations"] == {"o": "x"}
    assert changed["description"] == "new"
    assert changed["version"] != created["version"]
    cleared = await cloud.ok("PUT", "/v1/nodes/edge-1", {"annotations": {}})
    assert cleared["annotations"] == {}
    assert cloud.desired_changes == []  # labels never changed


async def test_deleting_a_node_removes_its_shadow_and_app_index(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/apps", native_app("web", "env=prod"))
    await node(cloud, "edge-1", {"env": "prod"})
    await node(cloud, "edge-2", {"env": "prod"})
    assert await cloud.ok("DELETE", "/v1/nodes/edge-1") == {"success": True}
    answer = await cloud.call("GET", "/v1/nodes/edge-1")
    assert answer.status == 404
    assert answer.body["code"] == "ErrResourceNotFound"
    assert answer.body["message"].startswith("The (node) resource (edge-1) is not found")
    assert not await Shadow.filter(namespace="default", name="edge-1").exists()
    assert await AppNode.filter(namespace="default", node="edge-1").count() == 0
    assert await AppNode.filter(namespace="default", node="edge-2").count() == 1
    assert (await cloud.ok("GET", "/v1/apps/web"))["name"] == "web"  # the app stays
    again = await cloud.call("DELETE", "/v1/nodes/edge-1")
    assert (again.status, again.body["code"]) == (404, "ErrResourceNotFound")
    await node(cloud, "edge-1", {"env": "prod"})  # the name is free again, apps come back
    assert len((await cloud.ok("GET", "/v1/nodes/edge-1"))["desire"]["apps"]) == 1


async def test_concurrent_creates_of_one_name_make_one_node(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/apps", native_app("web", "env=prod"))
    body = {"name": "edge-1", "labels": {"env": "prod"}}
    answers = await asyncio.gather(*(cloud.call("POST", "/v1/nodes", body) for _ in range(4)))
    assert sorted(a.status for a in answers) == [200, 409, 409, 409]
    assert (await cloud.ok("GET", "/v1/nodes"))["total"] == 1
    assert await AppNode.filter(namespace="default", node="edge-1").count() == 1
    assert cloud.desired_changes == [["default.edge-1"]]


async def test_lists_are_paged_newest_first_and_filtered(cloud: CloudServer) -> None:
    for index in range(5):
        await node(cloud, f"edge-{index}", {"tier": "odd" if index % 2 else "even"})
    page = await cloud.ok("GET", "/v1/nodes?pageNo=1&pageSize=2")
    assert (page["total"], page["pageNo"], page["pageSize"]) == (5, 1, 2)
    assert [item["name"] for item in page["items"]] == ["edge-4", "edge-3"]
    assert all("desire" not in item and "report" in item for item in page["items"])
    last = await cloud.ok("GET", "/v1/nodes?pageNo=3&pageSize=2")
    assert [item["name"] for item in last["items"]] == ["edge-0"]
    assert (await cloud.ok("GET", "/v1/nodes?pageNo=4&pageSize=2"))["items"] == []
    everything = await cloud.ok("GET", "/v1/nodes")
    assert [i["name"] for i in everything["items"]] == [f"edge-{i}" for i in (4, 3, 2, 1, 0)]
    ascending = await cloud.ok("GET", "/v1/nodes?createSort=asc&pageSize=2")
    assert [item["name"] for item in ascending["items"]] == ["edge-0", "edge-1"]
    odd = await cloud.ok("GET", "/v1/nodes?selector=tier%3Dodd&pageSize=1&pageNo=2")
    assert odd["total"] == 2
    assert [item["name"] for item in odd["items"]] == ["edge-1"]
    named = await cloud.ok("GET", "/v1/nodes?name=ge-3")
    assert [item["name"] for item in named["items"]] == ["edge-3"]
    both = await cloud.ok("GET", "/v1/nodes?name=edge&selector=tier%20in%20(even)")
    assert [item["name"] for item in both["items"]] == ["edge-4", "edge-2", "edge-0"]


async def test_ready_follows_the_age_of_the_last_report(cloud: CloudServer) -> None:
    for name in ("fresh", "stale", "never"):
        await node(cloud, name)
    await report("fresh", {"apps": {"web": "v2", "api": "v1"}, "nodeprops": {"a": "1"}})
    await report("stale", {"apps": {}}, at=time.time() - 3600)
    fresh = await cloud.ok("GET", "/v1/nodes/fresh")
    assert fresh["ready"] == 1
    assert fresh["report"]["apps"] == [
        {"name": "api", "version": "v1"},
        {"name": "web", "version": "v2"},
    ]
    assert fresh["report"]["time"].endswith("Z")
    assert (await cloud.ok("GET", "/v1/nodes/stale"))["ready"] == 2
    assert (await cloud.ok("GET", "/v1/nodes/never"))["ready"] == 0
    for ready, expected in (("online", "fresh"), ("offline", "stale"), ("uninstall", "never")):
        listed = await cloud.ok("GET", f"/v1/nodes?ready={ready}")
        assert [item["name"] for item in listed["items"]] == [expected]
        assert listed["total"] == 1


async def test_stats_show_the_report_without_the_desire(cloud: CloudServer) -> None:
    await node(cloud, "edge-1")
    await report(
        "edge-1",
        {"appstats": {"b": {"name": "b", "status": "Running"}, "a": {"name": "a"}}},
    )
    stats = await cloud.ok("GET", "/v1/nodes/edge-1/stats")
    assert "desire" not in stats
    assert stats["ready"] == 1
    assert [entry["name"] for entry in stats["report"]["appstats"]] == ["a", "b"]


LEGACY_STATS = {  # as agents before decision 150 reported them: millicores, 0-100 numbers
    "ready": True,
    "usage": {"cpu": "250m", "memory": "512Mi", "disk": "1073741824"},
    "capacity": {"cpu": "4", "memory": "8Gi", "disk": "4294967296"},
    "percent": {"cpu": 6.25, "memory": 6.25, "disk": 25.0},
}
KUBE_STATS = {  # Kubernetes quantities and no percentages, as Baetyl's kube edge writes them
    "ready": True,
    "usage": {"cpu": "1500m", "memory": "2Gi"},
    "capacity": {"cpu": "4", "memory": "8Gi"},
}


async def test_node_stats_are_shown_in_baetyls_formats_whichever_agent_wrote_them(
    cloud: CloudServer, tmp_path: Path
) -> None:
    await node(cloud, "edge-1")
    current = StatsCollector(tmp_path).sample().to_wire()
    hosts = {"old": LEGACY_STATS, "kube": KUBE_STATS, "current": current}
    assert not reported_problems({"nodestats": hosts}, ["nodestats"])  # all valid reports
    await report("edge-1", {"nodestats": hosts})
    shown = (await cloud.ok("GET", "/v1/nodes/edge-1/stats"))["report"]["nodestats"]
    assert shown["old"] == {
        "ready": True,
        "usage": {"cpu": "0.25", "memory": str(512 * 2**20), "disk": "1073741824"},
        "capacity": {"cpu": "4", "memory": str(8 * 2**30), "disk": "4294967296"},
        "percent": {"cpu": "0.0625", "memory": "0.0625", "disk": "0.25"},
    }
    assert shown["kube"] == {
        "ready": True,
        "usage": {"cpu": "1.5", "memory": str(2 * 2**30)},
        "capacity": {"cpu": "4", "memory": str(8 * 2**30)},
        "percent": {"cpu": "0.375", "memory": "0.25"},
    }
    assert shown["current"] == current  # this agent writes Baetyl's formats already
    assert (await cloud.ok("GET", "/v1/nodes/edge-1"))["report"]["nodestats"] == shown
    stored = await cloud.ok("GET", "/v1/nodes/edge-1/shadow")
    assert stored["state"]["reported"]["nodestats"]["old"] == LEGACY_STATS  # only the view


async def test_batch_returns_the_named_nodes_in_order_and_skips_unknown_ones(
    cloud: CloudServer,
) -> None:
    for name in ("a1", "b2", "c3"):
        await node(cloud, name)
    batch = await cloud.ok("PUT", "/v1/nodes?batch", {"names": ["c3", "zz", "a1", "c3"]})
    assert batch["total"] == 2
    assert [item["name"] for item in batch["items"]] == ["c3", "a1"]
    assert all("desire" not in item for item in batch["items"])


async def test_the_sync_mode_can_be_switched(cloud: CloudServer) -> None:
    created = await node(cloud, "edge-1")
    assert await cloud.ok("PUT", "/v1/nodes/edge-1/mode", {"mode": "local"}) == {"success": True}
    view = await cloud.ok("GET", "/v1/nodes/edge-1")
    assert view["mode"] == "local"
    assert view["version"] != created["version"]
    await cloud.ok("PUT", "/v1/nodes/edge-1/mode", {"mode": "cloud"})
    assert (await cloud.ok("GET", "/v1/nodes/edge-1"))["mode"] == "cloud"


async def test_the_install_command_needs_a_broker_address_for_nodes(cloud: CloudServer) -> None:
    # This cloud runs without MQTT and was given no --node-mqtt-url: a node it installed could
    # never connect, so it says what to set instead of handing out a command.
    await node(cloud, "edge-1")
    answer = await cloud.call("GET", "/v1/nodes/edge-1/init")
    assert (answer.status, answer.body["code"]) == (503, "ErrServiceUnavailable")
    assert "--node-mqtt-url" in answer.body["message"]
    assert (await cloud.call("GET", "/v1/nodes/ghost/init")).status == 404


async def test_a_read_token_reads_but_cannot_write(cloud: CloudServer) -> None:
    await node(cloud, "edge-1")
    reader = await cloud.token(role="read")
    assert (await cloud.call("GET", "/v1/nodes/edge-1", token=reader)).status == 200
    before = await snapshot(cloud)
    for method, path, body in [
        ("POST", "/v1/nodes", {"name": "edge-2"}),
        ("PUT", "/v1/nodes/edge-1", {"description": "x"}),
        ("DELETE", "/v1/nodes/edge-1", None),
        ("PUT", "/v1/nodes/edge-1/mode", {"mode": "local"}),
        ("PUT", "/v1/nodes/edge-1/properties", {"state": {"desire": {"a": "b"}}}),
    ]:
        answer = await cloud.call(method, path, body, token=reader)
        assert (answer.status, answer.body["code"]) == (403, "ErrRequestForbidden"), path
    assert await snapshot(cloud) == before


async def test_another_namespace_cannot_see_or_touch_a_node(cloud: CloudServer) -> None:
    await node(cloud, "edge-1", {"zone": "a"})
    other = await cloud.token(namespace="tenant-b")
    before = await snapshot(cloud)
    listed = await cloud.ok("GET", "/v1/nodes", token=other)
    assert (listed["total"], listed["items"]) == (0, [])
    batch = await cloud.ok("PUT", "/v1/nodes?batch", {"names": ["edge-1"]}, token=other)
    assert batch == {"total": 0, "items": []}
    for method, path, body in [
        ("GET", "/v1/nodes/edge-1", None),
        ("GET", "/v1/nodes/edge-1/stats", None),
        ("GET", "/v1/nodes/edge-1/apps", None),
        ("GET", "/v1/nodes/edge-1/properties", None),
        ("GET", "/v1/nodes/edge-1/shadow", None),
        ("GET", "/v1/nodes/edge-1/init", None),
        ("PUT", "/v1/nodes/edge-1", {"labels": {"zone": "b"}}),
        ("PUT", "/v1/nodes/edge-1/mode", {"mode": "local"}),
        ("PUT", "/v1/nodes/edge-1/properties", {"state": {"desire": {"a": "b"}}}),
        ("DELETE", "/v1/nodes/edge-1", None),
    ]:
        answer = await cloud.call(method, path, body, token=other)
        assert (answer.status, answer.body["code"]) == (404, "ErrResourceNotFound"), path
    assert await snapshot(cloud) == before
    # The same name is free in the other namespace, and independent of ours.
    theirs = await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"}, token=other)
    assert theirs["namespace"] == "tenant-b"
    assert await snapshot(cloud) == before


BAD_REQUESTS: list[tuple[str, str, Any, int, str, str]] = [
    ("POST", "/v1/nodes", {"name": "Edge_1"}, 400, "ErrRequestParamInvalid", "name"),
    ("POST", "/v1/nodes", {"name": "a" * 64}, 400, "ErrRequestParamInvalid", "name"),
    ("POST", "/v1/nodes", {"labels": {}}, 400, "ErrRequestParamInvalid", "name"),
    ("POST", "/v1/nodes", {"name": "n2", "labels": {"bad key": "v"}}, 400, "", "labels"),
    ("POST", "/v1/nodes", {"name": "n2", "labels": {"k": 1}}, 400, "", "labels"),
    ("POST", "/v1/nodes", {"name": "n2", "labels": {"k": "v" * 64}}, 400, "", "labels"),
    ("POST", "/v1/nodes", {"name": "n2", "color": "red"}, 400, "", "color"),
    ("POST", "/v1/nodes", {"name": "n2", "nodeMode": "android"}, 400, "", "nodeMode"),
    ("POST", "/v1/nodes", {"name": "n2", "description": "d" * 1025}, 400, "", "description"),
    ("POST", "/v1/nodes", {"name": "n2", "annotations": {"k": 1}}, 400, "", "annotations"),
    (
        "POST",
        "/v1/nodes",
        {"name": "n2", "labels": {"baetyl-node-name": "other"}},
        400,
        "ErrRequestParamInvalid",
        "baetyl-node-name",
    ),
    ("POST", "/v1/nodes", ["n2"], 400, "ErrRequestParamInvalid", "object"),
    ("POST", "/v1/nodes", {"name": "n1"}, 409, "ErrResourceConflict", "already exists"),
    ("PUT", "/v1/nodes/n1", {"name": "n2"}, 400, "ErrRequestParamInvalid", "path"),
    ("PUT", "/v1/nodes/n1", {"nodeMode": "kube"}, 400, "ErrRequestParamInvalid", "nodeMode"),
    ("PUT", "/v1/nodes/n1", {"labels": {"-x": "v"}}, 400, "ErrRequestParamInvalid", "labels"),
    ("PUT", "/v1/nodes/n1", {"mode": "local"}, 400, "ErrRequestParamInvalid", "/mode"),
    ("PUT", "/v1/nodes/n1", {"accelerator": "nvidia"}, 400, "ErrRequestParamInvalid", "accel"),
    ("PUT", "/v1/nodes/n1", {"cluster": True}, 400, "ErrRequestParamInvalid", "cluster"),
    ("PUT", "/v1/nodes/n1", {"authType": "CERT"}, 400, "ErrRequestParamInvalid", "authType"),
    ("PUT", "/v1/nodes/n9", {"description": "x"}, 404, "ErrResourceNotFound", "n9"),
    ("PUT", "/v1/nodes/n1/mode", {"mode": "offline"}, 400, "ErrRequestParamInvalid", "mode"),
    ("PUT", "/v1/nodes/n1/mode", {}, 400, "ErrRequestParamInvalid", "mode"),
    ("PUT", "/v1/nodes/n9/mode", {"mode": "local"}, 404, "ErrResourceNotFound", "n9"),
    ("PUT", "/v1/nodes", {"names": ["n1"]}, 400, "ErrRequestParamInvalid", "batch"),
    (
        "PUT",
        "/v1/nodes?batch",
        {"names": [f"n{i}" for i in range(21)]},
        400,
        "ErrRequestParamInvalid",
        "names",
    ),
    ("PUT", "/v1/nodes?batch", {"names": []}, 400, "ErrRequestParamInvalid", "names"),
    ("GET", "/v1/nodes?selector=a%3D%3D%3D", None, 400, "ErrRequestParamInvalid", "selector"),
    ("GET", "/v1/nodes?ready=sleeping", None, 400, "ErrRequestParamInvalid", "ready"),
    ("GET", "/v1/nodes?createSort=up", None, 400, "ErrRequestParamInvalid", "createSort"),
    ("GET", "/v1/nodes?pageSize=-1", None, 400, "ErrRequestParamInvalid", "pageSize"),
    ("GET", "/v1/nodes/n1/init?mode=android", None, 400, "ErrRequestParamInvalid", "mode"),
    ("GET", "/v1/nodes/n9", None, 404, "ErrResourceNotFound", "n9"),
    ("GET", "/v1/nodes/n9/apps", None, 404, "ErrResourceNotFound", "n9"),
    ("DELETE", "/v1/nodes/n9", None, 404, "ErrResourceNotFound", "n9"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "fragment"),
    BAD_REQUESTS,
    ids=[f"{m} {p} {i}" for i, (m, p, *_) in enumerate(BAD_REQUESTS)],
)
async def test_bad_node_requests_are_refused_and_change_nothing(
    cloud: CloudServer, method: str, path: str, body: Any, status: int, code: str, fragment: str
) -> None:
    await node(cloud, "n1", {"zone": "a"})
    before = await snapshot(cloud)
    changes = list(cloud.desired_changes)
    answer = await cloud.call(method, path, body)
    assert answer.status == status, answer.body
    assert answer.body["code"] == (code or "ErrRequestParamInvalid")
    assert fragment in answer.body["message"]
    assert await snapshot(cloud) == before
    assert cloud.desired_changes == changes


async def test_openapi_describes_the_node_routes(cloud: CloudServer) -> None:
    document = await cloud.ok("GET", "/v1/openapi.json", anonymous=True)
    paths = document["paths"]
    expected = {
        "/v1/nodes": {"get", "post", "put"},
        "/v1/nodes/{name}": {"get", "put", "delete"},
        "/v1/nodes/{name}/apps": {"get"},
        "/v1/nodes/{name}/stats": {"get"},
        "/v1/nodes/{name}/init": {"get"},
        "/v1/nodes/{name}/properties": {"get", "put"},
        "/v1/nodes/{name}/mode": {"put"},
        "/v1/nodes/{name}/shadow": {"get", "patch"},
        "/v1/namespace": {"get", "post", "delete"},
        "/v1/quotas": {"get"},
        "/v1/properties/{name}": {"get"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
    patch = paths["/v1/nodes/{name}/shadow"]["patch"]
    assert patch["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ShadowPatch"
    }
    query = {p["name"] for p in paths["/v1/nodes"]["get"]["parameters"]}
    assert {"selector", "name", "pageNo", "pageSize", "ready", "createSort"} <= query
    node_view = document["components"]["schemas"]["NodeView"]["properties"]
    assert {"createTime", "nodeMode", "ready", "desire", "report"} <= set(node_view)
