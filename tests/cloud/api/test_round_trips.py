"""What `GET` returns can be `PUT` back, for every kind (issue 16): view fields the server owns
(times, versions, readiness, report, desire, computed certificate facts) are read and ignored,
and putting a view back changes nothing."""

from __future__ import annotations

from typing import Any

from tests.cloud.api.node_helpers import native_app, node, report
from tests.cloud.pki.selfsigned import make_pair
from tests.harness.cloud import CloudServer

CHANGING = {"updateTime"}
"""What a PUT may move even when nothing changed."""


def same(before: Any, after: Any) -> bool:
    if isinstance(before, dict) and isinstance(after, dict):
        keys = (set(before) | set(after)) - CHANGING
        return all(same(before.get(key), after.get(key)) for key in keys)
    return bool(before == after)


async def test_every_kind_can_be_put_back_as_read(cloud: CloudServer) -> None:
    pair = make_pair("tls.example")
    await cloud.ok("POST", "/v1/configs", {
        "name": "settings", "labels": {"team": "edge"},
        "data": [{"key": "a.txt", "value": {"type": "kv", "value": "hello"}}],
    })  # fmt: skip
    await cloud.ok("POST", "/v1/secrets", {"name": "creds", "data": {"token": "t0k3n"}})
    await cloud.ok(
        "POST", "/v1/certificates",
        {"name": "tls", "data": {"certificate": pair.cert_pem, "key": pair.key_pem}},
    )  # fmt: skip
    await cloud.ok("POST", "/v1/registries", {
        "name": "hub", "address": "registry.example:5000", "username": "bot", "password": "pw",
    })  # fmt: skip
    app = native_app("hello", "role=gateway", volumes=[
        {"name": "conf", "config": {"name": "settings"}},
        {"name": "creds", "secret": {"name": "creds"}},
    ])  # fmt: skip
    app["services"][0]["volumeMounts"] = [
        {"name": "conf", "mountPath": "etc/conf"}, {"name": "creds", "mountPath": "etc/creds"},
    ]  # fmt: skip
    await cloud.ok("POST", "/v1/apps", app)
    await node(cloud, "gw-1", {"role": "gateway"}, description="the gateway")
    await report("gw-1", {"apps": {"hello": "1"}, "node": {"hostname": "gw-1"}})
    for path in (
        "/v1/configs/settings",
        "/v1/secrets/creds",
        "/v1/certificates/tls",
        "/v1/registries/hub",
        "/v1/apps/hello",
        "/v1/nodes/gw-1",
    ):
        before = await cloud.ok("GET", path)
        put = await cloud.call("PUT", path, before)
        assert put.status == 200, (path, put.body)
        after = await cloud.ok("GET", path)
        assert same(before, after), (path, before, after)
