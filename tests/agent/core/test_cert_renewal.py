"""Certificate rotation end to end: baetyl-core renews a short-lived certificate over MQTT.

The real cloud signs with the harness CA (the one the session Mosquitto trusts); the node starts
with a 30 s certificate from that CA, renews it once 2/3 of its lifetime has passed, reconnects
with the new one and keeps its app processes running throughout.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.core.app import Core
from agent.core.config import CoreConfig, load_config
from agent.core.sync import renewal
from cloud.services import node_certs
from cloud.settings import MqttSettings
from tests.agent.core.agent_kit import (
    SLEEPER,
    app_body,
    app_running,
    python_service,
    remove_left_apps,
    write_core_config,
)
from tests.cloud.mqtt.conftest import running_cloud
from tests.harness.cloud import CloudServer
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import CertFiles, HarnessPKI
from tools.kit.waiting import eventually

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(90)]

LIFETIME = 30.0
BACKDATE = 12.0  # so 2/3 of the lifetime is reached 8 s after the test starts


def short_lived_cert(
    pki: HarnessPKI, nid: str, directory: Path, *, not_before: float, not_after: float
) -> CertFiles:
    """A node certificate from the harness CA with second-exact validity (the CA rounds to days)."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = serialization.load_pem_private_key(pki.ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, nid)]))
        .issuer_name(pki.ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime.fromtimestamp(not_before, datetime.UTC))
        .not_valid_after(datetime.datetime.fromtimestamp(not_after, datetime.UTC))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "client.pem", directory / "client.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return CertFiles(nid, cert_file, key_file)


@asynccontextmanager
async def running(config: CoreConfig) -> AsyncIterator[Core]:
    """baetyl-core in this loop; its apps are removed afterwards (they outlive the agent)."""
    core = Core(config)
    stop = asyncio.Event()
    task = asyncio.create_task(core.run_until(stop), name="core-under-test")
    try:
        yield core
    finally:
        stop.set()
        await task
        await remove_left_apps(config)


async def test_the_node_renews_at_two_thirds_reconnects_and_keeps_its_apps_running(
    cloud: CloudServer, mosquitto: MosquittoBroker, pki: HarnessPKI, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    name = f"n-{uuid.uuid4().hex[:10]}"
    nid = f"default.{name}"
    await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": {"run": run}})
    app = await cloud.ok(
        "POST", "/v1/apps", app_body(f"keep-{run}", f"run={run}", python_service(SLEEPER))
    )
    started = time.time()
    files = short_lived_cert(
        pki,
        nid,
        tmp_path / "node",
        not_before=started - BACKDATE,
        not_after=started - BACKDATE + LIFETIME,
    )
    old = renewal.read_lifetime(files.cert_file)
    path = write_core_config(
        tmp_path / nid, nid, mosquitto=mosquitto, pki=pki, api=True, cert=files
    )
    config = load_config(path)

    async with running(config) as core:
        before = await eventually(
            lambda: app_running(cloud, name, app["name"], app["version"]), what="app running"
        )
        pids = {instance["pid"] for instance in before["instances"].values()}
        connects = core.sync.link.connects
        assert core.sync.cert_renewal.renewals == 0
        assert time.time() < old.renew_at, "the test setup was too slow to see the wait"

        await eventually(
            lambda: _true(core.sync.cert_renewal.renewals == 1),
            limit=LIFETIME,
            what="the certificate renewed",
        )
        new = renewal.read_lifetime(files.cert_file)
        assert new.serial != old.serial
        assert files.key_file.stat().st_mode & 0o777 == 0o600
        assert not list(files.cert_file.parent.glob("*.next"))
        # The pair on disk belongs together, from a CA the broker trusts, for this node.
        pki.ssl_context(files)
        renewal.check_issued(
            files.cert_file.read_bytes(), files.key_file.read_bytes(), nid=nid, ca_file=pki.ca_file
        )
        records = await node_certs.of_node("default", name)
        assert [record.serial for record in records] == [format(new.serial, "x")]
        assert records[0].create_time.timestamp() >= old.renew_at - 1.0  # not before 2/3

        # Reconnected with the new certificate, and reporting again.
        await eventually(
            lambda: _true(core.sync.link.connects > connects and core.sync.link.up),
            what="reconnected",
        )
        reports = core.sync.reports_sent
        core.sync.report_soon()
        await eventually(lambda: _true(core.sync.reports_sent > reports), what="a report")

        # Once the old certificate has expired, a fresh connection still gets in.
        await asyncio.sleep(max(0.0, old.not_after - time.time() + 1.0))
        connects = core.sync.link.connects
        core.sync.link.reconnect()
        await eventually(
            lambda: _true(core.sync.link.connects > connects and core.sync.link.up),
            what="reconnected after the old certificate expired",
        )
        health = await _health(config)
        assert health["cloud"]["connected"] is True
        assert health["cloud"]["reports"] >= 1

        # The app was never touched, and nothing renews again until 2/3 of the new lifetime.
        after = await app_running(cloud, name, app["name"], app["version"])
        assert after is not None
        assert {instance["pid"] for instance in after["instances"].values()} == pids
        assert core.sync.cert_renewal.renewals == 1
        assert new.renew_at > time.time() + 3600


async def _true(value: bool) -> bool:
    return value


async def _health(config: CoreConfig) -> dict[str, Any]:
    address = config.api.address
    assert address is not None
    host, port = address
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{host}:{port}/health") as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_a_certificate_from_a_ca_the_node_does_not_trust_is_not_installed(
    mqtt_settings: MqttSettings, mosquitto: MosquittoBroker, pki: HarnessPKI, tmp_path: Path
) -> None:
    # This cloud signs with a CA of its own making: installing what it sends would cut the
    # node off, so the node keeps its certificate and tries again later.
    async with running_cloud(tmp_path / "cloud", None, mqtt_settings) as other_cloud:
        name = f"n-{uuid.uuid4().hex[:10]}"
        nid = f"default.{name}"
        await other_cloud.ok("POST", "/v1/nodes", {"name": name})
        now = time.time()
        files = short_lived_cert(
            pki, nid, tmp_path / "node", not_before=now - 60.0, not_after=now + 30.0
        )
        before = files.cert_file.read_bytes(), files.key_file.read_bytes()
        path = write_core_config(tmp_path / nid, nid, mosquitto=mosquitto, pki=pki, cert=files)
        async with running(load_config(path)) as core:
            await eventually(
                lambda: _true(core.sync.cert_renewal.failures >= 1), what="a failed renewal"
            )
            assert core.sync.cert_renewal.renewals == 0
            assert (files.cert_file.read_bytes(), files.key_file.read_bytes()) == before
            assert not list(files.cert_file.parent.glob("*.next"))
            assert core.sync.link.up
            assert core.sync.link.connects == 1
        # The cloud signed (and recorded) it; the node chose not to use it.
        assert len(await node_certs.of_node("default", name)) == 1
