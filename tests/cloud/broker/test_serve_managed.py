"""`baetyl-cloud serve` with its managed broker, as real processes: what nodes cannot do to it.

Each test starts its own cloud process and broker on a data directory of its own; node clients are
real aiomqtt clients with certificates signed by that cloud's CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest

from agent.contracts import topics
from agent.contracts.topics import Channel
from agent.init import keys
from cloud.pki.ca import CertificateAuthority, write_certificate_files
from tests.harness.cloud_process import ManagedCloud, start_managed, stop_managed
from tests.harness.common import reachable_dir

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
    with reachable_dir("baetyl-serve-managed-") as directory:
        yield directory / "cloud"


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


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped by its parent, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_gone(pid: int, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while alive(pid):
            await asyncio.sleep(0.02)


async def broker_pid(cloud: ManagedCloud) -> int:
    async with asyncio.timeout(TIMEOUT):
        while not cloud.broker_pid_file.exists():
            await asyncio.sleep(0.02)
    return int(cloud.broker_pid_file.read_text().strip())


async def test_the_broker_dies_with_a_killed_cloud_and_a_stale_one_is_replaced_on_start(
    data_dir: Path,
) -> None:
    first = await start_managed(data_dir)
    try:
        orphan = await broker_pid(first)
        first.process.kill()  # kill -9: the cloud runs no cleanup at all
        await first.process.wait()
        await wait_gone(orphan)  # the parent-death signal stopped it
    finally:
        await stop_managed(first)
        if alive(orphan):
            os.kill(orphan, signal.SIGKILL)

    # A stale broker of this data directory (as left by a cloud before this fix): the next start
    # must replace it, not fail on "Address already in use" while its probe reaches the stale one.
    config = data_dir / "mosquitto" / "mosquitto.conf"
    stale = await asyncio.create_subprocess_exec(
        shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(config)
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            while not (
                first.broker_pid_file.exists()
                and first.broker_pid_file.read_text().strip() == str(stale.pid)
            ):
                await asyncio.sleep(0.02)
        second = await start_managed(data_dir, mqtt_port=first.mqtt_port)
        try:
            assert await asyncio.wait_for(stale.wait(), TIMEOUT) is not None
            assert await broker_pid(second) != stale.pid
            await assert_acl_reloads_reach_the_broker(second)
        finally:
            await stop_managed(second)
    finally:
        if stale.returncode is None:
            stale.kill()
            await stale.wait()


async def assert_acl_reloads_reach_the_broker(cloud: ManagedCloud) -> None:
    """A node is answered, is deleted through REST, and its open connection gets nothing after."""
    nid = await create_node(cloud, f"n-{uuid.uuid4().hex[:6]}")
    async with node_client(cloud, nid) as node:
        answers = (Channel.SHADOW_GET_ACCEPTED, Channel.SHADOW_GET_REJECTED)
        await node.subscribe([(topics.build(nid, channel), 1) for channel in answers])
        assert await shadow_answered(node, nid, "before")
        await delete_node(cloud, nid)
        assert not await shadow_answered(node, nid, "after")


async def delete_node(cloud: ManagedCloud, nid: str) -> None:
    headers = {"Authorization": f"Bearer {cloud.admin_token}"}
    name = nid.split(".", 1)[1]
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.delete(f"{cloud.url}/v1/nodes/{name}") as answer,
    ):
        assert answer.status == 200, await answer.text()


_TOKEN = re.compile(r"token=([A-Za-z0-9_.-]+)")


async def rest(
    cloud: ManagedCloud, method: str, path: str, body: object = None, *, anonymous: bool = False
) -> tuple[int, Any]:
    headers = {} if anonymous else {"Authorization": f"Bearer {cloud.admin_token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.request(method, f"{cloud.url}{path}", json=body) as answer,
    ):
        return answer.status, await answer.json()


async def install_token(cloud: ManagedCloud, name: str) -> str:
    status, body = await rest(cloud, "GET", f"/v1/nodes/{name}/init")
    assert status == 200, body
    found = _TOKEN.search(body["cmd"])
    assert found, body
    return found.group(1)


async def activate(cloud: ManagedCloud, token: str, nid: str) -> ssl.SSLContext:
    """What baetyl-init does: a key, a CSR, `POST /v1/active`; the node's client TLS context."""
    key = keys.new_key()
    status, body = await rest(
        cloud, "POST", "/v1/active", {"token": token, "csr": keys.csr_pem(key, nid)}, anonymous=True
    )
    assert status == 200, body
    directory = Path(tempfile.mkdtemp(dir=cloud.data_dir.parent))
    (directory / "node.pem").write_text(body["certificate"])
    (directory / "node.key").write_bytes(keys.key_pem(key))
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(cloud.data_dir / "pki" / "ca.pem")
    )
    context.load_cert_chain(directory / "node.pem", directory / "node.key")
    return context


async def shadow_answered(client: aiomqtt.Client, nid: str, token: str) -> bool:
    """Whether a `shadow/get` from `client` is answered (accepted or rejected) by the cloud."""
    await client.publish(
        topics.build(nid, Channel.SHADOW_GET), json.dumps({"clientToken": token}), qos=1
    )
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                if json.loads(message.payload).get("clientToken") == token:
                    return True
    return False


async def connection_closed(client: aiomqtt.Client) -> bool:
    """Whether the broker closes `client`'s connection within TIMEOUT (what it receives until
    then is discarded)."""
    try:
        async with asyncio.timeout(TIMEOUT):
            async for _ in client.messages:
                pass
    except aiomqtt.MqttError:
        return True
    except TimeoutError:
        return False
    return False


async def test_a_deleted_node_stays_out_when_a_node_of_its_name_is_created_again(
    cloud: ManagedCloud,
) -> None:
    """Decision #75: the old certificate is refused (CRL), the old connection is closed, and a
    token issued before the delete does not install the new node."""
    name = f"edge-{uuid.uuid4().hex[:6]}"
    nid = await create_node(cloud, name)
    old_tls = await activate(cloud, await install_token(cloud, name), nid)
    early_token = await install_token(cloud, name)  # issued before the delete, never used
    old = aiomqtt.Client("127.0.0.1", cloud.mqtt_port, timeout=5, tls_context=old_tls)
    async with old:
        answers = [(topics.build(nid, channel), 1) for channel in topics.Channel]
        await old.subscribe([(f, q) for f, q in answers if not f.endswith(("/update", "/get"))])
        assert await shadow_answered(old, nid, "before")

        status, body = await rest(cloud, "DELETE", f"/v1/nodes/{name}")
        assert status == 200, body
        assert nid == await create_node(cloud, name)

        # The old agent's connection, open through the delete and the re-creation, is closed:
        # it can neither ask nor be answered.
        assert await connection_closed(old)

    # Its certificate no longer connects (revoked, refused at the TLS handshake).
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", cloud.mqtt_port, timeout=3, tls_context=old_tls):
            pass
    # A token issued for the deleted node installs nothing now; a fresh one does.
    for method, path, body in (
        ("GET", f"/v1/active?token={early_token}", None),
        ("POST", "/v1/active", {"token": early_token, "csr": keys.csr_pem(keys.new_key(), nid)}),
    ):
        status, answer = await rest(cloud, method, path, body, anonymous=True)
        assert (status, answer["code"]) == (400, "ErrInvalidToken"), answer
        assert "earlier node" in answer["message"]
    new_tls = await activate(cloud, await install_token(cloud, name), nid)
    async with aiomqtt.Client("127.0.0.1", cloud.mqtt_port, timeout=5, tls_context=new_tls) as new:
        await new.subscribe(topics.build(nid, Channel.SHADOW_GET_ACCEPTED), qos=1)
        assert await shadow_answered(new, nid, "new")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def test_a_node_cannot_fill_the_brokers_memory_with_retained_messages(
    cloud: ManagedCloud,
) -> None:
    """Decisions #76 and #98. Before: 40 retained 5 MiB messages under `baetyl/v1/<nid>/…` grew
    the broker by 200 MiB. Now nodes publish on the six protocol topics only (ACL), at most
    320 KiB, and retain only a presence of at most 1 KiB (the node-limits plugin)."""
    pid = await broker_pid(cloud)
    nid = await create_node(cloud, f"attacker-{uuid.uuid4().hex[:6]}")
    payload = b"x" * (5 * 1024 * 1024)
    requests = [c for c in Channel if c.direction is topics.Direction.TO_CLOUD]
    before = rss_mib(pid)
    async with node_client(cloud, nid) as node:
        for index in range(40):
            await node.publish(f"baetyl/v1/{nid}/junk/{index}", payload, qos=1, retain=True)
        for channel in requests:
            await node.publish(topics.build(nid, channel), payload, qos=1, retain=True)
            await node.publish(topics.build(nid, channel), b"{}", qos=1, retain=True)
        grown = rss_mib(pid) - before
        assert grown < 50, f"the broker grew by {grown:.0f} MiB"
        # Once a later request is answered, the cloud has seen all the node sent before it:
        # the plugin refused every retained message, so the cloud had none to delete.
        await node.subscribe(topics.build(nid, Channel.SHADOW_GET_ACCEPTED), qos=1)
        assert await shadow_answered(node, nid, "after")
    assert "deleted a retained message a node left" not in cloud.log()
    broker_log = (cloud.data_dir / "mosquitto" / "mosquitto.log").read_text()
    assert "baetyl_node_limits: refused" in broker_log
