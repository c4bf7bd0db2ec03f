"""A small X.509 certificate authority (EC P-256, SHA-256) for mutual TLS in the platform.

The broker trusts exactly this CA and takes a client's identity from its certificate's CN
(DESIGN §10), so everything that decides an identity (CN, key usage, lifetime) is decided here.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.contracts.kit import files

# Clocks of freshly booted edge boards drift; a certificate valid from "now" would be refused by a
# peer whose clock is a few seconds behind.
_BACKDATE = datetime.timedelta(minutes=1)
_MIN_RSA_BITS = 2048
CRL_DAYS = 3650
"""Validity of the CRLs the CA makes: long, as a stale CRL shuts out every node (see `crl`)."""
_ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

_PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class PKIError(ValueError):
    """A certificate, key or CSR that cannot be used: bad PEM, mismatched pair, wrong CN."""


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf certificate together with the private key made for it (both PEM)."""

    cert_pem: bytes
    key_pem: bytes
    common_name: str
    serial_number: int
    not_after: datetime.datetime


class CertificateAuthority:
    """A CA certificate and its key, able to issue server and client certificates.

    Leaves get a fresh random serial, `not_before` one minute in the past and a `not_after` that
    never outlives the CA (a leaf valid longer than its issuer would fail verification anyway).
    """

    def __init__(self, certificate: x509.Certificate, private_key: _PrivateKey) -> None:
        """Wrap an already checked pair; use `create` or `load` rather than calling this."""
        self._certificate = certificate
        self._key = private_key

    @classmethod
    def create(
        cls, common_name: str = "Baetyl-Py Root CA", *, valid_days: int = 3650
    ) -> CertificateAuthority:
        """Generate a new self-signed root CA with a new P-256 key."""
        _check_common_name(common_name)
        _check_valid_days(valid_days)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=valid_days))
            # path_length=0: this CA signs leaves only, never another CA.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def load(cls, cert_pem: bytes, key_pem: bytes) -> CertificateAuthority:
        """Load a CA given as files (DESIGN §10); refuse what could not sign valid leaves."""
        try:
            certificate = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise PKIError(f"CA certificate is not a valid PEM certificate: {exc}") from exc
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise PKIError(f"CA key is not a valid unencrypted PEM private key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise PKIError(f"CA key must be an EC or RSA key, not {type(key).__name__}")
        if _public_der(certificate.public_key()) != _public_der(key.public_key()):
            raise PKIError("CA key does not belong to the CA certificate (public keys differ)")
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound as exc:
            raise PKIError("CA certificate has no BasicConstraints extension") from exc
        if not constraints.value.ca:
            raise PKIError("certificate is not a CA certificate (BasicConstraints ca=false)")
        if certificate.not_valid_after_utc <= _now():
            raise PKIError(
                f"CA certificate expired on {certificate.not_valid_after_utc.isoformat()}"
            )
        return cls(certificate, key)

    @property
    def certificate(self) -> x509.Certificate:
        """The CA certificate as an x509 object."""
        return self._certificate

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate in PEM, as clients and the broker need it for `cafile`."""
        return self._certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """The CA private key in unencrypted PKCS#8 PEM; store it with mode 0600."""
        return _private_pem(self._key)

    def issue_server(
        self,
        common_name: str,
        *,
        dns_names: Sequence[str] = ("localhost",),
        ip_addresses: Sequence[str] = ("127.0.0.1",),
        valid_days: int = 825,
    ) -> IssuedCertificate:
        """Issue a serverAuth certificate with a new key; clients check the host by its SANs."""
        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        for address in ip_addresses:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(address)))
            except ValueError as exc:
                raise PKIError(f"{address!r} is not an IP address") from exc
        if not sans:
            # Modern TLS clients ignore the CN for host checks: without a SAN nobody could connect.
            raise PKIError("a server certificate needs at least one DNS name or IP address")
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self._sign_leaf(
            common_name,
            key.public_key(),
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            valid_days=valid_days,
            sans=sans,
        )
        return _issued(certificate, key, common_name)

    def issue_client(
        self, common_name: str, *, valid_days: int = 365, organizations: Sequence[str] = ()
    ) -> IssuedCertificate:
        """Issue a clientAuth certificate with a new key; the CN becomes the MQTT identity.

        `organizations` become O= subject fields: Kubernetes reads a client's groups from them
        (the local cluster's `system:masters` and `system:nodes`, tools/kube).
        """
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self._sign_leaf(
            common_name,
            key.public_key(),
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            valid_days=valid_days,
            organizations=organizations,
        )
        return _issued(certificate, key, common_name)

    def sign_csr(
        self,
        csr_pem: bytes,
        *,
        expected_common_name: str | None = None,
        valid_days: int = 365,
    ) -> bytes:
        """Sign a node's CSR as a clientAuth certificate and return it in PEM.

        Only the CSR's key and CN are used: requested extensions and other subject fields are
        ignored, so a node cannot ask for serverAuth, CA rights or extra names. The private key
        never leaves the node.
        """
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise PKIError(f"not a valid PEM certificate signing request: {exc}") from exc
        try:
            signature_ok = csr.is_signature_valid
        except (UnsupportedAlgorithm, InvalidSignature) as exc:
            raise PKIError(f"CSR signature cannot be checked: {exc}") from exc
        if not signature_ok:
            raise PKIError("CSR signature is invalid (the request was altered or forged)")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(names) != 1:
            raise PKIError(f"CSR must carry exactly one common name, found {len(names)}")
        common_name = names[0].value
        if not isinstance(common_name, str):
            raise PKIError("CSR common name is not a string")
        if expected_common_name is not None and common_name != expected_common_name:
            raise PKIError(
                f"CSR common name {common_name!r} does not match "
                f"the expected {expected_common_name!r}"
            )
        public_key = _checked_leaf_key(csr.public_key())
        certificate = self._sign_leaf(
            common_name, public_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH, valid_days=valid_days
        )
        return certificate.public_bytes(serialization.Encoding.PEM)

    def _sign_leaf(
        self,
        common_name: str,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        *,
        usage: x509.ObjectIdentifier,
        valid_days: int,
        sans: Sequence[x509.GeneralName] = (),
        organizations: Sequence[str] = (),
    ) -> x509.Certificate:
        _check_common_name(common_name)
        _check_valid_days(valid_days)
        now = _now()
        not_after = min(
            now + datetime.timedelta(days=valid_days), self._certificate.not_valid_after_utc
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
                    + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
                )
            )
            .issuer_name(self._certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    # RSA key exchange needs keyEncipherment; EC keys never encipher.
                    key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def crl(self, revoked_serials: Iterable[int], *, valid_days: int = CRL_DAYS) -> bytes:
        """A CRL (PEM) of this CA listing `revoked_serials`, valid `valid_days` from now.

        Brokers that check revocation (Mosquitto's `crlfile`) refuse every client of this CA
        when its CRL is missing or expired, so the cloud rewrites it at every start and every
        revocation and the validity only has to outlast the longest time between starts.
        """
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._certificate.subject)
            .last_update(now - _BACKDATE)
            .next_update(now + datetime.timedelta(days=valid_days))
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        for serial in sorted(set(revoked_serials)):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - _BACKDATE)
                .build()
            )
        return builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        try:
            ski = self._certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            # A CA given as files may lack an SKI; derive the identifier the same way peers would.
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)


def write_certificate_files(
    directory: Path, name: str, issued: IssuedCertificate
) -> tuple[Path, Path]:
    """Write `<name>.pem` (0644) and `<name>.key` (0600) into `directory`; return both paths.

    Each file is written to a temporary file first and renamed into place, so a crash never leaves a
    truncated key behind, and the key is never readable by others, not even for an instant.
    """
    if not _FILE_NAME_RE.match(name):
        raise ValueError(
            f"certificate file name {name!r} must be letters, digits, '.', '_' and '-' "
            "and start with a letter or digit"
        )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}.key"
    files.atomic_write(key_path, issued.key_pem, mode=0o600)
    files.atomic_write(cert_path, issued.cert_pem, mode=0o644)
    return cert_path, key_path


def _issued(
    certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey, common_name: str
) -> IssuedCertificate:
    return IssuedCertificate(
        cert_pem=certificate.public_bytes(serialization.Encoding.PEM),
        key_pem=_private_pem(key),
        common_name=common_name,
        serial_number=certificate.serial_number,
        not_after=certificate.not_valid_after_utc,
    )


def _private_pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_der(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise PKIError(f"unsupported public key type {type(key).__name__}")
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _checked_leaf_key(key: object) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _ACCEPTED_CURVES):
            raise PKIError(f"CSR key uses the unsupported curve {key.curve.name}")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise PKIError(f"CSR RSA key has {key.key_size} bits, at least {_MIN_RSA_BITS} needed")
        return key
    raise PKIError(f"CSR key must be EC or RSA, not {type(key).__name__}")


def _check_common_name(common_name: str) -> None:
    # The CN becomes an MQTT username and a line in the broker's ACL file: control characters or
    # surrounding blanks there would corrupt the file or create a second identity.
    if not common_name or common_name != common_name.strip():
        raise PKIError(f"common name {common_name!r} must be non-empty, without surrounding blanks")
    if any(ord(char) < 32 or ord(char) == 127 for char in common_name):
        raise PKIError(f"common name {common_name!r} must not contain control characters")
    if len(common_name) > 64:
        raise PKIError(f"common name {common_name!r} is longer than 64 characters (X.509 limit)")


def _check_valid_days(valid_days: int) -> None:
    if valid_days < 1:
        raise PKIError(f"valid_days must be at least 1, got {valid_days}")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)
