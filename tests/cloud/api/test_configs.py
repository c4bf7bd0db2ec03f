"""`/v1/configs` through a real server: views, versions, lists, tenancy, validation, usage."""

from __future__ import annotations

from typing import Any

import pytest

from agent.contracts.resources import CONFIG_DATA_MAX_BYTES
from tests.cloud.api.node_helpers import app_mounting
from tests.cloud.api.tables import named_refusals, refusals
from tests.harness.cloud import CloudServer

# aiohttp's client warns about any body over 1 MiB; the 4 MiB limit tests send such bodies.
pytestmark = pytest.mark.filterwarnings("ignore:Sending a large body:ResourceWarning")


def config(name: str = "settings", text: str = "level: 1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "data": [{"key": "conf.yml", "value": {"type": "kv", "value": text}}],
    }
    body.update(extra)
    return body


def app_using(name: str, config_name: str, selector: str = "") -> dict[str, Any]:
    volume = {"name": "conf", "config": {"name": config_name}}
    return app_mounting(name, volume, mount_path="etc", selector=selector)


async def test_a_configuration_round_trips_in_baetyls_view(cloud: CloudServer) -> None:
    body = config(
        labels={"tier": "edge"},
        description="log settings",
        data=[
            {"key": "b.yml", "value": {"type": "kv", "value": "b: 2"}},
            {"key": "a.yml", "value": {"value": "a: 1"}},  # type defaults to kv
        ],
    )
    created = await cloud.ok("POST", "/v1/configs", body)
    assert created["name"] == "settings"
    assert created["namespace"] == "default"
    assert created["labels"] == {"tier": "edge"}
    assert created["description"] == "log settings"
    assert created["system"] is False
    assert created["data"] == [
        {"key": "a.yml", "value": {"type": "kv", "value": "a: 1"}},
        {"key": "b.yml", "value": {"type": "kv", "value": "b: 2"}},
    ]
    assert len(created["version"]) == 16
    assert created["createTime"]
    assert created["updateTime"]
    assert await cloud.ok("GET", "/v1/configs/settings") == created


async def test_the_version_changes_exactly_when_the_data_changes(cloud: CloudServer) -> None:
    first = await cloud.ok("POST", "/v1/configs", config())
    described = await cloud.ok(
        "PUT", "/v1/configs/settings", config(description="now described", labels={"a": "b"})
    )
    assert described["version"] == first["version"]
    assert described["description"] == "now described"
    assert described["labels"] == {"a": "b"}
    changed = await cloud.ok("PUT", "/v1/configs/settings", config(text="level: 2"))
    assert changed["version"] != first["version"]
    assert changed["data"][0]["value"]["value"] == "level: 2"
    back = await cloud.ok("PUT", "/v1/configs/settings", config())
    assert back["version"] == first["version"]  # a digest of the content, not a counter


async def test_lists_are_newest_first_filtered_and_paged(cloud: CloudServer) -> None:
    for index, tier in enumerate(["edge", "core", "edge", "edge"]):
        await cloud.ok("POST", "/v1/configs", config(f"conf-{index}", labels={"tier": tier}))
    everything = await cloud.ok("GET", "/v1/configs")
    assert [c["name"] for c in everything["items"]] == ["conf-3", "conf-2", "conf-1", "conf-0"]
    assert everything["total"] == 4
    assert everything["items"][0]["data"][0]["key"] == "conf.yml"

    edge = await cloud.ok("GET", "/v1/configs?selector=tier%3Dedge&pageNo=2&pageSize=2")
    assert edge["total"] == 3
    assert (edge["pageNo"], edge["pageSize"]) == (2, 2)
    assert [c["name"] for c in edge["items"]] == ["conf-0"]

    named = await cloud.ok("GET", "/v1/configs?name=f-1")
    assert [c["name"] for c in named["items"]] == ["conf-1"]
    past_the_end = await cloud.ok("GET", "/v1/configs?pageNo=9&pageSize=2")
    assert past_the_end["total"] == 4
    assert past_the_end["items"] == []


async def test_a_bad_selector_is_a_400(cloud: CloudServer) -> None:
    answer = await cloud.call("GET", "/v1/configs?selector=tier%20in%20(a")
    assert answer.status == 400
    assert "selector" in answer.body["message"]


async def test_system_configurations_are_hidden_unless_asked_for(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/configs", config("mine"))
    await cloud.ok(
        "POST", "/v1/configs", config("sys-conf", labels={"baetyl-cloud-system": "true"})
    )
    listed = await cloud.ok("GET", "/v1/configs")
    assert [c["name"] for c in listed["items"]] == ["mine"]
    asked = await cloud.ok("GET", "/v1/configs?selector=baetyl-cloud-system")
    assert [c["name"] for c in asked["items"]] == ["sys-conf"]


def _data(size: int) -> list[dict[str, Any]]:
    # {"big":"xxx..."} is size + 10 bytes of compact JSON
    return [{"key": "big", "value": {"type": "kv", "value": "x" * (size - 10)}}]


BAD_CREATES: list[tuple[str, Any, int, str, str]] = [
    ("no name", {"data": []}, 400, "ErrRequestParamInvalid", "name"),
    ("bad name", config("Bad_Name"), 400, "ErrRequestParamInvalid", "name"),
    ("name too long", config("a" * 64), 400, "ErrRequestParamInvalid", "name"),
    ("reserved name", config("my-baetyl-conf"), 400, "ErrRequestParamInvalid", "baetyl"),
    ("unknown field", config(color="red"), 400, "ErrRequestParamInvalid", "color"),
    ("http object without url",
     config(data=[{"key": "o", "value": {"type": "object", "source": "http"}}]),
     400, "ErrRequestParamInvalid", "http(s) URL"),
    ("function item without source or bucket",
     config(data=[{"key": "f", "value": {"type": "function"}}]),
     400, "ErrRequestParamInvalid", "bucket"),
    ("unknown object source",
     config(data=[{"key": "o", "value": {"type": "object", "source": "ftp", "bucket": "abc",
                                        "object": "x"}}]),
     400, "ErrRequestParamInvalid", "'local'"),
    ("object of Baetyl's minio source not uploaded",
     config(data=[{"key": "o", "value": {"type": "object", "source": "minio", "bucket": "abc",
                                        "object": "x"}}]),
     400, "ErrRequestParamInvalid", "upload it first"),
    ("object not uploaded",
     config(data=[{"key": "o", "value": {"type": "object", "source": "local", "bucket": "code",
                                        "object": "x.zip"}}]),
     400, "ErrRequestParamInvalid", "upload it first"),
    ("object in a bad bucket",
     config(data=[{"key": "o", "value": {"type": "object", "source": "local", "bucket": "A_B",
                                        "object": "x"}}]),
     400, "ErrRequestParamInvalid", "bucket"),
    ("object name escapes",
     config(data=[{"key": "o", "value": {"type": "object", "source": "local", "bucket": "code",
                                        "object": "../x"}}]),
     400, "ErrRequestParamInvalid", "object name"),
    ("bad md5", config(data=[{"key": "o", "value": {"type": "object", "source": "http",
                                                     "url": "http://h/x", "md5": "abc"}}]),
     400, "ErrRequestParamInvalid", "md5"),
    ("bad unpack", config(data=[{"key": "o", "value": {"type": "object", "source": "http",
                                                        "url": "http://h/x", "unpack": "rar"}}]),
     400, "ErrRequestParamInvalid", "unpack"),
    ("other account", config(data=[{"key": "o", "value": {"type": "object", "source": "http",
                                                           "url": "http://h/x", "account": "other",
                                                           "endpoint": "http://s3"}}]),
     400, "ErrRequestParamInvalid", "another storage account"),
    ("reserved key prefix", config(data=[{"key": "_object_x", "value": {"value": "x"}}]),
     400, "ErrRequestParamInvalid", "_object_"),
    ("bad data key", config(data=[{"key": "a/b", "value": {"value": "x"}}]),
     400, "ErrRequestParamInvalid", "data"),
    ("dot-dot key", config(data=[{"key": "..", "value": {"value": "x"}}]),
     400, "ErrRequestParamInvalid", "data"),
    ("repeated key", config(data=[{"key": "k", "value": {"value": "1"}}] * 2),
     400, "ErrRequestParamInvalid", "repeated: k"),
    ("value not text", config(data=[{"key": "k", "value": {"value": 5}}]),
     400, "ErrRequestParamInvalid", "value"),
    ("bad label", config(labels={"bad key!": "v"}), 400, "ErrRequestParamInvalid", "label"),
    ("label not text", config(labels={"k": 1}), 400, "ErrRequestParamInvalid", "labels"),
    ("system", config(system=True), 400, "ErrRequestParamInvalid", "system"),
    ("other namespace", config(namespace="tenant-b"), 400, "ErrRequestParamInvalid", "namespace"),
    ("long description", config(description="d" * 1025), 400, "ErrRequestParamInvalid",
     "description"),
    ("too large", config(data=_data(CONFIG_DATA_MAX_BYTES + 1)), 400, "ErrDataTooLarge", "4 MiB"),
    ("not an object", ["settings"], 400, "ErrRequestParamInvalid", "invalid request body"),
    ("duplicate", config("existing"), 409, "ErrResourceConflict", "already exists"),
]  # fmt: skip


@refusals(BAD_CREATES)
async def test_bad_creates_are_refused_and_change_nothing(
    cloud: CloudServer, body: Any, status: int, code: str, fragment: str
) -> None:
    existing = await cloud.ok("POST", "/v1/configs", config("existing"))
    await cloud.refused("POST", "/v1/configs", body, status, code, fragment)
    assert (await cloud.ok("GET", "/v1/configs"))["items"] == [existing]


async def test_data_just_under_4_mib_is_accepted(cloud: CloudServer) -> None:
    answer = await cloud.call(
        "POST", "/v1/configs", config("big", data=_data(CONFIG_DATA_MAX_BYTES))
    )
    assert answer.status == 200, answer.body
    created = answer.body
    assert len(created["data"][0]["value"]["value"]) == CONFIG_DATA_MAX_BYTES - 10


BAD_REPLACES: list[tuple[str, str, Any, int, str, str]] = [
    ("other name in body", "settings", config("renamed"), 400, "ErrRequestParamInvalid", "name"),
    ("unknown", "missing", config("missing"), 404, "ErrResourceNotFound", "missing"),
    ("too large", "settings", config(data=_data(CONFIG_DATA_MAX_BYTES + 1)), 400,
     "ErrDataTooLarge", "4 MiB"),
    ("bad label", "settings", config(labels={"-x": "y"}), 400, "ErrRequestParamInvalid", "label"),
    ("system", "settings", config(system=True), 400, "ErrRequestParamInvalid", "system"),
    ("object item without source or bucket", "settings",
     config(data=[{"key": "o", "value": {"type": "object"}}]),
     400, "ErrRequestParamInvalid", "bucket"),
    ("unknown field", "settings", config(extra=1), 400, "ErrRequestParamInvalid", "extra"),
    ("empty body", "settings", None, 400, "ErrRequestParamInvalid", "empty"),
]  # fmt: skip


@named_refusals(BAD_REPLACES)
async def test_bad_replaces_are_refused_and_change_nothing(
    cloud: CloudServer, name: str, body: Any, status: int, code: str, fragment: str
) -> None:
    before = await cloud.ok("POST", "/v1/configs", config())
    await cloud.refused("PUT", f"/v1/configs/{name}", body, status, code, fragment)
    assert await cloud.ok("GET", "/v1/configs/settings") == before


async def test_reserved_names_cannot_be_deleted(cloud: CloudServer) -> None:
    answer = await cloud.call("DELETE", "/v1/configs/baetyl-core-conf")
    assert answer.status == 400
    assert "baetyl" in answer.body["message"]


async def test_a_mounted_configuration_lists_its_apps_and_cannot_be_deleted(
    cloud: CloudServer,
) -> None:
    await cloud.ok("POST", "/v1/configs", config())
    assert await cloud.ok("GET", "/v1/configs/settings/apps") == {"total": 0, "items": []}
    app = await cloud.ok("POST", "/v1/apps", app_using("reader", "settings", "role=gw"))
    uses = await cloud.ok("GET", "/v1/configs/settings/apps")
    assert uses["total"] == 1
    item = uses["items"][0]
    assert (item["name"], item["version"], item["namespace"]) == (
        "reader",
        app["version"],
        "default",
    )
    assert item["selector"] == "role=gw"

    answer = await cloud.call("DELETE", "/v1/configs/settings")
    assert answer.status == 403
    assert answer.body["code"] == "ErrResourceHasBeenUsed"
    assert "reader" in answer.body["message"]
    assert (await cloud.call("GET", "/v1/configs/settings")).status == 200

    await cloud.ok("DELETE", "/v1/apps/reader")
    await cloud.ok("DELETE", "/v1/configs/settings")


async def test_a_config_update_gives_the_referencing_app_a_new_version(cloud: CloudServer) -> None:
    first = await cloud.ok("POST", "/v1/configs", config())
    app_v1 = await cloud.ok("POST", "/v1/apps", app_using("reader", "settings"))
    assert app_v1["volumes"][0]["config"]["version"] == first["version"]

    await cloud.ok("PUT", "/v1/configs/settings", config(description="no new content"))
    assert (await cloud.ok("GET", "/v1/apps/reader"))["version"] == app_v1["version"]

    second = await cloud.ok("PUT", "/v1/configs/settings", config(text="level: 2"))
    app_v2 = await cloud.ok("GET", "/v1/apps/reader")
    assert app_v2["version"] != app_v1["version"]
    assert app_v2["volumes"][0]["config"]["version"] == second["version"]
    uses = await cloud.ok("GET", "/v1/configs/settings/apps")
    assert uses["items"][0]["version"] == app_v2["version"]


async def test_the_config_update_reaches_matching_nodes(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1", "labels": {"role": "gw"}})
    await cloud.ok("POST", "/v1/configs", config())
    await cloud.ok("POST", "/v1/apps", app_using("reader", "settings", "role=gw"))
    cloud.desired_changes.clear()
    await cloud.ok("PUT", "/v1/configs/settings", config(text="level: 2"))
    app = await cloud.ok("GET", "/v1/apps/reader")
    shadow = await cloud.ok("GET", "/v1/nodes/edge-1/shadow")
    assert shadow["state"]["desired"]["apps"] == {"reader": app["version"]}
    assert cloud.desired_changes == [["default.edge-1"]]
