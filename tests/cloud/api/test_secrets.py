"""`/v1/secrets` through a real server: encryption at rest, data never listed, tenancy, usage."""

from __future__ import annotations

import base64
import json
from typing import Any

from agent.contracts.resources import SECRET_DATA_MAX_BYTES
from cloud.services.versions import content_version
from cloud.store import secrets as secret_store
from tests.cloud.api.node_helpers import app_mounting
from tests.cloud.api.tables import named_refusals, refusals
from tests.harness.cloud import CloudServer, backend

PLAIN = "correct-horse-battery-staple"


def secret(name: str = "db-pass", value: str = PLAIN, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "data": {"password": value, "user": "app"}}
    body.update(extra)
    return body


def app_using(name: str, secret_name: str, selector: str = "") -> dict[str, Any]:
    volume = {"name": "creds", "secret": {"name": secret_name}}
    return app_mounting(name, volume, mount_path="creds", selector=selector)


async def test_a_secret_is_shown_with_its_data_only_by_get(cloud: CloudServer) -> None:
    created = await cloud.ok("POST", "/v1/secrets", secret(labels={"team": "db"}, description="d"))
    assert "data" not in created  # not echoed back
    assert created["labels"] == {"team": "db", "secret-type": "config"}
    assert (created["name"], created["namespace"], created["description"]) == (
        "db-pass",
        "default",
        "d",
    )
    got = await cloud.ok("GET", "/v1/secrets/db-pass")
    assert got["data"] == {"password": PLAIN, "user": "app"}
    assert {k: v for k, v in got.items() if k != "data"} == created
    listed = await cloud.call("GET", "/v1/secrets")
    assert [item["name"] for item in listed.body["items"]] == ["db-pass"]
    assert "data" not in listed.body["items"][0]
    assert PLAIN not in json.dumps(listed.body)


async def test_secret_data_is_encrypted_at_rest(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/secrets", secret())
    stored = await secret_store.get("default", "db-pass")
    assert stored is not None
    assert stored.sealed is not None
    assert PLAIN not in stored.sealed
    assert base64.b64encode(PLAIN.encode()).decode()[:16] not in stored.sealed
    raw = base64.b64decode(stored.sealed)
    assert PLAIN.encode() not in raw
    assert stored.info == {}
    if backend() == "sqlite":
        database = b"".join(
            path.read_bytes() for path in cloud.data_dir.glob("cloud.db*") if path.is_file()
        )
        assert b"db-pass" in database  # the row is there ...
        assert PLAIN.encode() not in database  # ... its data is not


async def test_the_version_is_not_a_digest_of_the_plaintext(cloud: CloudServer) -> None:
    created = await cloud.ok("POST", "/v1/secrets", secret())
    data = {"password": PLAIN, "user": "app"}
    assert created["version"] not in {content_version(data), content_version({"data": data})}


async def test_the_version_changes_exactly_when_the_data_changes(cloud: CloudServer) -> None:
    first = await cloud.ok("POST", "/v1/secrets", secret())
    same = await cloud.ok("PUT", "/v1/secrets/db-pass", secret(description="now described"))
    assert same["version"] == first["version"]
    assert same["description"] == "now described"
    changed = await cloud.ok("PUT", "/v1/secrets/db-pass", secret(value="new-password"))
    assert changed["version"] != first["version"]
    assert (await cloud.ok("GET", "/v1/secrets/db-pass"))["data"]["password"] == "new-password"


async def test_lists_are_newest_first_filtered_and_paged(cloud: CloudServer) -> None:
    for index, team in enumerate(["db", "web", "db"]):
        await cloud.ok("POST", "/v1/secrets", secret(f"s-{index}", labels={"team": team}))
    await cloud.ok(
        "POST", "/v1/registries", {"name": "reg", "address": "r", "username": "u", "password": "p"}
    )
    listed = await cloud.ok("GET", "/v1/secrets")
    assert [s["name"] for s in listed["items"]] == ["s-2", "s-1", "s-0"]  # no registry
    page = await cloud.ok("GET", "/v1/secrets?selector=team%3Ddb&pageNo=1&pageSize=1")
    assert (page["total"], [s["name"] for s in page["items"]]) == (2, ["s-2"])
    assert [s["name"] for s in (await cloud.ok("GET", "/v1/secrets?name=-1"))["items"]] == ["s-1"]


async def test_other_secret_types_are_not_reachable_as_secrets(cloud: CloudServer) -> None:
    body = {"name": "reg", "address": "r.example", "username": "u", "password": PLAIN}
    await cloud.ok("POST", "/v1/registries", body)
    for method, path, payload in [
        ("GET", "/v1/secrets/reg", None),
        ("PUT", "/v1/secrets/reg", secret("reg")),
        ("DELETE", "/v1/secrets/reg", None),
        ("GET", "/v1/secrets/reg/apps", None),
    ]:
        answer = await cloud.call(method, path, payload)
        assert answer.status == 404, (method, path, answer.body)
        assert PLAIN not in json.dumps(answer.body)
    assert (await cloud.ok("GET", "/v1/registries/reg"))["address"] == "r.example"


def _big(size: int) -> dict[str, str]:
    return {"k": "x" * (size - 8)}  # {"k":"…"} is size bytes of compact JSON


BAD_CREATES: list[tuple[str, Any, int, str, str]] = [
    ("no name", {"data": {"a": "b"}}, 400, "ErrRequestParamInvalid", "name"),
    ("bad name", secret("UPPER"), 400, "ErrRequestParamInvalid", "name"),
    ("reserved name", secret("baetyl-creds"), 400, "ErrRequestParamInvalid", "baetyl"),
    ("no data", {"name": "s"}, 400, "ErrRequestParamInvalid", "data"),
    ("data not text", secret(data={"a": 1}), 400, "ErrRequestParamInvalid", "data"),
    ("bad data key", secret(data={"a b": "x"}), 400, "ErrRequestParamInvalid", "data"),
    ("unknown field", secret(kind="x"), 400, "ErrRequestParamInvalid", "kind"),
    ("bad label", secret(labels={"a": "b c"}), 400, "ErrRequestParamInvalid", "label"),
    ("other secret-type", secret(labels={"secret-type": "registry"}), 400,
     "ErrRequestParamInvalid", "secret-type"),
    ("other namespace", secret(namespace="tenant-b"), 400, "ErrRequestParamInvalid", "namespace"),
    ("too large", secret(data=_big(SECRET_DATA_MAX_BYTES + 1)), 400, "ErrDataTooLarge", "data"),
    ("duplicate", secret("existing"), 409, "ErrResourceConflict", "already used by a secret"),
    ("name of a registry", secret("reg"), 409, "ErrResourceConflict", "registry"),
]  # fmt: skip


@refusals(BAD_CREATES)
async def test_bad_creates_are_refused_and_change_nothing(
    cloud: CloudServer, body: Any, status: int, code: str, fragment: str
) -> None:
    existing = await cloud.ok("POST", "/v1/secrets", secret("existing"))
    await cloud.ok(
        "POST", "/v1/registries", {"name": "reg", "address": "r", "username": "u", "password": "p"}
    )
    await cloud.refused("POST", "/v1/secrets", body, status, code, fragment)
    assert (await cloud.ok("GET", "/v1/secrets"))["items"] == [existing]
    assert [r["name"] for r in (await cloud.ok("GET", "/v1/registries"))["items"]] == ["reg"]


async def test_data_of_exactly_64_kib_is_accepted(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/secrets", secret("big", data=_big(SECRET_DATA_MAX_BYTES)))
    got = await cloud.ok("GET", "/v1/secrets/big")
    assert len(got["data"]["k"]) == SECRET_DATA_MAX_BYTES - 8


BAD_REPLACES: list[tuple[str, str, Any, int, str, str]] = [
    ("other name in body", "db-pass", secret("other"), 400, "ErrRequestParamInvalid", "name"),
    ("unknown", "missing", secret("missing"), 404, "ErrResourceNotFound", "missing"),
    ("no data", "db-pass", {"name": "db-pass"}, 400, "ErrRequestParamInvalid", "data"),
    ("too large", "db-pass", secret(data=_big(SECRET_DATA_MAX_BYTES + 1)), 400,
     "ErrDataTooLarge", "data"),
    ("other secret-type", "db-pass", secret(labels={"secret-type": "certificate"}), 400,
     "ErrRequestParamInvalid", "secret-type"),
]  # fmt: skip


@named_refusals(BAD_REPLACES)
async def test_bad_replaces_are_refused_and_change_nothing(
    cloud: CloudServer, name: str, body: Any, status: int, code: str, fragment: str
) -> None:
    await cloud.ok("POST", "/v1/secrets", secret())
    before = await cloud.ok("GET", "/v1/secrets/db-pass")
    await cloud.refused("PUT", f"/v1/secrets/{name}", body, status, code, fragment)
    assert await cloud.ok("GET", "/v1/secrets/db-pass") == before


async def test_a_mounted_secret_lists_its_apps_and_cannot_be_deleted(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/secrets", secret())
    app = await cloud.ok("POST", "/v1/apps", app_using("db-client", "db-pass"))
    uses = await cloud.ok("GET", "/v1/secrets/db-pass/apps")
    assert [(u["name"], u["version"]) for u in uses["items"]] == [("db-client", app["version"])]
    answer = await cloud.call("DELETE", "/v1/secrets/db-pass")
    assert answer.status == 403
    assert answer.body["code"] == "ErrResourceHasBeenUsed"
    assert (await cloud.call("GET", "/v1/secrets/db-pass")).status == 200


async def test_a_data_change_gives_the_mounting_app_and_its_nodes_a_new_version(
    cloud: CloudServer,
) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1", "labels": {"role": "db"}})
    first = await cloud.ok("POST", "/v1/secrets", secret())
    app_v1 = await cloud.ok("POST", "/v1/apps", app_using("db-client", "db-pass", "role=db"))
    assert app_v1["volumes"][0]["secret"]["version"] == first["version"]
    cloud.desired_changes.clear()

    await cloud.ok("PUT", "/v1/secrets/db-pass", secret(description="only described"))
    assert (await cloud.ok("GET", "/v1/apps/db-client"))["version"] == app_v1["version"]
    assert cloud.desired_changes == []

    second = await cloud.ok("PUT", "/v1/secrets/db-pass", secret(value="rotated"))
    app_v2 = await cloud.ok("GET", "/v1/apps/db-client")
    assert app_v2["version"] != app_v1["version"]
    assert app_v2["volumes"][0]["secret"]["version"] == second["version"]
    shadow = await cloud.ok("GET", "/v1/nodes/edge-1/shadow")
    assert shadow["state"]["desired"]["apps"] == {"db-client": app_v2["version"]}
    assert cloud.desired_changes == [["default.edge-1"]]
