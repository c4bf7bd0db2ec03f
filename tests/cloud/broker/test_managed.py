"""The managed broker against the real mosquitto binary: files, identities, restarts, shutdown."""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import ssl
import stat
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from cloud.broker import managed
from cloud.broker.managed import BrokerError, ManagedBroker
from cloud.broker.pki_files import ensure_cloud_pki
from cloud.pki.ca import CertificateAuthority, write_certificate_files
from cloud.settings import ManagedBrokerSettings
from tests.harness.common import free_port, reachable_dir


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are 0700, which a broker dropped to `mosquitto` (when
    # the tests run as root) could not pass through. The data dir's parent is searchable, like a
    # real one's; the data dir itself is created 0700 by the broker, as by `baetyl-cloud serve`.
    with reachable_dir("baetyl-managed-") as directory:
        (directory / "cloud").mkdir(mode=0o700)
        yield directory / "cloud"


def _broker(data_dir: Path, port: int) -> ManagedBroker:
    return ManagedBroker(data_dir=data_dir, settings=ManagedBrokerSettings(port=port))


@pytest.fixture
async def broker(data_dir: Path) -> AsyncIterator[ManagedBroker]:
    async with _broker(data_dir, free_port()) as running:
        yield running


def tls(ca_file: Path, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.load_cert_chain(cert_file, key_file)
    return context


def cloud_client(broker: ManagedBroker) -> aiomqtt.Client:
    settings = broker.mqtt_settings()
    return aiomqtt.Client(
        settings.host,
        settings.port,
        timeout=5,
        tls_context=tls(settings.ca_file, settings.cert_file, settings.key_file),
    )


def node_client(broker: ManagedBroker, data_dir: Path, nid: str) -> aiomqtt.Client:
    pki = data_dir / "pki"
    ca = CertificateAuthority.load((pki / "ca.pem").read_bytes(), (pki / "ca.key").read_bytes())
    cert, key = write_certificate_files(data_dir.parent / "nodes", nid, ca.issue_client(nid))
    settings = broker.mqtt_settings()
    return aiomqtt.Client(
        settings.host, settings.port, timeout=5, tls_context=tls(pki / "ca.pem", cert, key)
    )


async def next_topic(client: aiomqtt.Client) -> str:
    async with asyncio.timeout(5):
        async for message in client.messages:
            return message.topic.value
    raise AssertionError("message stream ended")


def fingerprint(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).fingerprint(hashes.SHA256())


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_first_start_creates_private_files_and_a_restart_keeps_the_ca(data_dir: Path) -> None:
    port = free_port()
    async with _broker(data_dir, port) as broker:
        first_pid = broker.pid
        pki = data_dir / "pki"
        names = {path.name for path in pki.iterdir()}
        assert {"ca.pem", "ca.key", "broker.pem", "broker.key"} <= names
        assert {"cloud-cloud-0.pem", "cloud-cloud-0.key"} <= names
        for key in pki.glob("*.key"):
            assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        for name in ("mosquitto.conf", "acl", "ca.pem", "server.pem", "server.key"):
            assert stat.S_IMODE((broker.directory / name).stat().st_mode) == 0o600, name
        config = (broker.directory / "mosquitto.conf").read_text()
        assert "max_queued_messages 100000" in config
        assert f"listener {port} 127.0.0.1" in config
        acl = (broker.directory / "acl").read_text()
        assert "user baetyl-cloud:cloud-0\ntopic readwrite #" in acl
        if os.geteuid() == 0:
            # The broker drops to `mosquitto`: it may pass through the data dir, not list it.
            assert stat.S_IMODE(data_dir.stat().st_mode) == 0o710
            assert broker.directory.stat().st_uid == pwd.getpwnam("mosquitto").pw_uid
        client_cert = x509.load_pem_x509_certificate(broker.mqtt_settings().cert_file.read_bytes())
        assert client_cert.subject.rfc4514_string() == "CN=baetyl-cloud:cloud-0"
        ca_print, broker_print = fingerprint(pki / "ca.pem"), fingerprint(pki / "broker.pem")
    assert first_pid is not None
    assert gone(first_pid)
    async with _broker(data_dir, port) as broker:
        assert fingerprint(pki / "ca.pem") == ca_print
        assert fingerprint(pki / "broker.pem") == broker_print
        async with cloud_client(broker) as client:
            await client.publish("ping", b"")


async def test_replica_certificate_may_publish_and_subscribe_anything(
    broker: ManagedBroker,
) -> None:
    async with cloud_client(broker) as cloud:
        await cloud.subscribe("#", qos=1)
        await cloud.publish("anything/at/all", b"x", qos=1)
        await cloud.publish("baetyl/v1/default.n1/shadow/update", b"y", qos=1)
        assert await next_topic(cloud) == "anything/at/all"
        assert await next_topic(cloud) == "baetyl/v1/default.n1/shadow/update"


async def test_node_certificate_is_confined_to_its_own_topics(
    broker: ManagedBroker, data_dir: Path
) -> None:
    async with (
        cloud_client(broker) as cloud,
        node_client(broker, data_dir, "default.n1") as node,
    ):
        await cloud.subscribe("baetyl/v1/#", qos=1)
        await node.subscribe("baetyl/v1/#", qos=1)
        # Forbidden publishes are dropped silently: the sentinel that follows proves they are gone.
        await node.publish("baetyl/v1/default.n2/shadow/update", b"forbidden", qos=1)
        await node.publish("baetyl/v1/default.n1/junk", b"not a protocol topic", qos=1)
        await node.publish("baetyl/v1/default.n1/shadow/update", b"sentinel", qos=1)
        assert await next_topic(cloud) == "baetyl/v1/default.n1/shadow/update"
        await cloud.publish("baetyl/v1/default.n2/shadow/update/delta", b"not yours", qos=1)
        await cloud.publish("baetyl/v1/default.n1/shadow/update/delta", b"sentinel", qos=1)
        # Its own request was not echoed to it: a node reads only the cloud's answers.
        assert await next_topic(node) == "baetyl/v1/default.n1/shadow/update/delta"


async def test_reloaded_acl_shuts_out_a_denied_node(broker: ManagedBroker, data_dir: Path) -> None:
    async with (
        cloud_client(broker) as cloud,
        node_client(broker, data_dir, "default.n1") as denied,
        node_client(broker, data_dir, "default.n2") as allowed,
    ):
        await cloud.subscribe("baetyl/v1/#", qos=1)
        await broker.reload_acl(["default.n1"])
        await denied.publish("baetyl/v1/default.n1/shadow/update", b"denied", qos=1)
        await allowed.publish("baetyl/v1/default.n2/shadow/update", b"sentinel", qos=1)
        assert await next_topic(cloud) == "baetyl/v1/default.n2/shadow/update"
    assert "user default.n1\ntopic deny #" in (broker.directory / "acl").read_text()


async def test_killed_broker_is_restarted_and_clients_work_again(broker: ManagedBroker) -> None:
    first_pid = broker.pid
    assert first_pid is not None
    async with cloud_client(broker) as client:
        await client.publish("before", b"", qos=1)
    os.kill(first_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while broker.restarts < 1:
        assert time.monotonic() < deadline, "the supervisor did not restart the broker"
        await asyncio.sleep(0.05)
    assert broker.restarts == 1
    assert broker.pid not in (None, first_pid)
    async with cloud_client(broker) as client:
        await client.subscribe("after", qos=1)
        await client.publish("after", b"", qos=1)
        assert await next_topic(client) == "after"


async def test_leaving_the_context_stops_the_broker(data_dir: Path) -> None:
    async with _broker(data_dir, free_port()) as broker:
        pid = broker.pid
    assert pid is not None
    assert gone(pid)
    assert broker.pid is None


async def test_a_broker_that_cannot_start_raises_with_its_log(data_dir: Path) -> None:
    port = free_port()
    async with _broker(data_dir, port):
        with pytest.raises(BrokerError, match="Address already in use"):
            async with _broker(data_dir.with_name("other"), port):
                pass


async def test_missing_mosquitto_binary_says_how_to_install_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(managed.shutil, "which", lambda *_args, **_kwargs: None)
    with pytest.raises(BrokerError, match="apt-get install mosquitto"):
        async with _broker(data_dir, free_port()):
            pass


def test_broker_certificate_is_reissued_for_a_new_host_and_the_ca_kept(data_dir: Path) -> None:
    first = ensure_cloud_pki(data_dir, broker_host="127.0.0.1", replica="r1")
    ca_print, broker_print = fingerprint(first.ca_file), fingerprint(first.broker_cert_file)
    same = ensure_cloud_pki(data_dir, broker_host="127.0.0.1", replica="r1")
    assert fingerprint(same.broker_cert_file) == broker_print
    moved = ensure_cloud_pki(
        data_dir, broker_host="10.1.2.3", replica="r1", extra_names=["broker.example"]
    )
    assert fingerprint(moved.ca_file) == ca_print
    assert fingerprint(moved.broker_cert_file) != broker_print
    sans = (
        x509.load_pem_x509_certificate(moved.broker_cert_file.read_bytes())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", "broker.example"}
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "10.1.2.3",
    }


def test_a_half_present_ca_is_refused_rather_than_replaced(data_dir: Path) -> None:
    files = ensure_cloud_pki(data_dir, broker_host="127.0.0.1", replica="r1")
    files.ca_key_file.unlink()
    with pytest.raises(ValueError, match=r"ca\.key is missing"):
        ensure_cloud_pki(data_dir, broker_host="127.0.0.1", replica="r1")


async def test_restart_backoff_grows_while_the_broker_keeps_dying_and_resets_after_a_healthy_run(
    broker: ManagedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor asks for ever longer delays for quick deaths, the shortest after a run that
    lasted STABLE_AFTER: 0.5 s doubling to 30 s, up to 20 % shorter (the recorded argument is the
    attempt the delay is computed for)."""
    asked: list[int] = []

    def recording_delay(attempt: int, **policy: float) -> float:
        assert policy == {"base": 0.5, "cap": 30.0, "jitter": 0.2}
        asked.append(attempt)
        return 0.0

    monkeypatch.setattr(managed.backoff, "delay", recording_delay)

    async def kill_and_wait_restart() -> None:
        pid, restarts = broker.pid, broker.restarts
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        async with asyncio.timeout(10):
            while broker.restarts == restarts:
                await asyncio.sleep(0.02)

    for _ in range(3):
        await kill_and_wait_restart()
    assert asked == [1, 2, 3]
    monkeypatch.setattr(managed, "STABLE_AFTER", 0.0)  # the run that just ended counts as healthy
    await kill_and_wait_restart()
    assert asked == [1, 2, 3, 1]


async def test_a_revoked_certificate_is_refused_once_the_crl_is_reloaded(
    broker: ManagedBroker, data_dir: Path
) -> None:
    """Mosquitto 2.0.11 re-reads `crlfile` on SIGHUP (decision #75): no restart is needed."""
    async with node_client(broker, data_dir, "default.n1"):
        pass  # accepted before the revocation
    nodes = data_dir.parent / "nodes"
    cert, key = nodes / "default.n1.pem", nodes / "default.n1.key"
    serial = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    settings = broker.mqtt_settings()

    def same_certificate() -> aiomqtt.Client:
        context = tls(data_dir / "pki" / "ca.pem", cert, key)
        return aiomqtt.Client(settings.host, settings.port, timeout=3, tls_context=context)

    async with same_certificate():
        pass  # the same files connect again: what follows is the CRL's doing
    await broker.reload_acl([], [serial])
    with pytest.raises(aiomqtt.MqttError):
        async with same_certificate():
            pass
    async with node_client(broker, data_dir, "default.n2"):
        pass  # another certificate of the same CA still connects
    crl = x509.load_pem_x509_crl((broker.directory / "crl.pem").read_bytes())
    assert [entry.serial_number for entry in crl] == [serial]
