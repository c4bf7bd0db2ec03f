"""The cloud CA issues certificates that verify against it and carry exactly the intended identity.

Everything is checked on real certificates with `cryptography`, not on the builder calls.
"""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloud.pki.ca import (
    CertificateAuthority,
    IssuedCertificate,
    PKIError,
    write_certificate_files,
)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("Test Root CA")


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _cn(cert: x509.Certificate) -> str:
    (attribute,) = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attribute.value)


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _csr(common_name: str, key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def test_created_ca_is_a_self_signed_p256_ca(ca: CertificateAuthority) -> None:
    cert = ca.certificate
    cert.verify_directly_issued_by(cert)
    assert _cn(cert) == "Test Root CA"
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert _cert(ca.cert_pem) == cert


def test_server_certificate_verifies_against_the_ca_and_names_loopback(
    ca: CertificateAuthority,
) -> None:
    issued = ca.issue_server("broker", dns_names=("localhost", "broker.local"))
    cert = _cert(issued.cert_pem)
    cert.verify_directly_issued_by(ca.certificate)
    assert _cn(cert) == issued.common_name == "broker"
    assert _eku(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "broker.local"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_client_certificate_carries_the_nid_as_cn_and_client_auth_only(
    ca: CertificateAuthority,
) -> None:
    issued = ca.issue_client("default.node-a")
    cert = _cert(issued.cert_pem)
    cert.verify_directly_issued_by(ca.certificate)
    assert _cn(cert) == "default.node-a"
    assert _eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.serial_number == issued.serial_number
    assert cert.not_valid_after_utc == issued.not_after
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == cert.public_key()


def test_leaves_get_identifiers_linking_them_to_the_ca(ca: CertificateAuthority) -> None:
    cert = _cert(ca.issue_client("default.node-a").cert_pem)
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())


def test_each_leaf_gets_a_new_key_and_a_random_serial(ca: CertificateAuthority) -> None:
    first, second = ca.issue_client("default.node-a"), ca.issue_client("default.node-a")
    assert first.serial_number != second.serial_number
    assert first.key_pem != second.key_pem


def test_leaf_validity_starts_in_the_past_and_ends_as_asked(ca: CertificateAuthority) -> None:
    before = datetime.datetime.now(datetime.UTC)
    cert = _cert(ca.issue_client("default.node-a", valid_days=30).cert_pem)
    assert cert.not_valid_before_utc <= before - datetime.timedelta(seconds=50)
    expected_end = before + datetime.timedelta(days=30)
    assert abs(cert.not_valid_after_utc - expected_end) < datetime.timedelta(seconds=5)


def test_leaf_never_outlives_its_ca() -> None:
    short_ca = CertificateAuthority.create("Short CA", valid_days=10)
    cert = _cert(short_ca.issue_client("default.node-a", valid_days=365).cert_pem)
    assert cert.not_valid_after_utc <= short_ca.certificate.not_valid_after_utc


def test_csr_is_signed_as_a_client_certificate_for_its_own_key(ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(ca.sign_csr(_csr("default.node-b", key), expected_common_name="default.node-b"))
    cert.verify_directly_issued_by(ca.certificate)
    assert _cn(cert) == "default.node-b"
    assert cert.public_key() == key.public_key()
    assert _eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_csr_with_another_cn_than_expected_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(PKIError, match="does not match"):
        ca.sign_csr(_csr("default.node-b"), expected_common_name="default.node-a")


def test_csr_extensions_asking_for_more_rights_are_ignored(ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "default.node-a")]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert = _cert(ca.sign_csr(csr.public_bytes(serialization.Encoding.PEM)))
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert _eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_tampered_csr_is_refused(ca: CertificateAuthority) -> None:
    csr = x509.load_pem_x509_csr(_csr("default.node-a"))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    index = der.find(b"default.node-a")
    der[index : index + 14] = b"default.node-z"  # same length: still parses, signature breaks
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(PKIError, match="signature is invalid"):
        ca.sign_csr(forged)


def test_garbage_csr_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(PKIError, match="not a valid PEM"):
        ca.sign_csr(
            b"-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n"
        )


def test_loaded_ca_issues_certificates_that_verify_against_the_original(
    ca: CertificateAuthority,
) -> None:
    loaded = CertificateAuthority.load(ca.cert_pem, ca.key_pem)
    cert = _cert(loaded.issue_client("default.node-a").cert_pem)
    cert.verify_directly_issued_by(ca.certificate)


def test_load_with_a_key_of_another_ca_is_refused(ca: CertificateAuthority) -> None:
    other = CertificateAuthority.create("Other CA")
    with pytest.raises(PKIError, match="does not belong"):
        CertificateAuthority.load(ca.cert_pem, other.key_pem)


def test_load_of_a_leaf_certificate_as_ca_is_refused(ca: CertificateAuthority) -> None:
    leaf = ca.issue_client("default.node-a")
    with pytest.raises(PKIError, match="not a CA"):
        CertificateAuthority.load(leaf.cert_pem, leaf.key_pem)


@pytest.mark.parametrize(
    ("cert_pem", "key_pem", "message"),
    [
        (b"not pem", None, "not a valid PEM certificate"),
        (None, b"not pem", "not a valid unencrypted PEM private key"),
    ],
)
def test_load_of_bad_pem_is_refused(
    ca: CertificateAuthority, cert_pem: bytes | None, key_pem: bytes | None, message: str
) -> None:
    with pytest.raises(PKIError, match=message):
        CertificateAuthority.load(cert_pem or ca.cert_pem, key_pem or ca.key_pem)


def test_pki_error_is_a_value_error() -> None:
    assert issubclass(PKIError, ValueError)


@pytest.mark.parametrize("common_name", ["", " padded", "line\nbreak", "x" * 65])
def test_unusable_common_names_are_refused(ca: CertificateAuthority, common_name: str) -> None:
    with pytest.raises(PKIError):
        ca.issue_client(common_name)


def test_server_certificate_needs_a_name_to_be_checked_against(ca: CertificateAuthority) -> None:
    with pytest.raises(PKIError, match="at least one"):
        ca.issue_server("broker", dns_names=(), ip_addresses=())
    with pytest.raises(PKIError, match="not an IP address"):
        ca.issue_server("broker", ip_addresses=("localhost",))


def test_certificate_files_are_written_with_a_private_key_file(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    issued = ca.issue_client("default.node-a")
    cert_path, key_path = write_certificate_files(tmp_path / "certs", "node", issued)
    assert cert_path == tmp_path / "certs" / "node.pem"
    assert key_path == tmp_path / "certs" / "node.key"
    assert cert_path.read_bytes() == issued.cert_pem
    assert key_path.read_bytes() == issued.key_pem
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644
    assert sorted(path.name for path in (tmp_path / "certs").iterdir()) == ["node.key", "node.pem"]


def test_certificate_files_replace_older_ones(ca: CertificateAuthority, tmp_path: Path) -> None:
    write_certificate_files(tmp_path, "node", ca.issue_client("default.node-a"))
    renewed: IssuedCertificate = ca.issue_client("default.node-a")
    _, key_path = write_certificate_files(tmp_path, "node", renewed)
    assert key_path.read_bytes() == renewed.key_pem
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden"])
def test_certificate_file_names_cannot_leave_the_directory(
    ca: CertificateAuthority, tmp_path: Path, name: str
) -> None:
    with pytest.raises(ValueError, match="file name"):
        write_certificate_files(tmp_path, name, ca.issue_client("default.node-a"))
