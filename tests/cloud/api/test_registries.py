"""`/v1/registries` through a real server: passwords sealed and never shown, refresh, usage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloud.secretbox import SecretBox
from cloud.services.bootstrap import SECRET_KEY_FILE
from cloud.store import secrets as secret_store
from tests.cloud.api.tables import refusals
from tests.harness.cloud import CloudServer, Reply, backend

PASSWORD = "s3cr3t-registry-pa55"


def registry(name: str = "hub", password: str | None = PASSWORD, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "address": "registry.example.com:5000", "username": "bot"}
    if password is not None:
        body["password"] = password
    body.update(extra)
    return body


def app_pulling_with(name: str, registry_name: str, selector: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "selector": selector,
        "services": [{"name": "main", "image": "registry.example.com:5000/app:1"}],
        "registries": [{"name": registry_name}],
    }


def assert_no_password(*answers: Reply | Any, password: str = PASSWORD) -> None:
    for answer in answers:
        text = json.dumps(answer.body if isinstance(answer, Reply) else answer)
        assert password not in text
        assert '"password"' not in text


async def opened(cloud: CloudServer, name: str, namespace: str = "default") -> dict[str, str]:
    """The sealed data of a registry, opened with the cloud's key (what a node would receive)."""
    stored = await secret_store.get(namespace, name)
    assert stored is not None
    assert stored.sealed is not None
    box = SecretBox.load_or_create(cloud.data_dir / SECRET_KEY_FILE)
    return box.open(stored.sealed, bound_to=f"{namespace}/{name}")


async def test_a_registry_shows_address_and_username_never_the_password(
    cloud: CloudServer,
) -> None:
    created = await cloud.call("POST", "/v1/registries", registry(description="ci pulls"))
    assert created.status == 200, created.body
    view = created.body
    assert (view["name"], view["namespace"]) == ("hub", "default")
    assert (view["address"], view["username"]) == ("registry.example.com:5000", "bot")
    assert view["labels"] == {"secret-type": "registry"}
    assert view["description"] == "ci pulls"
    got = await cloud.call("GET", "/v1/registries/hub")
    assert got.body == view
    listed = await cloud.call("GET", "/v1/registries")
    assert listed.body["items"] == [view]
    assert_no_password(created, got, listed)


async def test_the_password_is_encrypted_at_rest(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/registries", registry())
    stored = await secret_store.get("default", "hub")
    assert stored is not None
    assert stored.sealed is not None
    assert PASSWORD not in stored.sealed
    assert stored.info == {"address": "registry.example.com:5000", "username": "bot"}
    assert await opened(cloud, "hub") == {
        "address": "registry.example.com:5000",
        "username": "bot",
        "password": PASSWORD,
    }
    if backend() == "sqlite":
        database = b"".join(p.read_bytes() for p in cloud.data_dir.glob("cloud.db*"))
        assert b"registry.example.com" in database
        assert PASSWORD.encode() not in database


async def test_replace_keeps_the_password_unless_one_is_given(cloud: CloudServer) -> None:
    first = await cloud.ok("POST", "/v1/registries", registry())
    described = await cloud.ok(
        "PUT", "/v1/registries/hub", registry(password=None, description="now described")
    )
    assert described["version"] == first["version"]
    assert (await opened(cloud, "hub"))["password"] == PASSWORD
    assert await cloud.ok("PUT", "/v1/registries/hub", described) == described  # GET → PUT

    moved = await cloud.ok(
        "PUT", "/v1/registries/hub", registry(password=None, address="mirror.example.com")
    )
    assert moved["version"] != first["version"]
    assert moved["address"] == "mirror.example.com"
    assert (await opened(cloud, "hub"))["password"] == PASSWORD

    changed = await cloud.call("PUT", "/v1/registries/hub", registry(password="other-pass"))
    assert changed.body["version"] != moved["version"]
    assert (await opened(cloud, "hub"))["password"] == "other-pass"
    assert_no_password(changed, password="other-pass")


async def test_refresh_sets_a_new_password_and_version(cloud: CloudServer) -> None:
    first = await cloud.ok("POST", "/v1/registries", registry())
    same = await cloud.ok("POST", "/v1/registries/hub/refresh", {"password": PASSWORD})
    assert same["version"] == first["version"]
    refreshed = await cloud.call("POST", "/v1/registries/hub/refresh", {"password": "rotated-1"})
    assert refreshed.status == 200
    assert refreshed.body["version"] != first["version"]
    assert {k: v for k, v in refreshed.body.items() if k not in {"version", "updateTime"}} == {
        k: v for k, v in first.items() if k not in {"version", "updateTime"}
    }
    assert (await opened(cloud, "hub"))["password"] == "rotated-1"
    assert_no_password(refreshed, password="rotated-1")


async def test_baetyls_description_only_put_and_whole_body_refresh(cloud: CloudServer) -> None:
    """Baetyl's clients send `address` and `username` empty in a PUT (its PUT changes only the
    description) and the whole registry in a refresh: both keep what they leave empty."""
    first = await cloud.ok("POST", "/v1/registries", registry())
    zero = "0001-01-01T00:00:00Z"
    baetyls = {"name": "hub", "namespace": "default", "address": "", "username": "",
               "createTime": zero, "updateTime": zero}  # fmt: skip
    described = await cloud.ok("PUT", "/v1/registries/hub", {**baetyls, "description": "haha"})
    assert (described["address"], described["username"]) == (first["address"], first["username"])
    assert described["description"] == "haha"
    assert (await opened(cloud, "hub"))["password"] == PASSWORD
    refreshed = await cloud.ok(
        "POST", "/v1/registries/hub/refresh", {**baetyls, "password": "rotated-2"}
    )
    assert refreshed["address"] == first["address"]
    assert (await opened(cloud, "hub"))["password"] == "rotated-2"
    wrong = await cloud.call(
        "POST", "/v1/registries/hub/refresh", {**baetyls, "namespace": "other", "password": "x"}
    )
    assert wrong.status == 400
    assert (await opened(cloud, "hub"))["password"] == "rotated-2"


BAD_CREATES: list[tuple[str, Any, int, str, str]] = [
    ("no password", registry(password=None), 400, "ErrRequestParamInvalid", "password"),
    ("empty password", registry(password=""), 400, "ErrRequestParamInvalid", "password"),
    ("no address", {"name": "r2", "username": "u", "password": "p"}, 400,
     "ErrRequestParamInvalid", "address"),
    ("empty address", registry(address=""), 400, "ErrRequestParamInvalid", "address"),
    ("address with spaces", registry(address="a b"), 400, "ErrRequestParamInvalid", "address"),
    ("no username", {"name": "r2", "address": "a", "password": "p"}, 400,
     "ErrRequestParamInvalid", "username"),
    ("empty username", registry(username=""), 400, "ErrRequestParamInvalid", "username"),
    ("password not text", registry(password=1), 400, "ErrRequestParamInvalid", "password"),
    ("reserved name", registry("baetyl-hub"), 400, "ErrRequestParamInvalid", "baetyl"),
    ("bad name", registry("hub_1"), 400, "ErrRequestParamInvalid", "name"),
    ("unknown field", registry(email="a@b"), 400, "ErrRequestParamInvalid", "email"),
    ("other namespace", registry(namespace="tenant-b"), 400, "ErrRequestParamInvalid",
     "namespace"),
    ("secret-type label", registry(labels={"secret-type": "config"}), 400,
     "ErrRequestParamInvalid", "secret-type"),
    ("duplicate", registry("existing"), 409, "ErrResourceConflict", "registry"),
    ("name of a secret", registry("a-secret"), 409, "ErrResourceConflict", "secret"),
]  # fmt: skip


@refusals(BAD_CREATES)
async def test_bad_creates_are_refused_and_change_nothing(
    cloud: CloudServer, body: Any, status: int, code: str, fragment: str
) -> None:
    existing = await cloud.ok("POST", "/v1/registries", registry("existing"))
    await cloud.ok("POST", "/v1/secrets", {"name": "a-secret", "data": {"k": "v"}})
    answer = await cloud.refused("POST", "/v1/registries", body, status, code, fragment)
    assert_no_password(answer)
    assert (await cloud.ok("GET", "/v1/registries"))["items"] == [existing]


BAD_REFRESHES: list[tuple[str, str, Any, int, str]] = [
    ("empty password", "hub", {"password": ""}, 400, "password"),
    ("no password", "hub", {}, 400, "password"),
    ("whole registry", "hub", registry(), 400, "address"),
    ("password not text", "hub", {"password": 5}, 400, "password"),
    ("unknown registry", "nope", {"password": "x"}, 404, "nope"),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "fragment"),
    [case[1:] for case in BAD_REFRESHES],
    ids=[case[0] for case in BAD_REFRESHES],
)
async def test_bad_refreshes_are_refused_and_change_nothing(
    cloud: CloudServer, name: str, body: Any, status: int, fragment: str
) -> None:
    before = await cloud.ok("POST", "/v1/registries", registry())
    answer = await cloud.call("POST", f"/v1/registries/{name}/refresh", body)
    assert answer.status == status, answer.body
    assert fragment in answer.body["message"]
    assert await cloud.ok("GET", "/v1/registries/hub") == before
    assert (await opened(cloud, "hub"))["password"] == PASSWORD


async def test_a_registry_in_use_lists_its_apps_and_cannot_be_deleted(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/registries", registry())
    app = await cloud.ok("POST", "/v1/apps", app_pulling_with("puller", "hub"))
    uses = await cloud.ok("GET", "/v1/registries/hub/apps")
    assert [(u["name"], u["version"]) for u in uses["items"]] == [("puller", app["version"])]
    answer = await cloud.call("DELETE", "/v1/registries/hub")
    assert answer.status == 403
    assert answer.body["code"] == "ErrResourceHasBeenUsed"
    assert (await cloud.call("GET", "/v1/registries/hub")).status == 200


async def test_a_refreshed_password_reaches_the_apps_and_their_nodes(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1", "labels": {"pull": "yes"}})
    await cloud.ok("POST", "/v1/registries", registry())
    app_v1 = await cloud.ok("POST", "/v1/apps", app_pulling_with("puller", "hub", "pull=yes"))
    cloud.desired_changes.clear()
    await cloud.ok("POST", "/v1/registries/hub/refresh", {"password": "rotated"})
    app_v2 = await cloud.ok("GET", "/v1/apps/puller")
    assert app_v2["version"] != app_v1["version"]
    shadow = await cloud.ok("GET", "/v1/nodes/edge-1/shadow")
    assert shadow["state"]["desired"]["apps"] == {"puller": app_v2["version"]}
    assert cloud.desired_changes == [["default.edge-1"]]
    assert_no_password(app_v2, password="rotated")


async def test_openapi_describes_refresh_and_never_a_password(cloud: CloudServer) -> None:
    document = await cloud.ok("GET", "/v1/openapi.json")
    assert set(document["paths"]["/v1/registries/{name}/refresh"]) == {"post"}
    assert "password" not in document["components"]["schemas"]["RegistryView"]["properties"]
