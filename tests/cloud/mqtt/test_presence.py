"""Presence: the retained online message and the MQTT will drive NodeView `ready`."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import aiomqtt

from agent.contracts.topics import Channel
from tests.cloud.mqtt.conftest import AgentFactory, make_node
from tests.harness.cloud import CloudServer

WILL_TIMEOUT = 20.0  # keepalive 5 s times 1.5 plus the broker's check interval, with margin


async def _view_until(
    cloud: CloudServer, name: str, ready: int, *, timeout: float = WILL_TIMEOUT
) -> dict[str, Any]:
    """Poll the node view until `ready` has the value (presence is stored asynchronously)."""
    async with asyncio.timeout(timeout):
        while True:
            view: dict[str, Any] = await cloud.ok("GET", f"/v1/nodes/{name}")
            if view["ready"] == ready:
                return view
            await asyncio.sleep(0.05)


async def test_online_presence_makes_the_node_ready_and_its_will_makes_it_offline(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    nid = await make_node(cloud)
    name = nid.split(".", 1)[1]
    fresh = await cloud.ok("GET", f"/v1/nodes/{name}")
    assert fresh["ready"] == 0
    assert "lastSeen" not in fresh

    async with agent(nid, will=True) as node:
        online = {"online": True, "timestamp": 1.0, "version": "1.0"}
        await node.publish(Channel.PRESENCE, online, retain=True)
        view = await _view_until(cloud, name, 1)
        assert "lastSeen" in view
        # Cut the TCP connection without a DISCONNECT packet: the broker publishes the will.
        sock = node.client._client.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(aiomqtt.MqttError):
            await node.client.publish("baetyl/v1/ignored", b"", qos=0)
        await _view_until(cloud, name, 2)
    # Clear the retained presence so the session broker does not keep it.
    async with agent(nid) as node:
        await node.client.publish(f"baetyl/v1/{nid}/presence", b"", qos=1, retain=True)


async def test_a_clean_offline_presence_makes_the_node_offline(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    nid = await make_node(cloud)
    name = nid.split(".", 1)[1]
    async with agent(nid) as node:
        await node.publish(Channel.PRESENCE, {"online": True, "timestamp": 5.0}, retain=True)
        await _view_until(cloud, name, 1, timeout=10)
        await node.publish(Channel.PRESENCE, {"online": False}, retain=True)
        await _view_until(cloud, name, 2, timeout=10)
        listed = await cloud.ok("GET", "/v1/nodes?ready=offline")
        assert name in {item["name"] for item in listed["items"]}
        await node.client.publish(f"baetyl/v1/{nid}/presence", b"", qos=1, retain=True)
