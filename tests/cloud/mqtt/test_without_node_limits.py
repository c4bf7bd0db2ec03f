"""The cloud's own defences for a broker without the node-limits plugin.

The managed broker refuses a node's oversized or retained messages outright (decision #98,
tests/cloud/broker/test_node_limits.py); an operator's broker may not load the plugin, so the
cloud still refuses an oversized request before parsing it (413) and deletes every retained
message a node leaves on its topics except a presence of at most 1 KiB (decision #76).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.contracts import topics
from agent.contracts.shadow import DEFAULT_LIMITS, PRESENCE_MAX_BYTES
from agent.contracts.topics import Channel
from cloud.settings import MqttSettings
from tests.cloud.mqtt.conftest import make_node, running_cloud
from tests.harness.cloud import CloudServer
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI
from tools.kit.waiting import eventually

TIMEOUT = 20.0


@pytest.fixture
async def unguarded(
    tmp_path: Path,
    cloud_db_url: str | None,
    mqtt_settings: MqttSettings,
    mosquitto_without_node_limits: MosquittoBroker,
) -> AsyncIterator[tuple[MosquittoBroker, CloudServer]]:
    """A broker without the node-limits plugin and a cloud connected to it."""
    broker = mosquitto_without_node_limits
    settings = dataclasses.replace(mqtt_settings, host=broker.host, port=broker.port)
    async with running_cloud(tmp_path / "cloud", cloud_db_url, settings) as cloud:
        yield broker, cloud


async def retained_under(broker: MosquittoBroker, pki: HarnessPKI, nid: str) -> list[str]:
    """Topics under the node's prefix on which a new subscriber gets a retained message."""
    mark = f"sentinel-{uuid.uuid4().hex}".encode()
    found: list[str] = []
    async with broker.client(pki.cloud("r2")) as observer:
        await observer.subscribe(f"baetyl/v1/{nid}/#", qos=1)
        # Retained messages are sent on subscribing, so before this one.
        await observer.publish(topics.build(nid, Channel.CMD_REQUEST), mark, qos=1)
        async for message in observer.messages:
            if message.payload == mark:
                return found
            found.append(message.topic.value)
    raise AssertionError("the observer stopped before its sentinel arrived")


async def test_the_cloud_deletes_what_a_node_leaves_retained_when_the_broker_does_not_refuse_it(
    unguarded: tuple[MosquittoBroker, CloudServer], pki: HarnessPKI
) -> None:
    broker, cloud = unguarded
    nid = await make_node(cloud)
    async with broker.client(pki.node(nid)) as node:
        for channel in (Channel.SHADOW_UPDATE, Channel.RESOURCES_GET, Channel.CMD_RESPONSE):
            await node.publish(topics.build(nid, channel), b"{}", qos=1, retain=True)
        big = b'{"online":true,"pad":"' + b"p" * PRESENCE_MAX_BYTES + b'"}'
        await node.publish(topics.build(nid, Channel.PRESENCE), big, qos=1, retain=True)

    async def nothing_retained() -> bool:
        return not await retained_under(broker, pki, nid)

    await eventually(nothing_retained, limit=TIMEOUT, what="no retained message left")


async def test_a_request_over_the_node_limit_is_refused_unread_with_413(
    unguarded: tuple[MosquittoBroker, CloudServer], pki: HarnessPKI
) -> None:
    broker, cloud = unguarded
    blob = "x" * DEFAULT_LIMITS.node_payload_bytes
    payload = json.dumps({"clientToken": "big", "state": {"reported": {"blob": blob}}}).encode()
    nid = await make_node(cloud)
    async with broker.client(pki.node(nid)) as node:
        await node.subscribe(topics.build(nid, Channel.SHADOW_UPDATE_REJECTED), qos=1)
        await node.publish(topics.build(nid, Channel.SHADOW_UPDATE), payload, qos=1)
        async with asyncio.timeout(TIMEOUT):
            message = await anext(aiter(node.messages))
    assert isinstance(message.payload, bytes)
    answer = json.loads(message.payload)
    assert answer["code"] == 413
    assert "clientToken" not in answer  # refused before parsing: not even the token is read
    doc = await cloud.ok("GET", f"/v1/nodes/{nid.split('.', 1)[1]}/shadow")
    assert doc["state"]["reported"] == {}
