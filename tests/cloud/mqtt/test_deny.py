"""Deleting a node puts its nid on the managed broker's deny list (DESIGN §10: its certificate
may still be valid); creating it again takes it off. The list survives a cloud restart.

That Mosquitto enforces such an entry is proven in tests/cloud/broker; here the cloud's side."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt

from agent.contracts import topics
from agent.contracts.topics import Channel
from cloud.broker.managed import ManagedBroker
from cloud.pki.ca import CertificateAuthority, write_certificate_files
from tests.harness.cloud import CloudServer, start_cloud

DOOMED = "default.doomed"


def acl_of(data_dir: Path) -> str:
    return (data_dir / "mosquitto" / "acl").read_text()


@contextlib.asynccontextmanager
async def cloud_on(broker: ManagedBroker, data_dir: Path) -> AsyncIterator[CloudServer]:
    settings = broker.mqtt_settings()
    runner, cloud = await start_cloud(
        data_dir.parent / "rest", None, mqtt=settings, access_listeners=[broker.reload_acl]
    )
    try:
        yield cloud
    finally:
        await cloud.session.close()
        await runner.cleanup()


async def shadow_get_answered(broker: ManagedBroker, data_dir: Path, nid: str) -> str:
    """Connect as node `nid`, ask shadow/get, return the channel of the answer."""
    pki = data_dir / "pki"
    ca = CertificateAuthority.load((pki / "ca.pem").read_bytes(), (pki / "ca.key").read_bytes())
    cert, key = write_certificate_files(data_dir.parent / "nodes", nid, ca.issue_client(nid))
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.pem"))
    context.load_cert_chain(cert, key)
    settings = broker.mqtt_settings()
    async with aiomqtt.Client(settings.host, settings.port, timeout=5, tls_context=context) as node:
        for topic in topics.agent_subscriptions(nid):
            await node.subscribe(topic, qos=1)
        await node.publish(
            topics.build(nid, Channel.SHADOW_GET), json.dumps({"clientToken": "t1"}), qos=1
        )
        async with asyncio.timeout(10):
            async for message in node.messages:
                return topics.parse(message.topic.value).channel.value
    raise AssertionError("message stream ended")


async def test_delete_denies_the_node_and_recreating_it_readmits_it(
    managed_broker: ManagedBroker, managed_data_dir: Path
) -> None:
    broker, data_dir = managed_broker, managed_data_dir
    async with cloud_on(broker, data_dir) as cloud:
        await cloud.ok("POST", "/v1/nodes", {"name": "doomed"})
        assert f"user {DOOMED}" not in acl_of(data_dir)
        assert await shadow_get_answered(broker, data_dir, DOOMED) == "shadow/get/accepted"

        await cloud.ok("DELETE", "/v1/nodes/doomed")
        acl = acl_of(data_dir)
        assert f"user {DOOMED}\ntopic deny #" in acl

        await cloud.ok("POST", "/v1/nodes", {"name": "doomed"})
        assert f"user {DOOMED}" not in acl_of(data_dir)
        assert await shadow_get_answered(broker, data_dir, DOOMED) == "shadow/get/accepted"


async def test_the_deny_list_is_given_to_the_broker_again_when_the_cloud_starts(
    managed_broker: ManagedBroker, managed_data_dir: Path
) -> None:
    broker, data_dir = managed_broker, managed_data_dir
    async with cloud_on(broker, data_dir) as cloud:
        await cloud.ok("POST", "/v1/nodes", {"name": "doomed"})
        await cloud.ok("DELETE", "/v1/nodes/doomed")
    await broker.reload_acl([])  # as a freshly started broker would have it
    assert f"user {DOOMED}" not in acl_of(data_dir)
    async with cloud_on(broker, data_dir):
        assert f"user {DOOMED}" in acl_of(data_dir)


async def test_deleting_a_namespace_denies_all_its_nodes(
    managed_broker: ManagedBroker, managed_data_dir: Path
) -> None:
    async with cloud_on(managed_broker, managed_data_dir) as cloud:
        for name in ("n-1", "n-2"):
            await cloud.ok("POST", "/v1/nodes", {"name": name})
        await cloud.ok("DELETE", "/v1/namespace")
        acl = acl_of(managed_data_dir)
        assert "user default.n-1" in acl
        assert "user default.n-2" in acl
