"""Node client certificates: sign a node's CSR with the PKI signer and record what was signed.

Used by activation (`POST /v1/active`) and by renewal over MQTT (`cert/renew`). The node's key
never leaves the node; the cloud sees only its CSR, takes the key and the CN from it and decides
everything else (clientAuth only, lifetime from `--node-cert-days`), DESIGN §10.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from agent.contracts import names
from cloud.errors import Invalid, NotFound, Unavailable
from cloud.plugins import PkiSigner
from cloud.services.context import CloudContext
from cloud.store import node_certs as store
from cloud.store import nodes as node_store
from cloud.store.node_certs import CertificateRecord

log = logging.getLogger(__name__)
KIND = "node"


@dataclass(frozen=True)
class IssuedNodeCert:
    """A certificate just signed for a node, with the CA that signed it (both PEM text)."""

    cert_pem: str
    ca_pem: str
    serial: str
    """Hexadecimal, as `openssl x509 -serial` prints it (lower case)."""
    not_before: datetime
    not_after: datetime
    valid_days: int


async def issue(
    ctx: CloudContext, namespace: str, name: str, csr_pem: bytes, *, expected_cn: str
) -> IssuedNodeCert:
    """Sign `csr_pem` for node `namespace/name` and record the certificate.

    The CSR's CN must be `expected_cn`, which must be the node's nid: a node can only ever get a
    certificate for itself. Raises NotFound when the node does not exist, Invalid for a CSR that
    is malformed, badly signed, uses a weak key or names another CN. Runs in the caller's
    transaction, if any, so a later failure there un-records the certificate too.
    """
    nid = names.make_nid(namespace, name)
    if expected_cn != nid:
        raise Invalid(f"csr: a certificate for node {nid!r} must have the CN {nid!r}")
    if await node_store.get(namespace, name) is None:
        raise NotFound(KIND, name, namespace)
    ca = authority(ctx)
    days = ctx.settings.install.node_cert_days
    try:
        # Parsing and signing are CPU work (milliseconds); keep them off the event loop.
        pem = await asyncio.to_thread(
            ca.sign_csr, csr_pem, expected_common_name=expected_cn, valid_days=days
        )
    except ValueError as exc:  # PKIError, or a plug-in signer's refusal
        raise Invalid(f"csr: {exc}") from exc
    certificate = x509.load_pem_x509_certificate(pem)
    serial = format(certificate.serial_number, "x")
    await store.record(
        namespace=namespace,
        name=name,
        serial=serial,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )
    log.info(
        "signed node certificate",
        extra={"nid": nid, "serial": serial, "not_after": certificate.not_valid_after_utc},
    )
    return IssuedNodeCert(
        cert_pem=pem.decode("ascii"),
        ca_pem=ca.cert_pem.decode("ascii"),
        serial=serial,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        valid_days=days,
    )


async def revoke(namespace: str, nodes: list[str]) -> int:
    """Mark every certificate of these (deleted) nodes revoked; how many rows changed.

    The broker shuts them out by nid (deny list, decision #38); this row stamp is the record.
    """
    return await store.revoke(namespace, nodes)


async def of_node(namespace: str, name: str) -> list[CertificateRecord]:
    """Every certificate signed for the node, oldest first."""
    return await store.of_node(namespace, name)


def authority(ctx: CloudContext) -> PkiSigner:
    """The PKI signer, or Unavailable (never in `baetyl-cloud serve`: a misbuilt context)."""
    if ctx.ca is None:
        raise Unavailable("the PKI signer is not loaded; node certificates cannot be signed")
    return ctx.ca
