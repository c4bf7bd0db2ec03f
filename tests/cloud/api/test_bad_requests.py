"""Bad requests found by the issue-12 review: each gets a clear 4xx and changes nothing.

Path names too long for any resource, numbers past every bound, bearer tokens that are not
ASCII, bodies naming another namespace or repeating a key, and label maps of thousands.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.cloud.api.node_helpers import native_app
from tests.cloud.api.test_certificates import certificate
from tests.cloud.api.test_registries import registry
from tests.cloud.api.test_route_access import ACCESS
from tests.cloud.api.test_secrets import secret
from tests.cloud.pki.selfsigned import make_pair
from tests.harness.cloud import CloudServer

LONG = "n" * 64  # one past a resource name's 63
LONG_APP = "a" * 56  # one past an application name's 55
NAMED = sorted(
    (method, path)
    for method, path in ACCESS
    if "{name}" in path and not path.startswith("/v1/properties/")
)


def _fill(path: str, name: str, app: str = "web") -> str:
    return path.replace("{name}", name, 1).replace("{app}", app)


def _is_bad_request(answer: Any) -> bool:
    return answer.status == 400 and answer.body["code"] == "ErrRequestParamInvalid"


# -- path names (item 7) ---------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), NAMED, ids=str)
async def test_a_path_name_longer_than_any_resource_name_is_a_400(
    cloud: CloudServer, method: str, path: str
) -> None:
    answer = await cloud.call(method, _fill(path, LONG), {})
    assert _is_bad_request(answer), answer.body
    assert answer.body["message"].startswith("path: ")
    assert "is longer than" in answer.body["message"]


async def test_app_names_in_paths_are_held_to_55_characters(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
    for method, path in [
        ("GET", f"/v1/apps/{LONG_APP}"),
        ("DELETE", f"/v1/apps/{LONG_APP}"),
        ("GET", f"/v1/apps/{LONG_APP}/configs"),
        ("GET", f"/v1/nodes/edge-1/apps/{LONG_APP}/logs"),
    ]:
        answer = await cloud.call(method, path)
        assert _is_bad_request(answer), (path, answer.body)
        assert "longer than 55" in answer.body["message"]
    # A node or config name of the same length is fine: only apps are held to 55.
    assert (await cloud.call("GET", f"/v1/configs/{LONG_APP}")).status == 404


async def test_path_names_that_break_the_name_rules_are_a_400(cloud: CloudServer) -> None:
    for name in ("UPPER", "-dash", "a_b", "x"):
        answer = await cloud.call("GET", f"/v1/nodes/{name}")
        assert _is_bad_request(answer), (name, answer.body)


# -- numbers (item 9) ------------------------------------------------------------------------

LIST_ROUTES = [
    "/v1/apps",
    "/v1/nodes",
    "/v1/configs",
    "/v1/secrets",
    "/v1/certificates",
    "/v1/registries",
]


@pytest.mark.parametrize("page_no", ["9223372036854775808", "1000001", "99999999999999999999"])
@pytest.mark.parametrize("path", LIST_ROUTES)
async def test_a_page_number_past_its_bound_is_a_400(
    cloud: CloudServer, path: str, page_no: str
) -> None:
    answer = await cloud.call("GET", f"{path}?pageNo={page_no}&pageSize=10")
    assert _is_bad_request(answer), answer.body
    assert "pageNo" in answer.body["message"]


async def test_the_last_allowed_page_number_answers_an_empty_page(cloud: CloudServer) -> None:
    page = await cloud.ok("GET", "/v1/apps?pageNo=1000000&pageSize=1000")
    assert (page["pageNo"], page["items"]) == (1000000, [])


@pytest.mark.parametrize("token_id", ["9223372036854775808", "1" * 19, "1" * 400, "-1", "1e3"])
async def test_a_token_id_past_its_bound_is_a_400_and_revokes_nothing(
    cloud: CloudServer, token_id: str
) -> None:
    before = await cloud.ok("GET", "/v1/tokens")
    answer = await cloud.call("DELETE", f"/v1/tokens/{token_id}")
    assert _is_bad_request(answer), answer.body
    assert await cloud.ok("GET", "/v1/tokens") == before


# -- bearer tokens that are not ASCII (item 10) ----------------------------------------------


async def _raw_get(cloud: CloudServer, path: str, authorization: bytes) -> tuple[int, bytes]:
    """Send a request with these exact header bytes (a client library would refuse them)."""
    address = urlsplit(cloud.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: " + authorization + b"\r\n\r\n"
        )
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer bt_\xe9abc",  # latin-1 é
        b"Bearer \xff\xfe",
        b"Bearer bt_" + "é".encode(),  # UTF-8, still not a token character
        b"Bearer " + b"x" * 300,
    ],
    ids=["latin-1", "0xff", "utf-8", "too-long"],
)
async def test_a_bearer_token_that_cannot_be_a_token_is_a_401(
    cloud: CloudServer, authorization: bytes
) -> None:
    status, body = await _raw_get(cloud, "/v1/nodes", authorization)
    assert status == 401, body
    assert json.loads(body)["code"] == "ErrRequestAccessDenied"


async def test_a_latin1_byte_appended_to_a_real_token_does_not_authenticate(
    cloud: CloudServer,
) -> None:
    status, _ = await _raw_get(
        cloud, "/v1/nodes", b"Bearer " + cloud.admin_token.encode() + b"\xe9"
    )
    assert status == 401
    status, _ = await _raw_get(cloud, "/v1/nodes", b"Bearer " + cloud.admin_token.encode())
    assert status == 200


# -- bodies (item 13) ------------------------------------------------------------------------

PAIR = make_pair()
Body = Callable[..., dict[str, Any]]
KINDS: dict[str, Body] = {
    "apps": lambda **extra: native_app("thing", "role=x", **extra),
    "nodes": lambda **extra: {"name": "thing", **extra},
    "configs": lambda **extra: {"name": "thing", "data": [], **extra},
    "secrets": lambda **extra: secret("thing", **extra),
    "certificates": lambda **extra: certificate("thing", PAIR, **extra),
    "registries": lambda **extra: registry("thing", **extra),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_kind_refuses_a_body_naming_another_namespace_the_same_way(
    cloud: CloudServer, kind: str
) -> None:
    body = KINDS[kind]
    answer = await cloud.call("POST", f"/v1/{kind}", body(namespace="tenant-b"))
    assert _is_bad_request(answer), answer.body
    assert answer.body["message"].startswith("namespace: the token's namespace is 'default'")
    assert (await cloud.call("GET", f"/v1/{kind}/thing")).status == 404
    created = await cloud.ok("POST", f"/v1/{kind}", body(namespace="default"))
    assert created["namespace"] == "default"
    answer = await cloud.call("PUT", f"/v1/{kind}/thing", body(namespace="tenant-b"))
    assert _is_bad_request(answer), answer.body
    assert answer.body["message"].startswith("namespace: the token's namespace is 'default'")


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_kind_refuses_thousands_of_labels(cloud: CloudServer, kind: str) -> None:
    many = {f"k{i}": "v" for i in range(5000)}
    answer = await cloud.call("POST", f"/v1/{kind}", KINDS[kind](labels=many))
    assert _is_bad_request(answer), answer.body
    assert "at most 64" in answer.body["message"]
    assert (await cloud.call("GET", f"/v1/{kind}/thing")).status == 404
    enough = {f"k{i}": "v" for i in range(63)}  # the 64th: secret-type on secrets and the like
    await cloud.ok("POST", f"/v1/{kind}", KINDS[kind](labels=enough))
    answer = await cloud.call("PUT", f"/v1/{kind}/thing", KINDS[kind](labels=many))
    assert _is_bad_request(answer), answer.body


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/tokens", b'{"role": "read", "role": "admin"}'),
        ("/v1/nodes", b'{"name": "a1", "labels": {"x": "1", "x": "2"}}'),
        ("/v1/configs", b'{"name": "c1", "data": [], "name": "c2"}'),
        ("/v1/apps", json.dumps(native_app("a1", "x=1")).encode()[:-1] + b', "selector": ""}'),
    ],
    ids=["tokens", "nodes-nested", "configs", "apps"],
)
async def test_a_body_repeating_a_key_is_refused_and_changes_nothing(
    cloud: CloudServer, path: str, raw: bytes
) -> None:
    before = await cloud.ok("GET", path)
    answer = await cloud.call("POST", path, raw=raw)
    assert _is_bad_request(answer), answer.body
    assert "duplicate keys" in answer.body["message"]
    assert await cloud.ok("GET", path) == before


async def test_a_body_nested_too_deeply_is_a_400(cloud: CloudServer) -> None:
    answer = await cloud.call("POST", "/v1/nodes", raw=b"[" * 200_000)
    assert answer.status == 400, answer.body


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_kind_refuses_a_nul_character_in_any_text_and_stores_nothing(
    cloud: CloudServer, kind: str
) -> None:
    # PostgreSQL refuses NUL in text and jsonb (a 500 before); SQLite stored it silently.
    answer = await cloud.call("POST", f"/v1/{kind}", KINDS[kind](description="before\u0000after"))
    assert _is_bad_request(answer), answer.body
    assert answer.body["message"].endswith("description: text must not contain NUL")
    assert (await cloud.call("GET", f"/v1/{kind}/thing")).status == 404
    labelled = KINDS[kind](labels={"x\u0000y": "1"})
    answer = await cloud.call("POST", f"/v1/{kind}", labelled)
    assert _is_bad_request(answer), answer.body
    assert (await cloud.call("GET", f"/v1/{kind}/thing")).status == 404


async def test_a_nul_character_in_config_data_or_a_list_query_is_a_400(cloud: CloudServer) -> None:
    item = {"key": "k", "value": {"type": "kv", "value": "a\u0000b"}}
    answer = await cloud.call("POST", "/v1/configs", {"name": "c1", "data": [item]})
    assert _is_bad_request(answer), answer.body
    assert "data[0].value.value: text must not contain NUL" in answer.body["message"]
    assert (await cloud.call("GET", "/v1/configs/c1")).status == 404
    answer = await cloud.call("GET", "/v1/configs?name=a%00b")
    assert _is_bad_request(answer), answer.body
