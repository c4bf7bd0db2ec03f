"""A node's shadow over REST: the full document, version-guarded PATCH, and Baetyl's properties."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.cloud.api.node_helpers import native_app, node, report
from tests.harness.cloud import CloudServer, Reply


def props_patch(nodeprops: Any) -> dict[str, Any]:
    return {"state": {"desired": {"nodeprops": nodeprops}}}


async def patch(cloud: CloudServer, body: Any, version: int | str | None) -> Reply:
    headers = {} if version is None else {"If-Match": str(version)}
    return await cloud.call("PATCH", "/v1/nodes/edge-1/shadow", body, headers=headers)


async def shadow_of(cloud: CloudServer, name: str = "edge-1") -> dict[str, Any]:
    document: dict[str, Any] = await cloud.ok("GET", f"/v1/nodes/{name}/shadow")
    return document


async def test_a_new_node_has_an_empty_shadow_at_version_1(cloud: CloudServer) -> None:
    await node(cloud, "edge-1")
    answer = await cloud.call("GET", "/v1/nodes/edge-1/shadow")
    assert answer.status == 200
    assert answer.headers["ETag"] == '"1"'
    document = answer.body
    assert document["state"] == {"desired": {}, "reported": {}, "delta": {}}
    assert document["metadata"] == {"desired": {}, "reported": {}}
    assert document["version"] == 1
    assert document["timestamp"] > 0


async def test_a_patch_at_the_current_version_merges_nodeprops(cloud: CloudServer) -> None:
    app = await cloud.ok("POST", "/v1/apps", native_app("web", "env=prod"))
    await node(cloud, "edge-1", {"env": "prod"})
    before = await shadow_of(cloud)
    cloud.desired_changes.clear()

    answer = await patch(cloud, props_patch({"a": "1", "b": "2"}), before["version"])
    assert answer.status == 200, answer.body
    assert answer.headers["ETag"] == f'"{before["version"] + 1}"'
    document = answer.body
    assert document["version"] == before["version"] + 1
    assert document["state"]["desired"] == {
        "apps": {"web": app["version"]},
        "nodeprops": {"a": "1", "b": "2"},
    }
    assert document["state"]["delta"]["nodeprops"] == {"a": "1", "b": "2"}
    assert set(document["metadata"]["desired"]["nodeprops"]) == {"a", "b"}
    assert cloud.desired_changes == [["default.edge-1"]]

    # null deletes one key; a quoted ETag is accepted as the version too.
    answer = await patch(cloud, props_patch({"a": None}), f'"{document["version"]}"')
    assert answer.status == 200, answer.body
    assert answer.body["state"]["desired"]["nodeprops"] == {"b": "2"}
    # nodeprops: null removes them all; apps placed by matching are untouched.
    answer = await patch(cloud, props_patch(None), f'W/"{answer.body["version"]}"')
    assert answer.status == 200, answer.body
    assert answer.body["state"]["desired"] == {"apps": {"web": app["version"]}}
    assert (await shadow_of(cloud)) == answer.body


async def test_a_patch_without_changes_still_takes_a_version(cloud: CloudServer) -> None:
    await node(cloud, "edge-1")
    answer = await patch(cloud, {"state": {"desired": {}}}, 1)
    assert answer.status == 200, answer.body
    assert answer.body["version"] == 2
    assert cloud.desired_changes == []  # the desired state did not change


async def test_a_stale_if_match_is_a_409_and_changes_nothing(cloud: CloudServer) -> None:
    await node(cloud, "edge-1")
    assert (await patch(cloud, props_patch({"a": "1"}), 1)).status == 200
    before = await shadow_of(cloud)
    changes = list(cloud.desired_changes)
    answer = await patch(cloud, props_patch({"a": "2"}), 1)
    assert answer.status == 409
    assert answer.body["code"] == "ErrResourceConflict"
    assert "version" in answer.body["message"]
    assert await shadow_of(cloud) == before
    assert cloud.desired_changes == changes


BAD_PATCHES: list[tuple[Any, str | None, int, str, str]] = [
    (props_patch({"a": "1"}), None, 400, "ErrRequestParamInvalid", "If-Match"),
    (props_patch({"a": "1"}), "latest", 400, "ErrRequestParamInvalid", "If-Match"),
    (props_patch({"a": "1"}), "0", 400, "ErrRequestParamInvalid", "If-Match"),
    (props_patch({"a": 1}), "1", 400, "ErrRequestParamInvalid", "nodeprops"),
    (props_patch({"a": {"b": "c"}}), "1", 400, "ErrRequestParamInvalid", "nodeprops"),
    (props_patch({"": "x"}), "1", 400, "ErrRequestParamInvalid", "nodeprops"),
    (props_patch({"k" * 129: "x"}), "1", 400, "ErrRequestParamInvalid", "nodeprops"),
    (props_patch({"big": "x" * (129 * 1024)}), "1", 400, "ErrRequestParamInvalid", "bytes"),
    ({"state": {"desired": {"apps": {"x": "1"}}}}, "1", 400, "ErrRequestParamInvalid", "apps"),
    ({"state": {"reported": {"a": "1"}}}, "1", 400, "ErrRequestParamInvalid", "reported"),
    ({"state": {"desired": {}}, "version": 1}, "1", 400, "ErrRequestParamInvalid", "version"),
    ({}, "1", 400, "ErrRequestParamInvalid", "state"),
    (props_patch({"a": "1"}), "7", 409, "ErrResourceConflict", "version"),
]


@pytest.mark.parametrize(("body", "if_match", "status", "code", "fragment"), BAD_PATCHES)
async def test_bad_shadow_patches_are_refused_and_change_nothing(
    cloud: CloudServer, body: Any, if_match: str | None, status: int, code: str, fragment: str
) -> None:
    await node(cloud, "edge-1")
    before = await shadow_of(cloud)
    answer = await patch(cloud, body, if_match)
    assert answer.status == status, answer.body
    assert answer.body["code"] == code
    assert fragment in answer.body["message"]
    assert await shadow_of(cloud) == before
    assert cloud.desired_changes == []


async def test_shadows_of_unknown_or_foreign_nodes_are_404(cloud: CloudServer) -> None:
    await node(cloud, "edge-1")
    other = await cloud.token(namespace="tenant-b")
    before = await shadow_of(cloud)
    for token in (None, other):
        name = "ghost" if token is None else "edge-1"
        answer = await cloud.call(
            "PATCH",
            f"/v1/nodes/{name}/shadow",
            props_patch({"a": "1"}),
            headers={"If-Match": "1"},
            token=token,
        )
        assert (answer.status, answer.body["code"]) == (404, "ErrResourceNotFound")
    reader = await cloud.token(role="read")
    answer = await patch_as(cloud, reader)
    assert (answer.status, answer.body["code"]) == (403, "ErrRequestForbidden")
    assert await shadow_of(cloud) == before


async def patch_as(cloud: CloudServer, token: str) -> Reply:
    return await cloud.call(
        "PATCH",
        "/v1/nodes/edge-1/shadow",
        props_patch({"a": "1"}),
        headers={"If-Match": "1"},
        token=token,
    )


async def test_properties_show_desire_and_report_with_their_times(cloud: CloudServer) -> None:
    await node(cloud, "edge-1")
    empty = await cloud.ok("GET", "/v1/nodes/edge-1/properties")
    assert empty == {
        "state": {"report": {}, "desire": {}},
        "metadata": {"report": {}, "desire": {}},
    }
    await report("edge-1", {"nodeprops": {"fw": "1.2"}})
    set_ = await cloud.ok(
        "PUT", "/v1/nodes/edge-1/properties", {"state": {"desire": {"a": "1", "b": "2"}}}
    )
    assert set_["state"] == {"report": {"fw": "1.2"}, "desire": {"a": "1", "b": "2"}}
    assert set(set_["metadata"]["desire"]) == {"a", "b"}
    assert set_["metadata"]["report"]["fw"].endswith("Z")
    assert await cloud.ok("GET", "/v1/nodes/edge-1/properties") == set_
    assert cloud.desired_changes == [["default.edge-1"]]
    delta = (await shadow_of(cloud))["state"]["delta"]
    assert delta == {"nodeprops": {"a": "1", "b": "2"}}


async def test_a_properties_put_replaces_the_desire_and_stamps_only_changes(
    cloud: CloudServer,
) -> None:
    await node(cloud, "edge-1")
    first = await cloud.ok(
        "PUT", "/v1/nodes/edge-1/properties", {"state": {"desire": {"a": "1", "b": "2"}}}
    )
    version = (await shadow_of(cloud))["version"]
    # Sending back what GET shows works: the report side and metadata are ignored.
    again = await cloud.ok("PUT", "/v1/nodes/edge-1/properties", {**first})
    assert again == first
    assert (await shadow_of(cloud))["version"] == version  # nothing changed, no new version
    assert len(cloud.desired_changes) == 1

    second = await cloud.ok(
        "PUT", "/v1/nodes/edge-1/properties", {"state": {"desire": {"a": "1", "c": "3"}}}
    )
    assert second["state"]["desire"] == {"a": "1", "c": "3"}
    assert second["metadata"]["desire"]["a"] == first["metadata"]["desire"]["a"]
    assert (await shadow_of(cloud))["state"]["desired"]["nodeprops"] == {"a": "1", "c": "3"}
    cleared = await cloud.ok("PUT", "/v1/nodes/edge-1/properties", {"state": {"desire": {}}})
    assert cleared["state"]["desire"] == {}
    assert len(cloud.desired_changes) == 3


BAD_PROPERTIES: list[tuple[Any, str]] = [
    ({"state": {"desire": {"a": 1}}}, "desire"),
    ({"state": {"desire": {"a": None}}}, "desire"),
    ({"state": {"desire": {"": "x"}}}, "desire"),
    ({"desire": {"a": "1"}}, "desire"),
    ({"state": {"desire": {"big": "x" * (129 * 1024)}}}, "bytes"),
]


async def test_an_empty_properties_state_changes_nothing(cloud: CloudServer) -> None:
    """Baetyl's own test sends `{"state": {}, "metadata": {}}`: accepted, and nothing moves."""
    await node(cloud, "edge-1")
    await cloud.ok("PUT", "/v1/nodes/edge-1/properties", {"state": {"desire": {"k": "v"}}})
    before = await shadow_of(cloud)
    answer = await cloud.ok("PUT", "/v1/nodes/edge-1/properties", {"state": {}, "metadata": {}})
    assert answer["state"]["desire"] == {"k": "v"}
    assert await shadow_of(cloud) == before


@pytest.mark.parametrize(("body", "fragment"), BAD_PROPERTIES)
async def test_bad_properties_are_refused_and_change_nothing(
    cloud: CloudServer, body: Any, fragment: str
) -> None:
    await node(cloud, "edge-1")
    await cloud.ok("PUT", "/v1/nodes/edge-1/properties", {"state": {"desire": {"k": "v"}}})
    before = await shadow_of(cloud)
    answer = await cloud.call("PUT", "/v1/nodes/edge-1/properties", body)
    assert answer.status == 400, answer.body
    assert answer.body["code"] == "ErrRequestParamInvalid"
    assert fragment in answer.body["message"]
    assert await shadow_of(cloud) == before


async def test_concurrent_patches_of_one_version_let_exactly_one_win(cloud: CloudServer) -> None:
    await node(cloud, "edge-1")
    answers = await asyncio.gather(*(patch(cloud, props_patch({"w": str(i)}), 1) for i in range(4)))
    assert sorted(a.status for a in answers) == [200, 409, 409, 409]
    winner = next(a.body for a in answers if a.status == 200)
    assert await shadow_of(cloud) == winner
    assert winner["version"] == 2


async def test_concurrent_property_puts_all_land_in_turn(cloud: CloudServer) -> None:
    await node(cloud, "edge-1")
    answers = await asyncio.gather(
        *(
            cloud.call("PUT", "/v1/nodes/edge-1/properties", {"state": {"desire": {"k": str(i)}}})
            for i in range(6)
        )
    )
    assert [a.status for a in answers] == [200] * 6
    document = await shadow_of(cloud)
    assert document["version"] == 7
    assert document["state"]["desired"]["nodeprops"]["k"] in {str(i) for i in range(6)}
