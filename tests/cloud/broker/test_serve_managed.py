"""`baetyl-cloud serve` with its managed broker, as real processes: what nodes cannot do to it.

Each test starts its own cloud process and broker on a data directory of its own; node clients are
real aiomqtt clients with certificates signed by that cloud's CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import aiomqtt
import pytest

from agent.contracts import topics
from agent.contracts.topics import Channel
from cloud.pki.ca import CertificateAuthority, write_certificate_files
from tests.harness.cloud_process import ManagedCloud, start_managed, stop_managed

TIMEOUT = 15.0
OLD_FIXED_GROUP = "baetyl-cloud"
REQUEST_CHANNELS = (
    Channel.SHADOW_GET,
    Channel.SHADOW_UPDATE,
    Channel.RESOURCES_GET,
    Channel.CERT_RENEW,
)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data dir whose parent the broker's account can pass through (not pytest's tmp_path)."""
    directory = Path(tempfile.mkdtemp(prefix="baetyl-serve-managed-"))
    directory.chmod(0o711)
    try:
        yield directory / "cloud"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def cloud(data_dir: Path) -> AsyncIterator[ManagedCloud]:
    running = await start_managed(data_dir)
    try:
        yield running
    finally:
        await stop_managed(running)


def node_tls(data_dir: Path, nid: str) -> ssl.SSLContext:
    """A client TLS context with a certificate CN = `nid` from the cloud's CA."""
    pki = data_dir / "pki"
    ca = CertificateAuthority.load((pki / "ca.pem").read_bytes(), (pki / "ca.key").read_bytes())
    cert, key = write_certificate_files(
        data_dir.parent / "nodes", f"{nid}-{uuid.uuid4().hex[:6]}", ca.issue_client(nid)
    )
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.pem"))
    context.load_cert_chain(cert, key)
    return context


def node_client(cloud: ManagedCloud, nid: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1", cloud.mqtt_port, timeout=5, tls_context=node_tls(cloud.data_dir, nid)
    )


async def create_node(cloud: ManagedCloud, name: str) -> str:
    headers = {"Authorization": f"Bearer {cloud.admin_token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.post(f"{cloud.url}/v1/nodes", json={"name": name, "labels": {}}) as answer,
    ):
        assert answer.status == 200, await answer.text()
    return f"default.{name}"


async def test_a_node_in_the_old_fixed_share_group_takes_no_request_away_from_the_cloud(
    cloud: ManagedCloud,
) -> None:
    """Decision #73: the group is derived from secret.key; guessing `baetyl-cloud` gets nothing."""
    intruder_nid = await create_node(cloud, f"intruder-{uuid.uuid4().hex[:6]}")
    victim_nid = await create_node(cloud, f"victim-{uuid.uuid4().hex[:6]}")
    requests = 30
    async with (
        node_client(cloud, intruder_nid) as intruder,
        node_client(cloud, victim_nid) as victim,
    ):
        guessed = [
            (f"$share/{OLD_FIXED_GROUP}/baetyl/v1/+/{channel.value}", 1)
            for channel in REQUEST_CHANNELS
        ]
        await intruder.subscribe(guessed)
        # Rejected answers count too (more than 20 requests a second are refused with 429): any
        # answer proves the cloud, not the intruder, received the request.
        answers = (Channel.SHADOW_GET_ACCEPTED, Channel.SHADOW_GET_REJECTED)
        await victim.subscribe([(topics.build(victim_nid, channel), 1) for channel in answers])
        tokens = [f"t{index}" for index in range(requests)]
        for token in tokens:
            payload = json.dumps({"clientToken": token})
            await victim.publish(topics.build(victim_nid, Channel.SHADOW_GET), payload, qos=1)
        answered = await collect_tokens(victim, requests)
    assert sorted(answered) == sorted(tokens), f"{len(answered)} of {requests} answered"


async def collect_tokens(client: aiomqtt.Client, count: int) -> list[str]:
    """The `clientToken`s of the answers received, until `count` arrived or TIMEOUT passed."""
    answered: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(TIMEOUT):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                answered.append(json.loads(message.payload)["clientToken"])
                if len(answered) == count:
                    break
    return answered
