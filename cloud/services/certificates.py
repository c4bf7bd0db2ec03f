"""Certificate use cases: a PEM certificate and its private key, stored as a `certificate` secret.

The certificate is parsed and the key checked against it before anything is stored; what users
see afterwards (issuer, serial, fingerprint, validity, the certificate itself) is kept apart from
the key, which never leaves this module except sealed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cloud.errors import Invalid
from cloud.pki.certinfo import CertificateError, read_certificate
from cloud.services.context import Caller, CloudContext
from cloud.services.secrets import SecretDraft, SecretMeta, SecretType

CERTIFICATE = "certificate"
CERT_KEY = "certificate"  # data keys of the sealed secret (the files a node mounts)
KEY_KEY = "key"
CERTIFICATES = SecretType(CERTIFICATE)
listing = CERTIFICATES.listing
delete = CERTIFICATES.delete
users = CERTIFICATES.users


@dataclass(frozen=True)
class CertificateDraft:
    """A certificate upload; an empty `key` on replace means "keep the stored key"."""

    name: str
    certificate: str
    key: str = field(default="", repr=False)
    labels: dict[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class CertificateShown:
    """A certificate as it may be shown: its facts (in `meta.info`) and PEM, never the key."""

    meta: SecretMeta
    certificate: str


async def create(ctx: CloudContext, caller: Caller, draft: CertificateDraft) -> CertificateShown:
    """Store a certificate whose key matches it."""
    if not draft.key.strip():
        raise Invalid("data.key: a private key is required with the certificate")
    sealable = _sealable(draft, draft.key)
    meta = await CERTIFICATES.create(ctx, caller, sealable)
    return CertificateShown(meta, sealable.data[CERT_KEY])


async def replace(
    ctx: CloudContext, caller: Caller, name: str, draft: CertificateDraft
) -> CertificateShown:
    """Replace a certificate; without a key the stored one is kept (and must match)."""
    made: list[SecretDraft] = []

    def revise(_current: SecretMeta, data: dict[str, str]) -> SecretDraft:
        made.append(_sealable(draft, draft.key if draft.key.strip() else data.get(KEY_KEY, "")))
        return made[-1]

    meta = await CERTIFICATES.replace_with(ctx, caller, name, revise)
    return CertificateShown(meta, made[-1].data[CERT_KEY])


async def get(ctx: CloudContext, caller: Caller, name: str) -> CertificateShown:
    """A certificate and its facts, without the key."""
    meta, data = await CERTIFICATES.opened(ctx, caller, name)
    return CertificateShown(meta, data.get(CERT_KEY, ""))


def _sealable(draft: CertificateDraft, key: str) -> SecretDraft:
    try:
        info = read_certificate(draft.certificate)
        key_pem = info.check_key(key)
    except CertificateError as exc:
        raise Invalid(f"data.{exc}") from exc
    return SecretDraft(
        name=draft.name,
        labels=draft.labels,
        description=draft.description,
        data={CERT_KEY: info.pem, KEY_KEY: key_pem},
        info=info.fields(),
    )
