"""Broker security on a real Mosquitto with the rendered config and ACL (DESIGN §4, §10).

Negative results ("never receives") are proven with a sentinel: a message that the broker handles
after the forbidden one and that reaches the same subscriber, so when the sentinel arrives any
forbidden message would already have arrived before it.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import aiomqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from cloud.mqtt.share import share_group
from cloud.secretbox import KEY_BYTES, SecretBox
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import CertFiles, HarnessPKI

NODE_A = "default.node-a"
NODE_B = "default.node-b"
CLOUD_SHARE = "$share/baetyl-cloud/baetyl/v1/+/shadow/update"
TIMEOUT = 5.0
PROTOCOLS = [
    pytest.param(aiomqtt.ProtocolVersion.V311, id="mqtt311"),
    pytest.param(aiomqtt.ProtocolVersion.V5, id="mqtt5"),
]


def topic(nid: str, *parts: str) -> str:
    return "/".join(("baetyl", "v1", nid, *parts))


def up(nid: str) -> str:
    """A topic node `nid` may publish to (DESIGN §4: agent → cloud)."""
    return topic(nid, "cmd", "response")


def down(nid: str) -> str:
    """A topic node `nid` may receive on (cloud → agent)."""
    return topic(nid, "cmd", "request")


def token() -> str:
    return uuid.uuid4().hex


def granted(codes: Sequence[ReasonCode] | Sequence[int]) -> list[int]:
    """SUBACK codes as numbers: 0-2 = granted QoS, >= 0x80 = refused."""
    return [code.value if isinstance(code, ReasonCode) else code for code in codes]


async def next_message(client: aiomqtt.Client, *, timeout: float = TIMEOUT) -> aiomqtt.Message:
    async with asyncio.timeout(timeout):
        return await anext(aiter(client.messages))


async def receive_until(
    client: aiomqtt.Client, sentinel: bytes, *, timeout: float = TIMEOUT
) -> list[aiomqtt.Message]:
    """Every message received before the one whose payload is `sentinel`."""
    received: list[aiomqtt.Message] = []
    async with asyncio.timeout(timeout):
        async for message in client.messages:
            if message.payload == sentinel:
                return received
            received.append(message)
    raise AssertionError("the client stopped receiving before the sentinel arrived")


def summary(messages: Sequence[aiomqtt.Message]) -> list[tuple[str, object]]:
    return [(message.topic.value, message.payload) for message in messages]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_node_uses_its_own_topics_and_the_cloud_gets_reports_by_shared_subscription(
    mosquitto: MosquittoBroker, pki: HarnessPKI, protocol: aiomqtt.ProtocolVersion
) -> None:
    report = json.dumps({"state": {"reported": {"token": token()}}}).encode()
    delta = json.dumps({"state": {"apps": {"web": token()}}, "version": 2}).encode()
    async with (
        mosquitto.client(pki.cloud("r1"), protocol=protocol) as cloud,
        mosquitto.client(pki.node(NODE_A), protocol=protocol) as node,
    ):
        assert granted(await cloud.subscribe(CLOUD_SHARE, qos=1)) == [1]
        assert granted(await node.subscribe(topic(NODE_A, "#"), qos=1)) == [1]

        await node.publish(topic(NODE_A, "shadow", "update"), report, qos=1)
        received = await next_message(cloud)
        assert (received.topic.value, received.payload, received.qos) == (
            topic(NODE_A, "shadow", "update"),
            report,
            1,
        )

        await cloud.publish(topic(NODE_A, "shadow", "update", "delta"), delta, qos=1)
        received = await next_message(node)
        assert (received.topic.value, received.payload) == (
            topic(NODE_A, "shadow", "update", "delta"),
            delta,
        )


async def test_shared_subscription_splits_reports_between_replicas_without_loss_or_duplicates(
    mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    tok = token()
    reports = [f"{tok}-{index}".encode() for index in range(10)]
    sentinel = f"{tok}-sentinel".encode()
    sentinel_topic = f"baetyl/test/{tok}"
    async with (
        mosquitto.client(pki.cloud("r1")) as r1,
        mosquitto.client(pki.cloud("r2")) as r2,
        mosquitto.client(pki.node(NODE_A)) as node,
    ):
        for replica in (r1, r2):
            await replica.subscribe([(CLOUD_SHARE, 1), (sentinel_topic, 1)])
        for report in reports:
            await node.publish(topic(NODE_A, "shadow", "update"), report, qos=1)
        # Both replicas get the sentinel: they subscribed to its topic plainly, not shared.
        await r1.publish(sentinel_topic, sentinel, qos=1)
        got = [message.payload for message in await receive_until(r1, sentinel)]
        got += [message.payload for message in await receive_until(r2, sentinel)]
    assert sorted(got) == sorted(reports)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_node_cannot_publish_into_another_nodes_topics(
    mosquitto: MosquittoBroker, pki: HarnessPKI, protocol: aiomqtt.ProtocolVersion
) -> None:
    tok = token()
    target = down(NODE_B)
    sentinel = f"sentinel {tok}".encode()
    async with (
        mosquitto.client(pki.cloud("r1"), protocol=protocol) as cloud,
        mosquitto.client(pki.node(NODE_A), protocol=protocol) as node_a,
        mosquitto.client(pki.node(NODE_B), protocol=protocol) as node_b,
    ):
        await node_b.subscribe(topic(NODE_B, "#"), qos=1)
        # Awaiting the PUBACK means the broker has handled (and, we expect, dropped) the message.
        await node_a.publish(target, f"forged by A {tok}".encode(), qos=1)
        await cloud.publish(target, sentinel, qos=1)
        assert summary(await receive_until(node_b, sentinel)) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_node_cannot_subscribe_to_another_nodes_topics(
    mosquitto: MosquittoBroker, pki: HarnessPKI, protocol: aiomqtt.ProtocolVersion
) -> None:
    tok = token()
    sentinel = f"sentinel {tok}".encode()
    async with (
        mosquitto.client(pki.cloud("r1"), protocol=protocol) as cloud,
        mosquitto.client(pki.node(NODE_A), protocol=protocol) as node_a,
    ):
        foreign_filters = [topic(NODE_B, "#"), "baetyl/v1/+/test/#", "#"]
        codes = granted(await node_a.subscribe([(pattern, 1) for pattern in foreign_filters]))
        # Mosquitto 2.0.11 grants every SUBSCRIBE and filters at delivery; a refusal is fine too.
        assert all(code in (1, 0x80, 0x87) for code in codes), codes
        assert granted(await node_a.subscribe(down(NODE_A), qos=1)) == [1]

        await cloud.publish(down(NODE_B), f"for B only {tok}".encode(), qos=1)
        await cloud.publish(down(NODE_A), sentinel, qos=1)
        assert summary(await receive_until(node_a, sentinel)) == []


async def test_node_claiming_another_nodes_client_id_neither_kicks_it_off_nor_acts_as_it(
    mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    tok = token()
    own, forged, ping = (f"{kind} {tok}".encode() for kind in ("own", "forged", "ping"))
    async with (
        mosquitto.client(pki.cloud("r1")) as cloud,
        mosquitto.client(pki.node(NODE_A), identifier=NODE_A) as node_a,
    ):
        await cloud.subscribe([(up(NODE_A), 1), (up(NODE_B), 1)])
        async with mosquitto.client(pki.node(NODE_B), identifier=NODE_A) as node_b:
            await node_b.publish(up(NODE_B), own, qos=1)
            await node_b.publish(up(NODE_A), forged, qos=1)
            # Node A is still connected: its publish reaches the cloud, after B's own message only.
            await node_a.publish(up(NODE_A), ping, qos=1)
            assert summary(await receive_until(cloud, ping)) == [(up(NODE_B), own)]


@pytest.mark.parametrize(
    ("certificate", "logged"),
    [
        (lambda pki: None, "peer did not return a certificate"),
        (lambda pki: pki.foreign(NODE_A), "certificate verify failed"),
    ],
    ids=["no certificate", "another CA's certificate"],
)
async def test_a_client_without_a_certificate_of_our_ca_is_refused(
    mosquitto: MosquittoBroker,
    pki: HarnessPKI,
    certificate: Callable[[HarnessPKI], CertFiles | None],
    logged: str,
) -> None:
    log_size = mosquitto.log_file.stat().st_size
    with pytest.raises(aiomqtt.MqttError):  # aiomqtt reports the TLS refusal as a timeout
        async with mosquitto.client(certificate(pki), timeout=1):
            pass
    await _assert_broker_logged(mosquitto, log_size, logged)
    await _assert_broker_serves(mosquitto, pki)


@asynccontextmanager
async def cloud_and_node(
    mosquitto: MosquittoBroker, pki: HarnessPKI, nid: str
) -> AsyncIterator[tuple[aiomqtt.Client, aiomqtt.Client]]:
    """The cloud subscribed to both directions of `nid`'s topics, the node to its down topic."""
    async with (
        mosquitto.client(pki.cloud("r1")) as cloud,
        mosquitto.client(pki.node(nid)) as node,
    ):
        await cloud.subscribe([(up(nid), 1), (down(nid), 1)])
        await node.subscribe(down(nid), qos=1)
        yield cloud, node


async def test_denied_node_can_no_longer_publish_or_receive(
    mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    tok = token()
    # A nid of its own: a deny left behind by a failure harms no other test.
    nid = f"default.deleted-{tok[:8]}"
    before, hello, after, to_node, ping, again = (
        f"{kind} {tok}".encode()
        for kind in ("before", "hello", "after", "to-node", "ping", "again")
    )
    try:
        async with cloud_and_node(mosquitto, pki, nid) as (cloud, node):
            # Both directions work before the deny, so what follows is the deny list's doing.
            await node.publish(up(nid), before, qos=1)
            assert (await next_message(cloud)).payload == before
            await cloud.publish(down(nid), hello, qos=1)
            assert (await next_message(node)).payload == hello
            assert (await next_message(cloud)).payload == hello  # the cloud's own copy

            mosquitto.set_denied([nid])  # the existing connection is affected, no reconnect needed
            await node.publish(up(nid), after, qos=1)
            await cloud.publish(down(nid), to_node, qos=1)  # the cloud's own copy is the sentinel
            assert summary(await receive_until(cloud, to_node)) == []
            # The broker sends the PUBACK of this publish after anything it delivers for `to_node`
            # and `ping`, so once it is awaited the node's queue would hold them.
            await node.publish(up(nid), ping, qos=1)
            assert len(node.messages) == 0

            # Lifting the deny works on the same connection; `ping` (denied) never shows up first.
            mosquitto.set_denied([])
            await node.publish(up(nid), again, qos=1)
            assert (await next_message(cloud)).payload == again
    finally:
        mosquitto.set_denied([])


async def test_denied_node_that_reconnects_still_gets_nothing_through(
    mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    tok = token()
    nid = f"default.deleted-{tok[:8]}"
    mosquitto.set_denied([nid])
    try:
        async with cloud_and_node(mosquitto, pki, nid) as (cloud, node):
            await node.publish(up(nid), f"from denied {tok}".encode(), qos=1)
            sentinel = f"sentinel {tok}".encode()
            await cloud.publish(down(nid), sentinel, qos=1)
            assert summary(await receive_until(cloud, sentinel)) == []
            await node.publish(up(nid), f"ping {tok}".encode(), qos=1)
            assert len(node.messages) == 0
    finally:
        mosquitto.set_denied([])


@pytest.mark.parametrize(("writer", "reader"), [("r1", "r2"), ("r2", "r1")])
async def test_each_cloud_replica_reads_and_writes_every_topic(
    mosquitto: MosquittoBroker, pki: HarnessPKI, writer: str, reader: str
) -> None:
    tok = token()
    topics = [
        topic(NODE_A, "test", tok),
        topic(NODE_B, "test", tok, "deeper"),
        f"baetyl/cloud/{tok}",
        f"elsewhere/{tok}",
    ]
    sentinel = f"sentinel {tok}".encode()
    async with (
        mosquitto.client(pki.cloud(writer)) as cloud_writer,
        mosquitto.client(pki.cloud(reader)) as cloud_reader,
    ):
        await cloud_reader.subscribe("#", qos=1)
        for name in topics:
            await cloud_writer.publish(name, name.encode(), qos=1)
        await cloud_writer.publish(f"elsewhere/{tok}/sentinel", sentinel, qos=1)
        received = await receive_until(cloud_reader, sentinel)
    # `#` also brings retained messages other tests may have left: look at this test's topics only.
    mine = [(name, payload) for name, payload in summary(received) if tok in name]
    assert mine == [(name, name.encode()) for name in topics]


async def test_node_cannot_take_reports_away_from_the_cloud_share_group(
    mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    """Mosquitto never checks SUBSCRIBE, so the group name is the protection (decision #73): a
    node joining the old fixed group `baetyl-cloud` shares nothing with a cloud whose group is
    derived from its secret.key, and every report reaches the cloud."""
    tok = token()
    group = share_group(SecretBox(os.urandom(KEY_BYTES)))
    cloud_share = f"$share/{group}/baetyl/v1/+/shadow/update"
    reports = [f"{tok}-{index}".encode() for index in range(30)]
    sentinel = f"{tok}-sentinel".encode()
    async with (
        mosquitto.client(pki.cloud("r1")) as cloud,
        mosquitto.client(pki.node(NODE_A)) as intruder,
        mosquitto.client(pki.node(NODE_B)) as node_b,
    ):
        await cloud.subscribe([(cloud_share, 1), (up(NODE_B), 1)])
        await intruder.subscribe(CLOUD_SHARE, qos=1)
        for report in reports:
            await node_b.publish(topic(NODE_B, "shadow", "update"), report, qos=1)
        await node_b.publish(up(NODE_B), sentinel, qos=1)
        got = [message.payload for message in await receive_until(cloud, sentinel)]
    assert got == reports


async def _assert_broker_logged(mosquitto: MosquittoBroker, offset: int, text: str) -> None:
    """The broker's log, from `offset`, shows `text` (the refusal was the broker's TLS check)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            with mosquitto.log_file.open("rb") as log:
                log.seek(offset)
                if text.encode() in log.read():
                    return
            await asyncio.sleep(0.02)


async def _assert_broker_serves(mosquitto: MosquittoBroker, pki: HarnessPKI) -> None:
    """A valid client still connects: the refusal was policy, not an unreachable broker."""
    async with mosquitto.client(pki.node(NODE_A)) as node:
        assert granted(await node.subscribe(down(NODE_A), qos=1)) == [1]
