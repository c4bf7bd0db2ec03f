"""Certificates and keys made on the spot for certificate tests (RSA, EC, Ed25519, chains)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

KeyType = Literal["ec", "rsa", "ed25519"]
NOT_BEFORE = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(2034, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM text, plus the parsed certificate."""

    cert_pem: str
    key_pem: str
    cert: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes


def new_key(key_type: KeyType = "ec") -> CertificateIssuerPrivateKeyTypes:
    """A fresh private key."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def key_text(key: CertificateIssuerPrivateKeyTypes, *, password: bytes | None = None) -> str:
    """PKCS#8 PEM of a key, encrypted when a password is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


def make_pair(
    common_name: str = "edge.example.test",
    *,
    key_type: KeyType = "ec",
    issuer: Pair | None = None,
    serial: int = 4242,
) -> Pair:
    """A certificate for `common_name`, self-signed or signed by `issuer`."""
    key = new_key(key_type)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer_name = issuer.cert.subject if issuer else subject
    signer_key = issuer.key if issuer else key
    algorithm = None if isinstance(signer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .sign(signer_key, algorithm)
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return Pair(pem, key_text(key), cert, key)
