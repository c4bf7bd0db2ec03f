"""Routes Baetyl users call that are not about one stored kind: a node's deployments, the
function runtimes and Baetyl's sysconfig lookups (issue 16)."""

from __future__ import annotations

from agent.contracts.version import VERSION
from tests.cloud.api.node_helpers import native_app, node, report
from tests.harness.cloud import CloudServer


async def test_a_nodes_deploys_say_how_far_it_got_with_each_app(cloud: CloudServer) -> None:
    await node(cloud, "edge-1", {"role": "gw"}, sysApps=["baetyl-function"])
    one = await cloud.ok("POST", "/v1/apps", native_app("one", "role=gw"))
    two = await cloud.ok("POST", "/v1/apps", native_app("two", "role=gw"))
    await cloud.ok("POST", "/v1/apps", native_app("elsewhere", "role=other"))
    before = await cloud.ok("GET", "/v1/nodes/edge-1/deploys")
    assert before["success"] is True
    assert [(i["name"], i["system"], i["deployed"], i["running"]) for i in before["items"]] == [
        ("one", False, False, ""),
        ("two", False, False, ""),
        ("baetyl-function", True, False, ""),
    ]
    await report("edge-1", {
        "apps": {"one": one["version"], "two": "old"},
        "appstats": {
            "one": {"name": "one", "version": one["version"], "status": "Running"},
            "two": {"name": "two", "version": "old", "status": "Failed", "cause": "exit 3"},
        },
    })  # fmt: skip
    after = await cloud.ok("GET", "/v1/nodes/edge-1/deploys")
    by_name = {item["name"]: item for item in after["items"]}
    assert by_name["one"] == {
        "name": "one", "system": False, "desired": one["version"], "running": one["version"],
        "status": "Running", "cause": "", "deployed": True,
    }  # fmt: skip
    assert (by_name["two"]["desired"], by_name["two"]["running"]) == (two["version"], "old")
    assert (by_name["two"]["status"], by_name["two"]["cause"], by_name["two"]["deployed"]) == (
        "Failed", "exit 3", False,
    )  # fmt: skip
    assert after["total"] == 3
    other = await cloud.token(namespace="tenant-b")
    assert (await cloud.call("GET", "/v1/nodes/edge-1/deploys", token=other)).status == 404


async def test_function_runtimes_and_baetyls_sysconfig(cloud: CloudServer) -> None:
    assert await cloud.ok("GET", "/v1/functions") == {
        "sources": [], "runtimes": {"python3": "builtin"},
    }  # fmt: skip
    assert await cloud.ok("GET", "/v1/sysconfig/baetyl-function-runtime") == {
        "sysconfigs": [{"type": "baetyl-function-runtime", "key": "python3", "value": "builtin"}]
    }
    assert await cloud.ok("GET", "/v1/sysconfig/baetyl_version/latest") == {
        "type": "baetyl_version", "key": "latest", "value": VERSION,
    }  # fmt: skip
    assert (await cloud.call("GET", "/v1/sysconfig/other")).status == 404
