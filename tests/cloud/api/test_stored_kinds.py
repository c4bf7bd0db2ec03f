"""The rules every stored kind shares (configs, secrets, certificates, registries), per kind.

`cloud/api/stored_kinds.py` writes these routes once; these tests hold each kind to the same
rules through a real server: who may not read or write it, how a body may name it, what a
delete leaves. What is particular to a kind (sealing, PEM facts, passwords) stays in its own
test module.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.cloud.pki.selfsigned import make_pair
from tests.harness.cloud import CloudServer

Json = dict[str, Any]


@functools.cache
def _pem(variant: str) -> tuple[str, str]:
    pair = make_pair(f"{variant}.example.test")
    return pair.cert_pem, pair.key_pem


def _config(name: str, variant: str) -> Json:
    return {"name": name, "data": [{"key": "a.yml", "value": {"type": "kv", "value": variant}}]}


def _secret(name: str, variant: str) -> Json:
    return {"name": name, "data": {"password": f"pass-{variant}"}}


def _certificate(name: str, variant: str) -> Json:
    cert, key = _pem(variant)
    return {"name": name, "data": {"certificate": cert, "key": key}}


def _registry(name: str, variant: str) -> Json:
    return {"name": name, "address": "r.example.test", "username": "u", "password": f"p-{variant}"}


@dataclass(frozen=True)
class Kind:
    """One stored kind as a client sees it."""

    path: str
    what: str  # the name in Baetyl's "The (what) resource (name) is not found" message
    body: Callable[[str, str], Json]  # (name, variant) → a body; variants differ in data
    reader_gets: int = 200  # what a read token gets from GET /{name}
    more_writes: tuple[tuple[str, str, Json], ...] = ()  # (method, suffix, body) beyond CRUD

    def __str__(self) -> str:
        return self.path.rsplit("/", 1)[-1]


KINDS = [
    Kind("/v1/configs", "config", _config),
    Kind("/v1/secrets", "secret", _secret, reader_gets=403),
    Kind("/v1/certificates", "certificate", _certificate),
    Kind(
        "/v1/registries",
        "registry",
        _registry,
        more_writes=(("POST", "/refresh", {"password": "stolen"}),),
    ),
]
each_kind = pytest.mark.parametrize("kind", KINDS, ids=str)
NAME = "shared"
MINE = "mine-7f3e"  # the first data's variant: must never show in another tenant's answers


async def _created(cloud: CloudServer, kind: Kind) -> Json:
    await cloud.ok("POST", kind.path, kind.body(NAME, MINE))
    return await cloud.ok("GET", f"{kind.path}/{NAME}")


@each_kind
async def test_delete_removes_it_and_a_second_delete_is_a_404(
    cloud: CloudServer, kind: Kind
) -> None:
    await _created(cloud, kind)
    assert await cloud.ok("DELETE", f"{kind.path}/{NAME}") == {"success": True}
    answer = await cloud.call("GET", f"{kind.path}/{NAME}")
    assert answer.status == 404
    assert answer.body["code"] == "ErrResourceNotFound"
    assert answer.body["message"] == (
        f"The ({kind.what}) resource ({NAME}) is not found in namespace(default)."
    )
    assert (await cloud.call("DELETE", f"{kind.path}/{NAME}")).status == 404


@each_kind
async def test_another_namespace_can_neither_see_nor_touch_it(
    cloud: CloudServer, kind: Kind
) -> None:
    mine = await _created(cloud, kind)
    other = await cloud.token(namespace="tenant-b")
    assert (await cloud.ok("GET", kind.path, token=other))["items"] == []
    item = f"{kind.path}/{NAME}"
    calls = [
        ("GET", item, None),
        ("PUT", item, kind.body(NAME, "stolen")),
        ("DELETE", item, None),
        ("GET", f"{item}/apps", None),
        *((method, item + suffix, body) for method, suffix, body in kind.more_writes),
    ]
    await cloud.all_refused(other, 404, calls)
    for method, path, body in calls:  # not a byte of the other tenant's data in the errors
        answer = await cloud.call(method, path, body, token=other)
        assert MINE not in json.dumps(answer.body)
    # The same name in the other namespace is a different resource.
    theirs = await cloud.ok("POST", kind.path, kind.body(NAME, "theirs"), token=other)
    assert theirs["namespace"] == "tenant-b"
    assert await cloud.ok("GET", item) == mine  # the version too: the data did not change


@each_kind
async def test_a_read_token_reads_but_cannot_write(cloud: CloudServer, kind: Kind) -> None:
    mine = await _created(cloud, kind)
    reader = await cloud.token(role="read")
    item = f"{kind.path}/{NAME}"
    assert (await cloud.ok("GET", kind.path, token=reader))["total"] == 1
    assert (await cloud.call("GET", item, token=reader)).status == kind.reader_gets
    await cloud.all_refused(
        reader,
        403,
        [
            ("POST", kind.path, kind.body("another", "v2")),
            ("PUT", item, kind.body(NAME, "v2")),
            ("DELETE", item, None),
            *((method, item + suffix, body) for method, suffix, body in kind.more_writes),
        ],
    )
    assert await cloud.ok("GET", item) == mine
    assert (await cloud.ok("GET", kind.path))["total"] == 1


@each_kind
async def test_a_get_result_can_be_put_back_unchanged(cloud: CloudServer, kind: Kind) -> None:
    await cloud.ok("POST", kind.path, {**kind.body(NAME, "v1"), "labels": {"k": "v"}})
    got = await cloud.ok("GET", f"{kind.path}/{NAME}")
    again = await cloud.ok("PUT", f"{kind.path}/{NAME}", got)
    assert again["version"] == got["version"]
    assert await cloud.ok("GET", f"{kind.path}/{NAME}") == got


@each_kind
async def test_a_put_may_omit_the_name_but_not_name_another(cloud: CloudServer, kind: Kind) -> None:
    mine = await _created(cloud, kind)
    item = f"{kind.path}/{NAME}"
    anonymous = {k: v for k, v in kind.body(NAME, "v2").items() if k != "name"}
    changed = await cloud.ok("PUT", item, anonymous)
    assert changed["name"] == NAME
    assert changed["version"] != mine["version"]
    before = await cloud.ok("GET", item)
    await cloud.refused(
        "PUT", item, kind.body("elsewhere", "v3"), 400, "ErrRequestParamInvalid", "elsewhere"
    )
    assert await cloud.ok("GET", item) == before
    assert (await cloud.call("GET", f"{kind.path}/elsewhere")).status == 404


@each_kind
async def test_a_body_naming_another_namespace_is_refused(cloud: CloudServer, kind: Kind) -> None:
    foreign = {**kind.body(NAME, "v1"), "namespace": "tenant-b"}
    await cloud.refused("POST", kind.path, foreign, 400, "ErrRequestParamInvalid", "namespace")
    assert (await cloud.ok("GET", kind.path))["total"] == 0
    mine = await _created(cloud, kind)
    item = f"{kind.path}/{NAME}"
    await cloud.refused("PUT", item, foreign, 400, "ErrRequestParamInvalid", "namespace")
    assert await cloud.ok("GET", item) == mine
    same = {**kind.body(NAME, MINE), "namespace": "default"}
    assert (await cloud.ok("PUT", item, same))["version"] == mine["version"]


@each_kind
async def test_openapi_describes_its_six_routes(cloud: CloudServer, kind: Kind) -> None:
    paths = (await cloud.ok("GET", "/v1/openapi.json"))["paths"]
    path = kind.path
    assert set(paths[path]) == {"get", "post"}
    assert set(paths[path + "/{name}"]) == {"get", "put", "delete"}
    assert set(paths[path + "/{name}/apps"]) == {"get"}
    tag = str(kind) if str(kind) != "configs" else "configurations"
    assert paths[path]["get"]["tags"] == [tag]
