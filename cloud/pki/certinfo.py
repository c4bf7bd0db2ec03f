"""Reading user-supplied certificates: PEM parsing, the facts Baetyl shows, key/certificate match.

`/v1/certificates` stores a certificate with its private key; users should see what they uploaded
(issuer, serial, fingerprint, validity) without the key, and a key that does not belong to the
certificate must be refused before it reaches a node, where the TLS handshake would fail late.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

_BLOCK_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_BEGIN_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
_KEY_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")
_ENCRYPTED_KEY_LABEL = "ENCRYPTED PRIVATE KEY"
_EC_PARAMETERS_LABEL = "EC PARAMETERS"  # `openssl ecparam -genkey` writes it before the key

# Go's x509.SignatureAlgorithm names, which Baetyl shows; others fall back to the dotted OID.
_GO_SIGNATURE_NAMES = {
    SignatureAlgorithmOID.RSA_WITH_MD5: "MD5-RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "SHA1-RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "SHA256-RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "SHA384-RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "SHA512-RSA",
    SignatureAlgorithmOID.DSA_WITH_SHA1: "DSA-SHA1",
    SignatureAlgorithmOID.DSA_WITH_SHA256: "DSA-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ECDSA-SHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ECDSA-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ECDSA-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ECDSA-SHA512",
    SignatureAlgorithmOID.ED25519: "Ed25519",
    SignatureAlgorithmOID.ED448: "Ed448",
}
_PSS_HASH_NAMES = {"sha256": "SHA256", "sha384": "SHA384", "sha512": "SHA512"}


class CertificateError(ValueError):
    """A certificate or key that cannot be used; the message says which field and why."""


@dataclass(frozen=True)
class CertificateInfo:
    """What may be shown of a certificate, and the certificate chain itself as canonical PEM."""

    signature_algorithm: str
    effective_time: datetime
    expired_time: datetime
    serial_number: str
    issuer: str
    fingerprint: str
    pem: str
    _leaf: x509.Certificate = field(repr=False, compare=False)

    def fields(self) -> dict[str, str]:
        """The facts under Baetyl's names (dates as RFC 3339 UTC, fingerprint SHA-256)."""
        return {
            "signatureAlgorithm": self.signature_algorithm,
            "effectiveTime": _rfc3339(self.effective_time),
            "expiredTime": _rfc3339(self.expired_time),
            "serialNumber": self.serial_number,
            "issuer": self.issuer,
            "fingerPrint": self.fingerprint,
        }

    def check_key(self, key_text: str) -> str:
        """Return the private key PEM block of `key_text` if it belongs to this certificate.

        Raises CertificateError for anything else: no key, an encrypted key (a node could not
        use it unattended), several keys, or a key whose public half is not the certificate's.
        """
        key_pem = _single_key_block(key_text)
        try:
            key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise CertificateError(f"key: not a usable PEM private key ({exc})") from exc
        if _spki(key.public_key()) != _spki(self._leaf.public_key()):
            raise CertificateError(
                "key: the private key does not match the certificate's public key"
            )
        return key_pem


def read_certificate(text: str) -> CertificateInfo:
    """Parse a PEM certificate (optionally followed by its chain) and describe the first one.

    Only CERTIFICATE blocks are accepted: the certificate is shown back to users, so a private key
    pasted into this field by mistake must be refused, never stored where it would be displayed.
    """
    labels = _BEGIN_RE.findall(text)
    if not labels:
        raise CertificateError("certificate: no PEM block ('-----BEGIN CERTIFICATE-----') found")
    others = sorted({label for label in labels if label != "CERTIFICATE"})
    if others:
        raise CertificateError(
            f"certificate: only CERTIFICATE PEM blocks are allowed, found {', '.join(others)}"
        )
    blocks = [match.group(0) for match in _BLOCK_RE.finditer(text)]
    if len(blocks) != len(labels):
        raise CertificateError("certificate: a PEM block is not terminated by its END line")
    try:
        chain = [x509.load_pem_x509_certificate(block.encode()) for block in blocks]
    except ValueError as exc:
        raise CertificateError(f"certificate: not a valid X.509 certificate ({exc})") from exc
    leaf = chain[0]
    pem = "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in chain)
    return CertificateInfo(
        signature_algorithm=_signature_name(leaf),
        effective_time=leaf.not_valid_before_utc,
        expired_time=leaf.not_valid_after_utc,
        serial_number=str(leaf.serial_number),
        issuer=_issuer(leaf),
        fingerprint=_fingerprint(leaf),
        pem=pem,
        _leaf=leaf,
    )


def _single_key_block(text: str) -> str:
    labels = _BEGIN_RE.findall(text)
    if _ENCRYPTED_KEY_LABEL in labels:
        raise CertificateError("key: encrypted private keys are not supported; decrypt it first")
    keys = [label for label in labels if label in _KEY_LABELS]
    others = sorted(
        {label for label in labels if label not in (*_KEY_LABELS, _EC_PARAMETERS_LABEL)}
    )
    if others:
        raise CertificateError(
            f"key: only one PEM private key is allowed, found {', '.join(others)}"
        )
    if len(keys) != 1:
        raise CertificateError(
            "key: exactly one PEM private key ('-----BEGIN PRIVATE KEY-----') is required, "
            f"found {len(keys)}"
        )
    for match in _BLOCK_RE.finditer(text):
        if match.group(1) in _KEY_LABELS:
            return match.group(0) + "\n"
    raise CertificateError("key: the PEM private key is not terminated by its END line")


def _spki(public_key: PublicKeyTypes) -> bytes:
    try:
        return public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"key: unsupported public key type ({exc})") from exc


def _signature_name(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    if oid == SignatureAlgorithmOID.RSASSA_PSS:
        algorithm = cert.signature_hash_algorithm
        name = (
            _PSS_HASH_NAMES.get(algorithm.name)
            if isinstance(algorithm, hashes.HashAlgorithm)
            else None
        )
        return f"{name}-RSAPSS" if name else "RSAPSS"
    return _GO_SIGNATURE_NAMES.get(oid, oid.dotted_string)


def _issuer(cert: x509.Certificate) -> str:
    # Baetyl shows the issuer's common name; a name without CN is shown whole (RFC 4514).
    names = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        value = names[0].value
        return value if isinstance(value, str) else value.decode(errors="replace")
    return cert.issuer.rfc4514_string()


def _fingerprint(cert: x509.Certificate) -> str:
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
