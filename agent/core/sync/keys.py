"""Key, CSR and certificate checks of a renewal: the agent's only use of `cryptography`.

Imported only when a renewal is due (agent.core.sync.renewal), because importing
`cryptography.x509` costs about 8 MB of resident memory that an idle agent should not carry
(docs/performance-notes.md, "Agent").
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import NameOID


class IssuedCertificateError(ValueError):
    """The certificate the cloud sent would not work with this node's key or CA."""


def new_key_and_csr(nid: str) -> tuple[bytes, bytes]:
    """A new P-256 key (PKCS#8 PEM) and a CSR for it with CN = nid (PEM); blocking."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, nid)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def check_pair(cert_pem: bytes, key_pem: bytes, *, nid: str, ca_file: Path) -> None:
    """Refuse a certificate with another CN, another key, or not signed by the CA in `ca_file`."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise IssuedCertificateError(f"the renewed certificate cannot be read: {exc}") from exc
    names = [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [nid]:
        raise IssuedCertificateError(f"the renewed certificate is for {names!r}, not {nid!r}")
    if _public_der(certificate.public_key()) != _public_der(key.public_key()):
        raise IssuedCertificateError(
            "the renewed certificate does not carry the key this node made"
        )
    if not _issued_by_trusted(certificate, ca_file):
        raise IssuedCertificateError(
            f"the renewed certificate is not signed by the CA in {ca_file}"
        )


def _issued_by_trusted(certificate: x509.Certificate, ca_file: Path) -> bool:
    try:
        authorities = x509.load_pem_x509_certificates(ca_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise IssuedCertificateError(f"cannot read the CA file {ca_file}: {exc}") from exc
    for authority in authorities:
        with contextlib.suppress(ValueError, TypeError, InvalidSignature):
            certificate.verify_directly_issued_by(authority)
            return True
    return False


def _public_der(key: CertificatePublicKeyTypes | PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
