"""Fixtures of the MQTT bridge tests: a real cloud bridged to the session Mosquitto, test agents.

Each test gets its own share group (so a cloud left over from another test can never take its
requests) and unique node names; a test agent is a real aiomqtt client with the node's certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from agent.contracts import topics
from agent.contracts.topics import Channel
from cloud.broker.managed import ManagedBroker
from cloud.pki.ca import CertificateAuthority
from cloud.settings import BridgeSettings, InstallSettings, ManagedBrokerSettings, MqttSettings
from tests.harness.cloud import CloudServer, start_cloud
from tests.harness.common import free_port, reachable_dir
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI

TIMEOUT = 10.0
Message = dict[str, Any]


class Agent:
    """A node's MQTT side for tests: publishes requests, collects answers in arrival order."""

    def __init__(self, nid: str, client: aiomqtt.Client) -> None:
        self.nid = nid
        self.client = client
        self._inbox: list[tuple[Channel, Message]] = []
        self._arrived = asyncio.Event()

    async def publish(
        self, channel: Channel, payload: Message | bytes | str, *, retain: bool = False
    ) -> None:
        """Publish on the node's own topic (QoS 1)."""
        data = json.dumps(payload) if isinstance(payload, dict) else payload
        await self.client.publish(topics.build(self.nid, channel), data, qos=1, retain=retain)

    async def next_of(
        self, channels: tuple[Channel, ...], timeout: float = TIMEOUT
    ) -> tuple[Channel, Message]:
        """The oldest unread message on one of `channels` (fails after `timeout`)."""
        async with asyncio.timeout(timeout):
            while True:
                for index, (channel, message) in enumerate(self._inbox):
                    if channel in channels:
                        del self._inbox[index]
                        return channel, message
                self._arrived.clear()
                await self._arrived.wait()

    async def next(self, channel: Channel, timeout: float = TIMEOUT) -> Message:
        """The next message on `channel` (fails after `timeout`)."""
        return (await self.next_of((channel,), timeout))[1]

    async def ask(
        self, channel: Channel, payload: Message | bytes | str, answers: tuple[Channel, ...]
    ) -> tuple[Channel, Message]:
        """Publish a request and wait for the first answer on one of `answers`."""
        await self.publish(channel, payload)
        return await self.next_of(answers)

    def pending(self, channel: Channel) -> int:
        """Messages received on `channel` and not yet taken."""
        return sum(1 for got, _ in self._inbox if got is channel)

    async def _read(self) -> None:
        async for message in self.client.messages:
            parsed = topics.parse(message.topic.value)
            assert isinstance(message.payload, bytes)
            self._inbox.append((parsed.channel, json.loads(message.payload)))
            self._arrived.set()


AgentFactory = Callable[..., AbstractAsyncContextManager[Agent]]


@pytest.fixture
def mqtt_settings(mosquitto: MosquittoBroker, pki: HarnessPKI) -> MqttSettings:
    """Bridge settings for the session broker, with a share group of this test alone."""
    cert = pki.cloud("r1")
    return MqttSettings(
        host=mosquitto.host,
        port=mosquitto.port,
        ca_file=pki.ca_file,
        cert_file=cert.cert_file,
        key_file=cert.key_file,
        bridge=BridgeSettings(replica="r1", keepalive=5, max_messages_per_second=50.0),
    )


@asynccontextmanager
async def running_cloud(
    data_dir: Path,
    db_url: str | None,
    settings: MqttSettings,
    *,
    command_timeout: float = 10.0,
    ca: CertificateAuthority | None = None,
    install: InstallSettings | None = None,
) -> AsyncIterator[CloudServer]:
    """A cloud with its MQTT bridge connected; stopped afterwards (`ca`, `install`: see
    start_cloud)."""
    runner, server = await start_cloud(
        data_dir, db_url, mqtt=settings, command_timeout=command_timeout, ca=ca, install=install
    )
    try:
        yield server
    finally:
        await server.session.close()
        await runner.cleanup()


@pytest.fixture
async def cloud(
    tmp_path: Path, cloud_db_url: str | None, mqtt_settings: MqttSettings
) -> AsyncIterator[CloudServer]:
    """A running cloud bridged to the session Mosquitto."""
    async with running_cloud(tmp_path / "cloud", cloud_db_url, mqtt_settings) as server:
        yield server


STRICT_RATE = 2.0  # messages a second per node: a flood exceeds it however slowly it is sent


@pytest.fixture
async def strict_cloud(
    tmp_path: Path, cloud_db_url: str | None, mqtt_settings: MqttSettings
) -> AsyncIterator[CloudServer]:
    """A running cloud whose per-node rate limit is `STRICT_RATE` messages a second.

    Rate-limit tests flood it: at 2 a second, 150 messages get 429s even when a loaded machine
    takes a minute to send them, where the usual 50 a second needs them sent within 3 s.
    """
    bridge = dataclasses.replace(mqtt_settings.bridge, max_messages_per_second=STRICT_RATE)
    settings = dataclasses.replace(mqtt_settings, bridge=bridge)
    async with running_cloud(tmp_path / "cloud", cloud_db_url, settings) as server:
        yield server


@pytest.fixture
def agent(mosquitto: MosquittoBroker, pki: HarnessPKI) -> AgentFactory:
    """`async with agent(nid) as a:` — a connected, subscribed test agent for node `nid`."""

    @asynccontextmanager
    async def connect(nid: str, *, will: bool = False) -> AsyncIterator[Agent]:
        client = mosquitto.client(pki.node(nid))
        if will:
            client = aiomqtt.Client(
                mosquitto.host,
                mosquitto.port,
                protocol=aiomqtt.ProtocolVersion.V311,
                timeout=5,
                keepalive=5,
                tls_context=pki.ssl_context(pki.node(nid)),
                will=aiomqtt.Will(
                    topics.build(nid, Channel.PRESENCE), b'{"online":false}', qos=1, retain=True
                ),
            )
        async with client:
            for topic in topics.agent_subscriptions(nid):
                await client.subscribe(topic, qos=1)
            test_agent = Agent(nid, client)
            reader = asyncio.create_task(test_agent._read(), name=f"test-agent-{nid}")
            try:
                yield test_agent
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await reader

    return connect


def unique(prefix: str = "n") -> str:
    """A node name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def make_node(cloud: CloudServer, labels: dict[str, str] | None = None) -> str:
    """Create a node through the REST API; returns its nid."""
    name = unique()
    await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": labels or {}})
    return f"default.{name}"


async def labelled_node(cloud: CloudServer) -> tuple[str, str]:
    """A node with a `role` label of its own, so that an app can select it alone: (label, nid)."""
    label = unique("role")
    return label, await make_node(cloud, {"role": label})


def native_app(name: str, selector: str, **extra: Any) -> dict[str, Any]:
    """A minimal native app body for `POST /v1/apps`."""
    return {
        "name": name,
        "mode": "native",
        "selector": selector,
        "services": [{"name": "main", "command": ["sleep", "infinity"]}],
        **extra,
    }


@pytest.fixture
def managed_data_dir() -> Iterator[Path]:
    """A broker data dir whose parent the broker's account can pass through (not tmp_path)."""
    with reachable_dir("baetyl-managed-") as directory:
        (directory / "cloud").mkdir(mode=0o700)
        yield directory / "cloud"


@pytest.fixture
async def managed_broker(managed_data_dir: Path) -> AsyncIterator[ManagedBroker]:
    """A managed Mosquitto of this test alone (its own CA, port and files)."""
    async with ManagedBroker(
        data_dir=managed_data_dir, settings=ManagedBrokerSettings(port=free_port())
    ) as running:
        yield running
