"""`resources/get`: a node gets exactly what its desired state references, secrets decrypted."""

from __future__ import annotations

from typing import Any

from agent.contracts.topics import Channel
from tests.cloud.mqtt.conftest import (
    Agent,
    AgentFactory,
    labelled_node,
    make_node,
    native_app,
    unique,
)
from tests.harness.cloud import CloudServer

ANSWERS = (Channel.RESOURCES_GET_ACCEPTED, Channel.RESOURCES_GET_REJECTED)


def _config(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "data": [{"key": "conf.yml", "value": {"type": "kv", "value": text}}]}


async def _app_with_mounts(cloud: CloudServer, label: str, suffix: str) -> dict[str, Any]:
    """An app for nodes `role=label` mounting a fresh config and a fresh secret."""
    config = await cloud.ok("POST", "/v1/configs", _config(f"cfg-{suffix}", f"level: {suffix}"))
    secret = await cloud.ok(
        "POST", "/v1/secrets", {"name": f"sec-{suffix}", "data": {"password": f"pw-{suffix}"}}
    )
    volumes = [
        {"name": "settings", "config": {"name": config["name"]}},
        {"name": "creds", "secret": {"name": secret["name"]}},
    ]
    body = native_app(f"app-{suffix}", f"role={label}", volumes=volumes)
    body["services"][0]["volumeMounts"] = [
        {"name": "settings", "mountPath": "etc"},
        {"name": "creds", "mountPath": "secrets"},
    ]
    app: dict[str, Any] = await cloud.ok("POST", "/v1/apps", body)
    return {"app": app, "config": config, "secret": secret}


def _ref(kind: str, item: dict[str, Any]) -> dict[str, str]:
    return {"kind": kind, "name": item["name"], "version": item["version"]}


async def _fetch(node: Agent, *refs: dict[str, str]) -> tuple[Channel, dict[str, Any]]:
    request = {"clientToken": unique("tok"), "resources": list(refs)}
    channel, answer = await node.ask(Channel.RESOURCES_GET, request, ANSWERS)
    assert answer["clientToken"] == request["clientToken"]
    return channel, answer


async def test_a_node_gets_its_app_config_and_decrypted_secret(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    label, nid = await labelled_node(cloud)
    made = await _app_with_mounts(cloud, label, unique("a"))
    async with agent(nid) as node:
        channel, answer = await _fetch(
            node,
            _ref("application", made["app"]),
            _ref("configuration", made["config"]),
            _ref("secret", made["secret"]),
        )
    assert channel is Channel.RESOURCES_GET_ACCEPTED, answer
    app, config, secret = answer["values"]
    assert (app["kind"], app["name"], app["version"]) == (
        "application",
        made["app"]["name"],
        made["app"]["version"],
    )
    assert app["value"]["volumes"] == made["app"]["volumes"]
    assert config["value"]["data"] == {"conf.yml": f"level: {made['config']['name'][4:]}"}
    assert secret["kind"] == "secret"
    assert secret["value"]["data"] == {"password": f"pw-{made['secret']['name'][4:]}"}
    assert secret["value"]["version"] == made["secret"]["version"]


async def test_an_unreferenced_resource_refuses_the_whole_request(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    label, nid = await labelled_node(cloud)
    mine = await _app_with_mounts(cloud, label, unique("m"))
    loose = await cloud.ok("POST", "/v1/configs", _config(unique("loose"), "x"))
    async with agent(nid) as node:
        channel, answer = await _fetch(
            node, _ref("application", mine["app"]), _ref("configuration", loose)
        )
        assert channel is Channel.RESOURCES_GET_REJECTED
        assert answer["code"] == 403
        assert loose["name"] in answer["message"]

        wrong_version = {**_ref("application", mine["app"]), "version": "0123456789abcdef"}
        channel, answer = await _fetch(node, wrong_version)
        assert (channel, answer["code"]) == (Channel.RESOURCES_GET_REJECTED, 403)


async def test_a_node_never_receives_another_nodes_secret(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    label_a, label_b = unique("role"), unique("role")
    nid_a = await make_node(cloud, {"role": label_a})
    await make_node(cloud, {"role": label_b})
    theirs = await _app_with_mounts(cloud, label_b, unique("b"))
    async with agent(nid_a) as node:
        for ref in (
            _ref("secret", theirs["secret"]),
            _ref("application", theirs["app"]),
            _ref("configuration", theirs["config"]),
        ):
            channel, answer = await _fetch(node, ref)
            assert channel is Channel.RESOURCES_GET_REJECTED
            assert answer["code"] == 403
            assert "pw-" not in str(answer)


async def test_a_version_the_app_moved_away_from_is_gone(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    label, nid = await labelled_node(cloud)
    made = await _app_with_mounts(cloud, label, unique("v"))
    old = made["config"]
    await cloud.ok("PUT", f"/v1/configs/{old['name']}", _config(old["name"], "level: new"))
    async with agent(nid) as node:
        channel, answer = await _fetch(node, _ref("configuration", old))
        assert (channel, answer["code"]) == (Channel.RESOURCES_GET_REJECTED, 403)
        app = await cloud.ok("GET", f"/v1/apps/{made['app']['name']}")
        channel, answer = await _fetch(node, _ref("application", app))
        assert channel is Channel.RESOURCES_GET_ACCEPTED
        assert answer["values"][0]["value"]["volumes"][0]["config"]["version"] != old["version"]
