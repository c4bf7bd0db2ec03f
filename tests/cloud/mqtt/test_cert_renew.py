"""`cert/renew` over the real broker: a node gets a certificate for its fresh key, and only its own.

The cloud signs with the CA of its data directory (`DATA_DIR/pki`) and records every
certificate it signs; a refused request records nothing.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.contracts.topics import Channel
from cloud.services import node_certs
from cloud.settings import InstallSettings
from tests.cloud.mqtt.conftest import STRICT_RATE, AgentFactory, make_node
from tests.harness.cloud import CloudServer

RENEW = Channel.CERT_RENEW
ANSWERS = (Channel.CERT_RENEW_ACCEPTED, Channel.CERT_RENEW_REJECTED)


def csr_for(common_name: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _public(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | object) -> bytes:
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


async def test_a_node_gets_a_certificate_for_its_own_fresh_key_and_it_is_recorded(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    nid = await make_node(cloud)
    namespace, name = nid.split(".", 1)
    key = ec.generate_private_key(ec.SECP256R1())
    async with agent(nid) as node:
        channel, answer = await node.ask(
            RENEW, {"clientToken": "renew-1", "csr": csr_for(nid, key)}, ANSWERS
        )
    assert channel is Channel.CERT_RENEW_ACCEPTED, answer
    assert answer["clientToken"] == "renew-1"
    certificate = x509.load_pem_x509_certificate(answer["certificate"].encode())
    ca = x509.load_pem_x509_certificate(answer["ca"].encode())
    # Signed by the cloud CA of the data directory, for this node's key and name only.
    assert answer["ca"].encode() == (cloud.data_dir / "pki" / "ca.pem").read_bytes()
    certificate.verify_directly_issued_by(ca)
    assert certificate.subject.rfc4514_string() == f"CN={nid}"
    assert _public(certificate.public_key()) == _public(key.public_key())
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    lifetime = certificate.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    expected = datetime.timedelta(days=InstallSettings.node_cert_days)
    assert abs(lifetime - expected) < datetime.timedelta(minutes=5)
    records = await node_certs.of_node(namespace, name)
    assert [record.serial for record in records] == [format(certificate.serial_number, "x")]


async def test_a_csr_for_another_node_is_refused_with_400_and_nothing_is_recorded(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    nid, victim = await make_node(cloud), await make_node(cloud)
    key = ec.generate_private_key(ec.SECP256R1())
    async with agent(nid) as node:
        channel, answer = await node.ask(
            RENEW, {"clientToken": "steal", "csr": csr_for(victim, key)}, ANSWERS
        )
    assert channel is Channel.CERT_RENEW_REJECTED
    assert (answer["code"], answer["clientToken"]) == (400, "steal")
    assert victim in answer["message"]
    for someone in (nid, victim):
        assert await node_certs.of_node(*someone.split(".", 1)) == []


async def test_unusable_csrs_are_refused_with_400_and_nothing_is_recorded(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    nid = await make_node(cloud)
    good = csr_for(nid, ec.generate_private_key(ec.SECP256R1()))
    der = bytearray(x509.load_pem_x509_csr(good.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte belongs to the signature
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    weak = csr_for(nid, rsa.generate_private_key(public_exponent=65537, key_size=1024))
    cases = {
        "not PEM": "hello",
        "truncated": good[: len(good) // 2],
        "forged signature": forged,
        "weak key": weak,
    }
    async with agent(nid) as node:
        for what, csr in cases.items():
            channel, answer = await node.ask(RENEW, {"clientToken": "bad", "csr": csr}, ANSWERS)
            assert channel is Channel.CERT_RENEW_REJECTED, what
            assert answer["code"] == 400, (what, answer)
            assert answer["message"].startswith("csr: "), (what, answer)
        # The node can still renew properly afterwards.
        channel, answer = await node.ask(RENEW, {"clientToken": "ok", "csr": good}, ANSWERS)
    assert channel is Channel.CERT_RENEW_ACCEPTED, answer
    assert len(await node_certs.of_node(*nid.split(".", 1))) == 1


async def test_renewal_requests_are_rate_limited_like_every_request(
    strict_cloud: CloudServer, agent: AgentFactory
) -> None:
    nid = await make_node(strict_cloud)
    async with agent(nid) as node:
        sent = 150  # far more than STRICT_RATE allows in the time they take to send
        for step in range(sent):
            await node.publish(RENEW, {"clientToken": f"r{step}", "csr": "not a csr"})
        codes = [(await node.next_of(ANSWERS))[1]["code"] for _ in range(sent)]
    assert set(codes) == {400, 429}
    assert codes.count(400) >= STRICT_RATE  # the bucket starts full
