"""Routes Baetyl users call that are not about one stored kind: a node's deployments, the
function runtimes and Baetyl's sysconfig lookups (issue 16)."""

from __future__ import annotations

import json

from agent.contracts.version import VERSION
from tests.cloud.api.node_helpers import native_app, node, report
from tests.cloud.pki.selfsigned import make_pair
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


async def test_an_apps_resources_are_listed_as_their_kinds_list_them(cloud: CloudServer) -> None:
    pair = make_pair("tls.example")
    data = [{"key": "a.txt", "value": {"type": "kv", "value": "hello"}}]
    conf = await cloud.ok(
        "POST", "/v1/configs", {"name": "settings", "labels": {"t": "1"}, "data": data}
    )
    await cloud.ok("POST", "/v1/configs", {"name": "unused", "data": data})
    await cloud.ok("POST", "/v1/secrets", {"name": "creds", "data": {"token": "s3cr3t"}})
    await cloud.ok("POST", "/v1/certificates", {
        "name": "tls", "data": {"certificate": pair.cert_pem, "key": pair.key_pem},
    })  # fmt: skip
    await cloud.ok("POST", "/v1/registries", {
        "name": "hub", "address": "registry.example:5000", "username": "bot", "password": "pw1",
    })  # fmt: skip
    app = native_app("user", "", volumes=[
        {"name": "cfg", "config": {"name": "settings"}},
        {"name": "creds", "secret": {"name": "creds"}},
        {"name": "tls", "certificate": {"name": "tls"}},
    ], registries=[{"name": "hub"}])  # fmt: skip
    await cloud.ok("POST", "/v1/apps", app)
    configs = await cloud.ok("GET", "/v1/apps/user/configs")
    assert (configs["total"], configs["pageNo"]) == (1, 1)
    (item,) = configs["items"]
    assert {k: item[k] for k in ("name", "version", "labels", "data")} == {
        "name": "settings", "version": conf["version"], "labels": {"t": "1"}, "data": [],
    }  # fmt: skip
    listed = {
        what: await cloud.ok("GET", f"/v1/apps/user/{what}")
        for what in ("secrets", "certificates", "registries")
    }
    assert [i["name"] for i in listed["secrets"]["items"]] == ["creds"]
    assert [i["name"] for i in listed["certificates"]["items"]] == ["tls"]
    assert [i["name"] for i in listed["registries"]["items"]] == ["hub"]
    assert listed["registries"]["items"][0]["address"] == "registry.example:5000"
    text = json.dumps(listed)
    assert "s3cr3t" not in text
    assert "pw1" not in text
    assert "PRIVATE KEY" not in text
