"""`/v1/certificates`: TLS certificates with their keys; the key is accepted, never returned."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import AliasChoices, Field, model_validator

from agent.contracts.resources import Description, Labels, Name
from agent.contracts.wire import WireModel
from cloud.api.auth import caller_of
from cloud.api.http import path_param, read_body, read_query, reply
from cloud.api.keys import CONTEXT
from cloud.api.listing import ListQuery, Page
from cloud.api.resource_views import AppUseList, app_uses, body_name, check_namespace, window
from cloud.api.routing import RouteTable
from cloud.services import certificates
from cloud.services.certificates import CertificateDraft
from cloud.services.context import Caller
from cloud.services.secrets import SecretMeta

routes = RouteTable(prefix="/v1")
TAGS = ("certificates",)
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


class CertificateBody(WireModel):
    """A certificate to create or replace; an empty key on replace keeps the stored key.

    The read-only fields of the view are accepted and ignored, so a GET result can be PUT back.
    """

    name: Name | None = None
    namespace: str | None = None
    labels: Labels = Field(default_factory=dict)
    description: Description = ""
    data: CertificateData
    version: str | None = None
    signature_algorithm: str | None = None
    effective_time: str | None = None
    expired_time: str | None = None
    serial_number: str | None = None
    issuer: str | None = None
    finger_print: str | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


class CertificatePem(WireModel):
    """The certificate as PEM; the private key is never shown."""

    certificate: str


class CertificateView(WireModel):
    """A certificate and what was read from it (Baetyl's Certificate fields, without the key)."""

    name: str
    namespace: str
    version: str
    labels: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    signature_algorithm: str = ""
    effective_time: str = ""
    expired_time: str = ""
    serial_number: str = ""
    issuer: str = ""
    finger_print: str = ""
    data: CertificatePem | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


class CertificatePage(Page[CertificateView]):
    """A page of certificates (facts only, no PEM)."""


def _view(meta: SecretMeta, certificate: str | None = None) -> CertificateView:
    facts = {key: str(meta.info.get(key, "")) for key in _FACTS}
    return CertificateView(
        name=meta.name,
        namespace=meta.namespace,
        version=meta.version,
        labels=meta.labels,
        description=meta.description,
        signature_algorithm=facts["signatureAlgorithm"],
        effective_time=facts["effectiveTime"],
        expired_time=facts["expiredTime"],
        serial_number=facts["serialNumber"],
        issuer=facts["issuer"],
        finger_print=facts["fingerPrint"],
        data=None if certificate is None else CertificatePem(certificate=certificate),
        create_time=meta.create_time,
        update_time=meta.update_time,
    )


def _draft(body: CertificateBody, caller: Caller, path: str | None) -> CertificateDraft:
    check_namespace(body.namespace, caller)
    return CertificateDraft(
        name=body_name(body.name, path),
        certificate=body.data.certificate,
        key=body.data.key,
        labels=dict(body.labels),
        description=body.description,
    )


@routes.route(
    "GET",
    "/certificates",
    summary="List certificates",
    query=ListQuery,
    response=CertificatePage,
    tags=TAGS,
)
async def list_certificates(request: web.Request) -> web.Response:
    """Certificates of the caller's namespace, newest first."""
    query = read_query(request, ListQuery)
    found = await certificates.listing(caller_of(request), window(query))
    return reply(CertificatePage.of(query, found.total, [_view(m) for m in found.items]))


@routes.route(
    "POST",
    "/certificates",
    summary="Create a certificate",
    body=CertificateBody,
    response=CertificateView,
    tags=TAGS,
)
async def create_certificate(request: web.Request) -> web.Response:
    """Store a certificate and its matching private key."""
    caller = caller_of(request)
    body = await read_body(request, CertificateBody)
    shown = await certificates.create(request.app[CONTEXT], caller, _draft(body, caller, None))
    return reply(_view(shown.meta, shown.certificate))


@routes.route(
    "GET",
    "/certificates/{name}",
    summary="Get a certificate",
    response=CertificateView,
    tags=TAGS,
)
async def get_certificate(request: web.Request) -> web.Response:
    """One certificate with its PEM (never its key)."""
    ctx = request.app[CONTEXT]
    shown = await certificates.get(ctx, caller_of(request), path_param(request, "name"))
    return reply(_view(shown.meta, shown.certificate))


@routes.route(
    "PUT",
    "/certificates/{name}",
    summary="Replace a certificate",
    body=CertificateBody,
    response=CertificateView,
    tags=TAGS,
)
async def replace_certificate(request: web.Request) -> web.Response:
    """Replace a certificate; apps that mount it get its new version when it changed."""
    caller = caller_of(request)
    name = path_param(request, "name")
    body = await read_body(request, CertificateBody)
    draft = _draft(body, caller, name)
    shown = await certificates.replace(request.app[CONTEXT], caller, name, draft)
    return reply(_view(shown.meta, shown.certificate))


@routes.route("DELETE", "/certificates/{name}", summary="Delete a certificate", tags=TAGS)
async def delete_certificate(request: web.Request) -> web.Response:
    """Delete a certificate that no app mounts."""
    await certificates.delete(caller_of(request), path_param(request, "name"))
    return reply(None)


@routes.route(
    "GET",
    "/certificates/{name}/apps",
    summary="List the applications that mount a certificate",
    response=AppUseList,
    tags=TAGS,
)
async def certificate_apps(request: web.Request) -> web.Response:
    """The apps whose volumes mount the certificate."""
    found = await certificates.users(caller_of(request), path_param(request, "name"))
    return reply(app_uses(found))
