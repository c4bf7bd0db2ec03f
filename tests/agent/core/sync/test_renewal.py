"""The renewal's file and certificate work: checks on what the cloud sends, crash-safe install."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.core.sync import renewal
from agent.core.sync.renewal import Lifetime, RenewalError
from cloud.pki.ca import CertificateAuthority

NID = "default.edge-01"


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("Renewal Test CA")


@pytest.fixture
def ca_file(tmp_path: Path, ca: CertificateAuthority) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(ca.cert_pem)
    return path


def _signed(ca: CertificateAuthority, nid: str = NID) -> tuple[bytes, bytes]:
    """A key made here and the CA's certificate for it, as the cloud would answer."""
    key_pem, csr_pem = renewal.new_key_and_csr(nid)
    return ca.sign_csr(csr_pem, valid_days=1), key_pem


def _pair(directory: Path, label: bytes) -> tuple[Path, Path]:
    cert_file, key_file = directory / "client.pem", directory / "client.key"
    cert_file.write_bytes(b"cert " + label)
    key_file.write_bytes(b"key " + label)
    return cert_file, key_file


def test_renewal_is_due_when_two_thirds_of_the_lifetime_have_passed() -> None:
    assert Lifetime(serial=1, not_before=1000.0, not_after=1300.0).renew_at == 1200.0
    assert Lifetime(serial=255, not_before=0.0, not_after=1.0).serial_hex == "FF"


def test_the_csr_names_the_node_and_is_signed_by_a_fresh_p256_key() -> None:
    key_pem, csr_pem = renewal.new_key_and_csr(NID)
    csr = x509.load_pem_x509_csr(csr_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NID
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert renewal.new_key_and_csr(NID)[0] != key_pem


def test_a_good_certificate_passes_the_checks(ca: CertificateAuthority, ca_file: Path) -> None:
    cert_pem, key_pem = _signed(ca)
    lifetime = renewal.check_issued(cert_pem, key_pem, nid=NID, ca_file=ca_file)
    assert lifetime.serial == x509.load_pem_x509_certificate(cert_pem).serial_number


def test_a_certificate_for_another_node_is_refused(ca: CertificateAuthority, ca_file: Path) -> None:
    cert_pem, key_pem = _signed(ca, "default.edge-02")
    with pytest.raises(RenewalError, match=re.escape("not 'default.edge-01'")):
        renewal.check_issued(cert_pem, key_pem, nid=NID, ca_file=ca_file)


def test_a_certificate_for_another_key_is_refused(ca: CertificateAuthority, ca_file: Path) -> None:
    cert_pem, _ = _signed(ca)
    other_key, _ = renewal.new_key_and_csr(NID)
    with pytest.raises(RenewalError, match="key this node made"):
        renewal.check_issued(cert_pem, other_key, nid=NID, ca_file=ca_file)


def test_a_certificate_from_another_ca_is_refused(ca_file: Path) -> None:
    cert_pem, key_pem = _signed(CertificateAuthority.create("Renewal Test CA"))
    with pytest.raises(RenewalError, match="not signed by the CA"):
        renewal.check_issued(cert_pem, key_pem, nid=NID, ca_file=ca_file)


def test_an_expired_certificate_is_refused(ca: CertificateAuthority, ca_file: Path) -> None:
    key_pem, _ = renewal.new_key_and_csr(NID)
    key = serialization.load_pem_private_key(key_pem, password=None)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    expired = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NID)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=2))
        .not_valid_after(now - datetime.timedelta(hours=1))
        .sign(ca_key, hashes.SHA256())
    )
    cert_pem = expired.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(RenewalError, match="expired"):
        renewal.check_issued(cert_pem, key_pem, nid=NID, ca_file=ca_file)


def test_garbage_is_refused(ca_file: Path) -> None:
    key_pem, _ = renewal.new_key_and_csr(NID)
    with pytest.raises(RenewalError, match="cannot be read"):
        renewal.check_issued(b"not a certificate", key_pem, nid=NID, ca_file=ca_file)


def test_install_replaces_both_files_with_private_key_mode(tmp_path: Path) -> None:
    cert_file, key_file = _pair(tmp_path, b"old")
    renewal.install(cert_file, key_file, b"cert new", b"key new")
    assert (cert_file.read_bytes(), key_file.read_bytes()) == (b"cert new", b"key new")
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert cert_file.stat().st_mode & 0o777 == 0o644
    assert sorted(path.name for path in tmp_path.iterdir()) == ["client.key", "client.pem"]
    assert renewal.recover(cert_file, key_file) is None


# Every state a crash can leave an install in, and the pair a restart must find afterwards.
CRASHES = [
    ("while staging the key", {"key": b"key new"}, b"old"),
    ("after staging both", {"key": b"key new", "cert": b"cert new"}, b"new"),
    ("between the two renames", {"cert": b"cert new", "live key": b"key new"}, b"new"),
]


@pytest.mark.parametrize(("when", "left", "pair"), CRASHES, ids=[c[0] for c in CRASHES])
def test_recover_leaves_a_matching_pair_whenever_the_install_was_interrupted(
    tmp_path: Path, when: str, left: dict[str, bytes], pair: bytes
) -> None:
    cert_file, key_file = _pair(tmp_path, b"old")
    if "key" in left:
        (tmp_path / "client.key.next").write_bytes(left["key"])
    if "cert" in left:
        (tmp_path / "client.pem.next").write_bytes(left["cert"])
    if "live key" in left:
        key_file.write_bytes(left["live key"])
    assert renewal.recover(cert_file, key_file) is not None, when
    assert (cert_file.read_bytes(), key_file.read_bytes()) == (b"cert " + pair, b"key " + pair)
    assert not list(tmp_path.glob("*.next"))
