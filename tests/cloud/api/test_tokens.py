"""Bearer tokens: authentication, roles, tenancy and the /v1/tokens routes."""

from __future__ import annotations

import pytest

from tests.harness.cloud import CloudServer


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (None, "missing Authorization"),
        ("Basic abc", "Bearer"),
        ("Bearer", "Bearer"),
        ("Bearer bt_not-a-real-token", "not valid"),
    ],
)
async def test_requests_without_a_valid_token_get_401(
    cloud: CloudServer, header: str | None, fragment: str
) -> None:
    headers = {"Authorization": header} if header else {}
    answer = await cloud.call("GET", "/v1/tokens", anonymous=True, headers=headers)
    assert answer.status == 401
    assert answer.body["code"] == "ErrRequestAccessDenied"
    assert fragment in answer.body["message"]


async def test_an_admin_creates_lists_and_revokes_tokens(cloud: CloudServer) -> None:
    created = await cloud.ok("POST", "/v1/tokens", {"role": "read", "description": "ci"})
    assert created["token"].startswith("bt_")
    assert created["role"] == "read"
    assert created["namespace"] == "default"
    listed = await cloud.ok("GET", "/v1/tokens")
    assert created["id"] in [item["id"] for item in listed["items"]]
    assert all("token" not in item for item in listed["items"])
    assert (await cloud.call("GET", "/v1/tokens", token=created["token"])).status == 200
    await cloud.ok("DELETE", f"/v1/tokens/{created['id']}")
    assert (await cloud.call("GET", "/v1/tokens", token=created["token"])).status == 401


async def test_a_read_token_cannot_write(cloud: CloudServer) -> None:
    reader = await cloud.token(role="read")
    answer = await cloud.call("POST", "/v1/tokens", {"role": "admin"}, token=reader)
    assert answer.status == 403
    assert answer.body["code"] == "ErrRequestForbidden"
    assert len((await cloud.ok("GET", "/v1/tokens"))["items"]) == 2  # admin + reader only


async def test_tokens_of_another_namespace_are_invisible_and_unrevocable(
    cloud: CloudServer,
) -> None:
    other = await cloud.token(namespace="tenant-b")
    theirs = await cloud.ok("GET", "/v1/tokens", token=other)
    assert [item["namespace"] for item in theirs["items"]] == ["tenant-b"]
    answer = await cloud.call("DELETE", f"/v1/tokens/{theirs['items'][0]['id']}")
    assert answer.status == 404
    assert (await cloud.call("GET", "/v1/tokens", token=other)).status == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"role": "root"}, "role"),
        ({"role": "read", "extra": 1}, "extra"),
        ({"description": "x" * 257}, "description"),
        ([], "object"),
    ],
)
async def test_bad_token_requests_are_refused_and_create_nothing(
    cloud: CloudServer, body: object, fragment: str
) -> None:
    answer = await cloud.call("POST", "/v1/tokens", body)
    assert answer.status == 400
    assert answer.body["code"] == "ErrRequestParamInvalid"
    assert fragment in answer.body["message"]
    assert len((await cloud.ok("GET", "/v1/tokens"))["items"]) == 1


async def test_malformed_json_is_a_400(cloud: CloudServer) -> None:
    answer = await cloud.call("POST", "/v1/tokens", raw=b"{nope")
    assert answer.status == 400
    assert "invalid request body" in answer.body["message"]
