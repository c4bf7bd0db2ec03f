"""`GET /v1/properties/{name}` and the install command rendered from the operator's properties."""

from __future__ import annotations

from cloud.store import properties as property_store
from tests.cloud.api.node_helpers import node
from tests.harness.cloud import CloudServer

TEMPLATE = (
    "curl -skfL '{{address}}/v1/init/baetyl-install.sh?ns={{namespace}}&node={{node}}"
    '&mode={{mode}}\' -osSL | sh -s -- "$HOME" {{unknown}}'
)


async def test_an_unknown_property_is_a_404(cloud: CloudServer) -> None:
    for name in ("init-server-address", "x" * 200):
        answer = await cloud.call("GET", f"/v1/properties/{name}")
        assert (answer.status, answer.body["code"]) == (404, "ErrResourceNotFound")
        assert "(property)" in answer.body["message"]


async def test_a_property_is_readable_from_every_namespace(cloud: CloudServer) -> None:
    await property_store.put("sync-server-address", "mqtts://cloud.example:8883")
    shown = await cloud.ok("GET", "/v1/properties/sync-server-address")
    assert shown["name"] == "sync-server-address"
    assert shown["value"] == "mqtts://cloud.example:8883"
    assert {"createTime", "updateTime"} <= set(shown)
    reader = await cloud.token(namespace="tenant-b", role="read")
    assert await cloud.ok("GET", "/v1/properties/sync-server-address", token=reader) == shown


async def test_the_install_command_is_rendered_from_the_template_property(
    cloud: CloudServer,
) -> None:
    await property_store.put("baetyl-init-command", TEMPLATE)
    await property_store.put("init-server-address", "https://cloud.example:9003")
    await node(cloud, "edge-1", node_mode="kube")
    cmd = (await cloud.ok("GET", "/v1/nodes/edge-1/init"))["cmd"]
    assert cmd == (
        "curl -skfL 'https://cloud.example:9003/v1/init/baetyl-install.sh?ns=default"
        '&node=edge-1&mode=kube\' -osSL | sh -s -- "$HOME" {{unknown}}'
    )
    native = (await cloud.ok("GET", "/v1/nodes/edge-1/init?mode=native"))["cmd"]
    assert "mode=native" in native
    # wget has its own template, which is not set: the built-in command is used, and this
    # REST-only cloud has no broker address to give nodes (tests/cloud/api/test_install.py).
    answer = await cloud.call("GET", "/v1/nodes/edge-1/init?method=wget")
    assert answer.status == 503
    assert "--node-mqtt-url" in answer.body["message"]
    await property_store.put("baetyl-init-command-wget", "wget -qO- '{{address}}/x' | sh")
    wget = await cloud.ok("GET", "/v1/nodes/edge-1/init?method=wget")
    assert wget == {"cmd": "wget -qO- 'https://cloud.example:9003/x' | sh"}
