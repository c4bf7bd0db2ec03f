"""The cloud's PKI on disk (`DATA_DIR/pki/`): create what is missing, keep the CA, renew leaves.

Blocking file I/O: async callers go through `asyncio.to_thread`. The CA is created once and then
only ever loaded, because every node's certificate and trust store depend on it (DESIGN §10).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from agent.contracts.kit import files
from cloud.broker.mosquitto_config import CLOUD_USER_PREFIX, check_cloud_user
from cloud.pki.ca import (
    CertificateAuthority,
    IssuedCertificate,
    PKIError,
    write_certificate_files,
)

if TYPE_CHECKING:
    from cloud.plugins import PkiSigner
    from cloud.settings import CloudSettings

log = logging.getLogger(__name__)

CA_NAME = "ca"
BROKER_NAME = "broker"
# Leaves are re-issued when less than this is left, so a long-running install never reaches the
# expiry date between two starts.
RENEW_BEFORE = datetime.timedelta(days=30)
_ALWAYS_DNS = ("localhost",)
_ALWAYS_IP = ("127.0.0.1",)
# Listening on every address says nothing about the name clients dial: those come from extra names.
_UNSPECIFIED = frozenset({"0.0.0.0", "::"})  # noqa: S104 - compared, not bound


@dataclass(frozen=True)
class CloudPKIFiles:
    """Paths of the cloud PKI files for one broker and one cloud replica."""

    ca_file: Path
    """The CA certificate: the broker's `cafile`, and what nodes and the cloud trust."""
    ca_key_file: Path
    """The CA key (0600): signs node CSRs during activation."""
    broker_cert_file: Path
    """The broker's server certificate (serverAuth, SANs for the listen host and loopback)."""
    broker_key_file: Path
    """Its key (0600)."""
    client_cert_file: Path
    """The replica's client certificate, CN `baetyl-cloud:<replica>`."""
    client_key_file: Path
    """Its key (0600)."""
    probe_cert_file: Path
    """A client certificate used only to check that the broker answers (its own CN, so probing
    never takes over the replica's session)."""
    probe_key_file: Path
    """Its key (0600)."""


def ensure_cloud_pki(
    directory: Path,
    *,
    broker_host: str,
    replica: str,
    extra_names: Iterable[str] = (),
) -> CloudPKIFiles:
    """Create the missing pieces of the PKI in `directory` and return the paths of all of them.

    The CA is loaded if present and created only if neither `ca.pem` nor `ca.key` exists. The
    broker certificate is re-issued when its SANs miss `broker_host`, `localhost`, `127.0.0.1`
    or one of `extra_names`, when another CA signed it or when it is about to expire; client
    certificates likewise. Raises PKIError for a broken or half-present CA and ValueError for a
    bad replica name.
    """
    check_cloud_user(f"{CLOUD_USER_PREFIX}{replica}")  # before anything is written
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = _load_or_create_ca(directory)
    dns_names, ip_addresses = _server_names([broker_host, *extra_names])
    broker_cert, broker_key = _paths(directory, BROKER_NAME)
    if not _usable(broker_cert, broker_key, ca, dns_names=dns_names, ip_addresses=ip_addresses):
        issued = ca.issue_server("baetyl-broker", dns_names=dns_names, ip_addresses=ip_addresses)
        write_certificate_files(directory, BROKER_NAME, issued)
        log.info(
            "issued broker certificate",
            extra={"cert_file": str(broker_cert), "dns_names": dns_names, "ips": ip_addresses},
        )
    client_cert, client_key = ensure_replica_certificate(directory, ca, replica)
    probe_cert, probe_key = _ensure_client(
        directory, ca, f"probe-{replica}", f"baetyl-broker-probe:{replica}"
    )
    return CloudPKIFiles(
        ca_file=directory / f"{CA_NAME}.pem",
        ca_key_file=directory / f"{CA_NAME}.key",
        broker_cert_file=broker_cert,
        broker_key_file=broker_key,
        client_cert_file=client_cert,
        client_key_file=client_key,
        probe_cert_file=probe_cert,
        probe_key_file=probe_key,
    )


CRL_NAME = "crl.pem"


def write_crl(path: Path, ca: PkiSigner, revoked_serials: Iterable[int]) -> None:
    """Write the signer's CRL listing `revoked_serials` to `path` (0644, replaced atomically).

    `DATA_DIR/pki/crl.pem` is what an external broker's `crlfile` is fed from; the managed broker
    writes its own copy under `DATA_DIR/mosquitto/`.
    """
    files.atomic_write(path, ca.crl(revoked_serials), mode=0o644)


def crl_serials(path: Path, ca: CertificateAuthority) -> frozenset[int]:
    """The serials a CRL written by `write_crl` lists; empty if it is missing or not `ca`'s."""
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return frozenset()
    if not crl.is_signature_valid(ca.certificate.public_key()):  # type: ignore[arg-type]
        return frozenset()
    return frozenset(entry.serial_number for entry in crl)


def load_or_create_ca(directory: Path) -> CertificateAuthority:
    """The CA in `directory` (`ca.pem`, `ca.key`), created with the directory if neither exists.

    Every mode of the cloud signs node certificates with it, with or without the managed broker;
    an external broker is configured to trust `ca.pem`. Raises PKIError for a broken or
    half-present CA, never replacing it.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return _load_or_create_ca(directory)


def data_dir_ca(settings: CloudSettings) -> PkiSigner:
    """The built-in PKI signer plug-in `ca` (setup.cfg): the CA of `DATA_DIR/pki`, created on
    the first start (see `load_or_create_ca`)."""
    return load_or_create_ca(settings.pki_dir)


def _load_or_create_ca(directory: Path) -> CertificateAuthority:
    cert_path, key_path = _paths(directory, CA_NAME)
    if cert_path.exists() or key_path.exists():
        if not (cert_path.exists() and key_path.exists()):
            missing = key_path if cert_path.exists() else cert_path
            # Making a new CA here would silently cut off every node that trusts the old one.
            raise PKIError(f"{missing} is missing; restore it (a new CA would orphan every node)")
        return CertificateAuthority.load(cert_path.read_bytes(), key_path.read_bytes())
    ca = CertificateAuthority.create()
    certificate = ca.certificate
    write_certificate_files(
        directory,
        CA_NAME,
        IssuedCertificate(
            cert_pem=ca.cert_pem,
            key_pem=ca.key_pem,
            common_name="Baetyl-Py Root CA",
            serial_number=certificate.serial_number,
            not_after=certificate.not_valid_after_utc,
        ),
    )
    log.info("created cloud CA", extra={"ca_file": str(cert_path)})
    return ca


def ensure_replica_certificate(
    directory: Path, ca: CertificateAuthority, replica: str
) -> tuple[Path, Path]:
    """`cloud-<replica>.pem` and `.key` in `directory`: the client certificate a cloud replica
    connects to the broker with (CN `baetyl-cloud:<replica>`), issued by `ca` unless a usable
    one is there. Raises ValueError for a bad replica name."""
    user = check_cloud_user(f"{CLOUD_USER_PREFIX}{replica}")
    return _ensure_client(directory, ca, f"cloud-{replica}", user)


def _ensure_client(
    directory: Path, ca: CertificateAuthority, name: str, common_name: str
) -> tuple[Path, Path]:
    cert_path, key_path = _paths(directory, name)
    if not _usable(cert_path, key_path, ca, common_name=common_name):
        write_certificate_files(directory, name, ca.issue_client(common_name))
        log.info(
            "issued client certificate",
            extra={"cert_file": str(cert_path), "common_name": common_name},
        )
    return cert_path, key_path


def _usable(
    cert_path: Path,
    key_path: Path,
    ca: CertificateAuthority,
    *,
    common_name: str | None = None,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
) -> bool:
    """Whether an existing leaf can stay: signed by `ca`, not expiring soon, right CN and SANs."""
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        certificate.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    now = datetime.datetime.now(datetime.UTC)
    if certificate.not_valid_after_utc - now < RENEW_BEFORE:
        return False
    if common_name is not None:
        names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        if [attribute.value for attribute in names] != [common_name]:
            return False
    wanted_dns, wanted_ips = set(dns_names), {ipaddress.ip_address(a) for a in ip_addresses}
    if not (wanted_dns or wanted_ips):
        return True
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return wanted_dns <= set(sans.get_values_for_type(x509.DNSName)) and wanted_ips <= set(
        sans.get_values_for_type(x509.IPAddress)
    )


def _server_names(hosts: Iterable[str]) -> tuple[list[str], list[str]]:
    dns_names, ip_addresses = list(_ALWAYS_DNS), list(_ALWAYS_IP)
    for host in hosts:
        if host in _UNSPECIFIED:
            continue
        try:
            address = str(ipaddress.ip_address(host))
        except ValueError:
            if host not in dns_names:
                dns_names.append(host)
            continue
        if address not in ip_addresses:
            ip_addresses.append(address)
    return dns_names, ip_addresses


def _paths(directory: Path, name: str) -> tuple[Path, Path]:
    return directory / f"{name}.pem", directory / f"{name}.key"
