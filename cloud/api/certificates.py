"""`/v1/certificates`: TLS certificates with their keys; the key is accepted, never returned."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, Field, model_validator

from agent.contracts.wire import WireModel
from cloud.api.listing import Page
from cloud.api.routing import RouteTable
from cloud.api.stored_kinds import ResourceBody, ResourceView, StoredKind, add_routes, view_fields
from cloud.services import certificates
from cloud.services.certificates import CertificateDraft, CertificateShown
from cloud.services.secrets import SecretMeta

routes = RouteTable(prefix="/v1")
_FACTS = (
    "signatureAlgorithm",
    "effectiveTime",
    "expiredTime",
    "serialNumber",
    "issuer",
    "fingerPrint",
)


class CertificateData(WireModel):
    """The PEM certificate (chain allowed, `cert` accepted as Baetyl 2.x names it) and its key."""

    certificate: Annotated[str, Field(validation_alias=AliasChoices("certificate", "cert"))]
    key: str = Field(default="", repr=False)

    @model_validator(mode="before")
    @classmethod
    def _one_name(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "certificate" in raw and "cert" in raw:
            raise ValueError("give the certificate as 'certificate' or 'cert', not both")
        return raw


class CertificateBody(ResourceBody):
    """A certificate to create or replace; an empty key on replace keeps the stored key.

    The read-only fields of the view are accepted and ignored, so a GET result can be PUT back.
    """

    data: CertificateData
    signature_algorithm: str | None = None
    effective_time: str | None = None
    expired_time: str | None = None
    serial_number: str | None = None
    issuer: str | None = None
    finger_print: str | None = None


class CertificatePem(WireModel):
    """The certificate as PEM; the private key is never shown."""

    certificate: str


class CertificateView(ResourceView):
    """A certificate and what was read from it (Baetyl's Certificate fields, without the key)."""

    signature_algorithm: str = ""
    effective_time: str = ""
    expired_time: str = ""
    serial_number: str = ""
    issuer: str = ""
    finger_print: str = ""
    data: CertificatePem | None = None


class CertificatePage(Page[CertificateView]):
    """A page of certificates (facts only, no PEM)."""


def _listed(meta: SecretMeta) -> CertificateView:
    facts = {key: str(meta.info.get(key, "")) for key in _FACTS}
    return CertificateView(
        **view_fields(meta),
        signature_algorithm=facts["signatureAlgorithm"],
        effective_time=facts["effectiveTime"],
        expired_time=facts["expiredTime"],
        serial_number=facts["serialNumber"],
        issuer=facts["issuer"],
        finger_print=facts["fingerPrint"],
    )


def _shown(shown: CertificateShown) -> CertificateView:
    view = _listed(shown.meta)
    view.data = CertificatePem(certificate=shown.certificate)
    return view


def _draft(body: CertificateBody, name: str) -> CertificateDraft:
    return CertificateDraft(
        name=name,
        certificate=body.data.certificate,
        key=body.data.key,
        labels=dict(body.labels),
        description=body.description,
    )


KIND = StoredKind(
    path="/certificates",
    one="a certificate",
    many="certificates",
    body=CertificateBody,
    view=CertificateView,
    page=CertificatePage,
    service=certificates,
    draft=_draft,
    show=_shown,
    show_listed=_listed,
)
add_routes(routes, KIND)
