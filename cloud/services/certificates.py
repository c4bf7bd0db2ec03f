"""Certificate use cases: a PEM certificate and its private key, stored as a `certificate` secret.

The certificate is parsed and the key checked against it before anything is stored; what users
see afterwards (issuer, serial, fingerprint, validity, the certificate itself) is kept apart from
the key, which never leaves this module except sealed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cloud.errors import Invalid
from cloud.pki.certinfo import CertificateError, read_certificate
from cloud.services import secrets
from cloud.services.context import Caller, CloudContext
from cloud.services.resource_rules import AppUse, Window
from cloud.services.secrets import SecretDraft, SecretMeta, SecretPage

CERTIFICATE = "certificate"
CERT_KEY = "certificate"  # data keys of the sealed secret (the files a node mounts)
KEY_KEY = "key"


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
    meta = await secrets.create_typed(ctx, caller, CERTIFICATE, sealable)
    return CertificateShown(meta, sealable.data[CERT_KEY])


async def replace(
    ctx: CloudContext, caller: Caller, name: str, draft: CertificateDraft
) -> CertificateShown:
    """Replace a certificate; without a key the stored one is kept (and must match)."""
    made: list[SecretDraft] = []

    def revise(_current: SecretMeta, data: dict[str, str]) -> SecretDraft:
        made.append(_sealable(draft, draft.key if draft.key.strip() else data.get(KEY_KEY, "")))
        return made[-1]

    meta = await secrets.replace_typed(ctx, caller, CERTIFICATE, name, revise)
    return CertificateShown(meta, made[-1].data[CERT_KEY])


async def get(ctx: CloudContext, caller: Caller, name: str) -> CertificateShown:
    """A certificate and its facts, without the key."""
    meta, data = await secrets.get_typed(ctx, caller, CERTIFICATE, name)
    return CertificateShown(meta, data.get(CERT_KEY, ""))


async def listing(caller: Caller, window: Window) -> SecretPage:
    """A page of certificates (facts only)."""
    return await secrets.listing(caller, CERTIFICATE, window)


async def delete(caller: Caller, name: str) -> None:
    """Remove a certificate no app mounts."""
    await secrets.delete(caller, CERTIFICATE, name)


async def users(caller: Caller, name: str) -> list[AppUse]:
    """The apps that mount the certificate."""
    return await secrets.users(caller, CERTIFICATE, name)


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
