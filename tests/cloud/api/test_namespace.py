"""`/v1/namespace`: the caller's tenant, and deleting everything it owns (and nothing else)."""

from __future__ import annotations

from cloud.store.models import Application, AppNode, Shadow
from tests.cloud.api.node_helpers import native_app, node
from tests.harness.cloud import CloudServer


async def test_the_callers_namespace_is_shown_and_creating_it_again_is_harmless(
    cloud: CloudServer,
) -> None:
    assert await cloud.ok("GET", "/v1/namespace") == {"name": "default"}
    assert await cloud.ok("POST", "/v1/namespace") == {"name": "default"}
    other = await cloud.token(namespace="tenant-b")
    assert await cloud.ok("POST", "/v1/namespace", {"name": "ignored"}, token=other) == {
        "name": "tenant-b"
    }
    assert await cloud.ok("GET", "/v1/namespace", token=other) == {"name": "tenant-b"}


async def test_deleting_a_namespace_removes_only_its_own_resources(cloud: CloudServer) -> None:
    other = await cloud.token(namespace="tenant-b")
    for token in (None, other):
        await cloud.ok("POST", "/v1/apps", native_app("web", "env=prod"), token=token)
        for name in ("edge-1", "edge-2"):
            body = {"name": name, "labels": {"env": "prod"}}
            await cloud.ok("POST", "/v1/nodes", body, token=token)
    theirs_before = await cloud.ok("GET", "/v1/nodes", token=other)

    assert await cloud.ok("DELETE", "/v1/namespace") == {"success": True}

    answer = await cloud.call("GET", "/v1/namespace")
    assert (answer.status, answer.body["code"]) == (404, "ErrResourceNotFound")
    assert (await cloud.ok("GET", "/v1/nodes"))["total"] == 0
    assert (await cloud.ok("GET", "/v1/apps"))["total"] == 0
    for model in (Shadow, AppNode, Application):
        assert await model.filter(namespace="default").count() == 0
        assert await model.filter(namespace="tenant-b").count() > 0
    assert await cloud.ok("GET", "/v1/nodes", token=other) == theirs_before
    assert (await cloud.ok("GET", "/v1/nodes/edge-1", token=other))["desire"]["apps"]

    again = await cloud.call("DELETE", "/v1/namespace")
    assert (again.status, again.body["code"]) == (404, "ErrResourceNotFound")
    # The tokens survive, so the tenant can start over.
    assert await cloud.ok("POST", "/v1/namespace") == {"name": "default"}
    await node(cloud, "edge-1")
    assert (await cloud.ok("GET", "/v1/nodes"))["total"] == 1


async def test_a_read_token_cannot_create_or_delete_the_namespace(cloud: CloudServer) -> None:
    await node(cloud, "edge-1")
    reader = await cloud.token(role="read")
    assert await cloud.ok("GET", "/v1/namespace", token=reader) == {"name": "default"}
    for method in ("POST", "DELETE"):
        answer = await cloud.call(method, "/v1/namespace", token=reader)
        assert (answer.status, answer.body["code"]) == (403, "ErrRequestForbidden")
    assert (await cloud.ok("GET", "/v1/nodes"))["total"] == 1
