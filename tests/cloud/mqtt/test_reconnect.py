"""The managed broker dies: the supervisor restarts it, the cloud's bridge and the agents
reconnect, and a change made afterwards still reaches the node at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
from pathlib import Path

import aiomqtt

from agent.contracts import topics
from agent.contracts.topics import Channel
from cloud.broker.managed import ManagedBroker
from cloud.pki.ca import CertificateAuthority, write_certificate_files
from tests.harness.cloud import start_cloud

NID = "default.edge-1"


def node_tls(data_dir: Path) -> ssl.SSLContext:
    pki = data_dir / "pki"
    ca = CertificateAuthority.load((pki / "ca.pem").read_bytes(), (pki / "ca.key").read_bytes())
    cert, key = write_certificate_files(data_dir.parent / "nodes", NID, ca.issue_client(NID))
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.pem"))
    context.load_cert_chain(cert, key)
    return context


async def connected_agent(broker: ManagedBroker, context: ssl.SSLContext) -> aiomqtt.Client:
    """An agent connection, retried while the broker comes back (bounded)."""
    settings = broker.mqtt_settings()
    async with asyncio.timeout(30):
        while True:
            client = aiomqtt.Client(settings.host, settings.port, timeout=3, tls_context=context)
            try:
                await client.__aenter__()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)
                continue
            for topic in topics.agent_subscriptions(NID):
                await client.subscribe(topic, qos=1)
            return client


async def next_delta(client: aiomqtt.Client) -> dict[str, object]:
    async with asyncio.timeout(15):
        async for message in client.messages:
            if topics.parse(message.topic.value).channel is Channel.SHADOW_UPDATE_DELTA:
                assert isinstance(message.payload, bytes)
                return dict(json.loads(message.payload))
    raise AssertionError("message stream ended")


async def test_after_a_broker_crash_deltas_still_reach_the_node(
    managed_broker: ManagedBroker, managed_data_dir: Path
) -> None:
    broker, data_dir = managed_broker, managed_data_dir
    settings = broker.mqtt_settings()
    runner, cloud = await start_cloud(data_dir.parent / "rest", None, mqtt=settings)
    agent = None
    try:
        await cloud.ok("POST", "/v1/nodes", {"name": "edge-1", "labels": {"role": "gateway"}})
        context = node_tls(data_dir)
        agent = await connected_agent(broker, context)

        old_pid = broker.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        async with asyncio.timeout(30):
            while broker.restarts < 1 or broker.pid in (None, old_pid):
                await asyncio.sleep(0.1)
        with contextlib.suppress(aiomqtt.MqttError):  # its connection died with the broker
            await agent.__aexit__(None, None, None)
        agent = await connected_agent(broker, context)

        app = {
            "name": "after-crash",
            "mode": "native",
            "selector": "role=gateway",
            "services": [{"name": "main", "command": ["sleep", "infinity"]}],
        }
        created = await cloud.ok("POST", "/v1/apps", app)
        delta = await next_delta(agent)
        assert delta["state"] == {}  # nothing reported lacks it, but desired holds it (#124)
        assert delta["desired"]["apps"] == {"after-crash": created["version"]}
        node = await cloud.ok("GET", "/v1/nodes/edge-1")
        assert {"name": "after-crash", "version": created["version"]} in node["desire"]["apps"]
    finally:
        if agent is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await agent.__aexit__(None, None, None)
        await cloud.session.close()
        await runner.cleanup()
