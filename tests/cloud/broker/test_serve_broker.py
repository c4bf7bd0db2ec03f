"""`baetyl-cloud broker` with a replica started apart (`serve --mqtt-url`), as on Kubernetes:
real processes sharing one database, the replica's certificate from the shared CA.

The broker lets the listed replica in with full access and no other cloud user; a node deleted
through the replica is shut out by the broker, which only reads the database: its certificate is
refused at the handshake within the sync interval.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import aiomqtt
import pytest

from agent.contracts import topics
from agent.contracts.topics import Channel
from agent.init import keys
from cloud.broker.pki_files import ensure_replica_certificate
from cloud.kube_manifest import load_keys
from cloud.pki.ca import CertificateAuthority
from tests.harness.cloud_process import ReplicaSpec, running_replica
from tests.harness.common import free_port, reachable_dir
from tests.harness.pki import CertFiles
from tools.kit.cloud import BAETYL_CLOUD
from tools.kit.procs import stop_child
from tools.kit.waiting import eventually

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(120)]
SYNC = 0.5
SERVING = "baetyl-cloud broker serving"


@dataclass
class Broker:
    """A running `baetyl-cloud broker`: its port, log and the keys it shares."""

    port: int
    keys: Path
    log_file: Path
    process: asyncio.subprocess.Process

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def tls(self, cert: Path, key: Path) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.keys / "ca.pem"))
        context.load_cert_chain(cert, key)
        return context


@pytest.fixture
def root() -> Iterator[Path]:
    """A directory the broker's account can pass through (not pytest's tmp_path)."""
    with reachable_dir("baetyl-serve-broker-") as directory:
        yield directory


def shared_data_dir(keys: Path, directory: Path) -> Path:
    """A data directory holding the shared CA and secret key, as the manifests mount them."""
    (directory / "pki").mkdir(parents=True, mode=0o700)
    for name in ("ca.pem", "ca.key"):
        shutil.copy2(keys / name, directory / "pki" / name)
    shutil.copy2(keys / "secret.key", directory / "secret.key")
    return directory


@pytest.fixture
async def broker(root: Path) -> AsyncIterator[Broker]:
    keys = root / "keys"
    load_keys(keys, ["r1"])
    port = free_port()
    log_file = root / "broker.log"
    with log_file.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            BAETYL_CLOUD, "broker",
            "--data-dir", str(shared_data_dir(keys, root / "broker")),
            "--db", f"sqlite://{root / 'shared.db'}",
            "--listen", f"127.0.0.1:{port}",
            "--replica", "r1",
            "--sync-interval", str(SYNC),
            stdout=log,
            stderr=log,
        )  # fmt: skip
    running = Broker(port, keys, log_file, process)
    try:
        await eventually(
            lambda: SERVING in running.log(),
            limit=30,
            what="the broker serving",
            alive=lambda: process.returncode is None,
            detail=running.log,
        )
        yield running
    finally:
        await stop_child(process, grace=10)


async def answered(client: aiomqtt.Client, nid: str, token: str) -> list[str] | None:
    """The topics `client` received until a cloud replica answered its `shadow/get`; None
    when no answer came within 5 s."""
    await client.publish(
        topics.build(nid, Channel.SHADOW_GET), json.dumps({"clientToken": token}), qos=1
    )
    seen: list[str] = []
    try:
        async with asyncio.timeout(5):
            async for message in client.messages:
                seen.append(str(message.topic))
                assert isinstance(message.payload, bytes)
                if json.loads(message.payload).get("clientToken") == token:
                    return seen
    except TimeoutError:
        return None
    return None


async def lets_in(broker: Broker, tls: ssl.SSLContext) -> bool:
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port, timeout=3, tls_context=tls):
            return True
    except aiomqtt.MqttError:
        return False


async def test_a_replica_started_apart_serves_nodes_and_its_deletes_reach_the_broker(
    broker: Broker, root: Path
) -> None:
    spec = ReplicaSpec(
        replica="r1",
        data_dir=shared_data_dir(broker.keys, root / "r1"),
        db_url=f"sqlite://{root / 'shared.db'}",
        broker=f"mqtts://127.0.0.1:{broker.port}",
        ca_file=broker.keys / "ca.pem",
        cert=CertFiles(
            "baetyl-cloud:r1", broker.keys / "cloud-r1.pem", broker.keys / "cloud-r1.key"
        ),
        log_file=root / "r1.log",
    )
    async with running_replica(spec) as cloud, aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {cloud.admin_token}"}
        async with session.post(
            f"{cloud.url}/v1/nodes", json={"name": "edge"}, headers=headers
        ) as answer:
            assert answer.status == 200, await answer.text()
        async with session.get(f"{cloud.url}/v1/nodes/edge/init", headers=headers) as answer:
            command = (await answer.json())["cmd"]
        token = command.split("token=")[1].split("'")[0]
        key = keys.new_key()
        body = {"token": token, "csr": keys.csr_pem(key, "default.edge")}
        async with session.post(f"{cloud.url}/v1/active", json=body) as answer:
            assert answer.status == 200, await answer.text()
            certificate = (await answer.json())["certificate"]
        (root / "node.pem").write_text(certificate, encoding="ascii")
        (root / "node.key").write_bytes(keys.key_pem(key))
        node_tls = broker.tls(root / "node.pem", root / "node.key")
        nid = "default.edge"

        # The listed replica is in the ACL: it answers the node through the broker.
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, timeout=5, tls_context=node_tls
        ) as node:
            await node.subscribe(topics.build(nid, Channel.SHADOW_GET_ACCEPTED), qos=1)
            await node.subscribe(topics.build(nid, Channel.SHADOW_UPDATE_DELTA), qos=1)
            assert await answered(node, nid, "first") == [
                topics.build(nid, Channel.SHADOW_GET_ACCEPTED)
            ]
            # A cloud user the broker was not told about gets nothing: its delta never arrives.
            ca = CertificateAuthority.load(
                (broker.keys / "ca.pem").read_bytes(), (broker.keys / "ca.key").read_bytes()
            )
            stranger = ensure_replica_certificate(root / "stranger", ca, "r2")
            async with aiomqtt.Client(
                "127.0.0.1", broker.port, timeout=5, tls_context=broker.tls(*stranger)
            ) as fake:
                await fake.publish(
                    topics.build(nid, Channel.SHADOW_UPDATE_DELTA), b'{"state":{}}', qos=1
                )
            # Published before the node asked again: had it been let through, it came first.
            assert await answered(node, nid, "second") == [
                topics.build(nid, Channel.SHADOW_GET_ACCEPTED)
            ]

        # Deleted through the replica, the node is refused by the broker at the handshake.
        assert await lets_in(broker, node_tls)
        async with session.delete(f"{cloud.url}/v1/nodes/edge", headers=headers) as answer:
            assert answer.status == 200, await answer.text()
        await eventually(
            lambda: _refused(broker, node_tls),
            limit=10 + 4 * SYNC,
            what="the deleted node refused",
            detail=broker.log,
        )
        assert "default.edge" in (root / "broker" / "mosquitto" / "acl").read_text()


async def _refused(broker: Broker, tls: ssl.SSLContext) -> bool:
    return not await lets_in(broker, tls)
