"""What edge nodes ask of the cloud over MQTT: report, read the shadow, fetch resources, presence.

The MQTT bridge (cloud.mqtt) parses payloads and calls these; they speak in cloud errors whose
`status` becomes the MQTT rejection code (`Refused` carries codes the REST errors have no class
for: 413, 429, ...). Only resources the node's desired state references are ever served.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from agent.contracts import report as report_shapes
from agent.contracts import shadow, wire
from agent.contracts.desired import DesiredState
from agent.contracts.messages import (
    ApplicationValue,
    ConfigurationValue,
    ResourceRef,
    SecretValue,
)
from agent.contracts.resources import (
    SECRET_TYPE_LABEL,
    Application,
    ResourceKind,
    Secret,
)
from cloud.errors import CloudError, Conflict, Forbidden, NotFound
from cloud.services import objects
from cloud.services.context import CloudContext
from cloud.store import apps as app_store
from cloud.store import configs as config_store
from cloud.store import secrets as secret_store
from cloud.store import shadows
from cloud.store.db import retry_on_conflict, transaction

WRITE_ATTEMPTS: Final = 5
MAX_PROBLEMS: Final = 10  # a rejection names the first problems of a bad report, not thousands
Document = dict[str, Any]
ResourceValue = ApplicationValue | ConfigurationValue | SecretValue


class Refused(CloudError):
    """A request refused with a protocol code (DESIGN §5 error table)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Reported:
    """An accepted report: the new document and what the update wrote."""

    document: Document
    patch: Document | None
    metadata: Document


@dataclass(frozen=True)
class DeltaPush:
    """A non-empty delta to tell a node about, with the whole desired section it comes from."""

    state: Document
    metadata: Document
    version: int
    timestamp: float
    desired: Document


async def report(
    ctx: CloudContext,
    namespace: str,
    name: str,
    patch: Document | None,
    *,
    version: int | None,
) -> Reported:
    """Merge a reported patch into the node's shadow (optimistic concurrency, DESIGN §11).

    Without `version` a concurrent writer only causes a retry on the fresh document; with one,
    a moved document is a 409 for the agent to resolve.
    """

    async def once() -> Reported:
        return await _report_once(ctx, namespace, name, patch, version)

    try:
        return await retry_on_conflict(once, attempts=1 if version is not None else WRITE_ATTEMPTS)
    except Conflict as exc:
        raise Refused(409, exc.message) from exc


async def _report_once(
    ctx: CloudContext, namespace: str, name: str, patch: Document | None, version: int | None
) -> Reported:
    now = time.time()
    async with transaction():
        doc = await _document(namespace, name, for_update=True)
        try:
            new_doc = shadow.apply_update(
                doc,
                shadow.REPORTED,
                patch,
                version=version,
                now=now,
                limits=ctx.settings.shadow_limits,
            )
        except shadow.ShadowError as exc:
            raise Refused(exc.code, f"state.reported: {exc.message}") from exc
        if patch:
            problems = report_shapes.reported_problems(new_doc["state"][shadow.REPORTED], patch)
            if problems:
                shown = "; ".join(problems[:MAX_PROBLEMS])
                more = len(problems) - MAX_PROBLEMS
                raise Refused(400, shown + (f"; and {more} more" if more > 0 else ""))
        await shadows.save_document(
            namespace, name, new_doc, expected_version=doc["version"], reported_at=now
        )
    written = {} if patch is None else patch
    metadata = {shadow.REPORTED: _mirror(new_doc["metadata"][shadow.REPORTED], written)}
    return Reported(new_doc, patch, metadata)


async def document(namespace: str, name: str) -> Document:
    """The node's full shadow document (delta computed), or 404."""
    return await _document(namespace, name)


def delta_push(doc: Document) -> DeltaPush | None:
    """The delta message of a document, or None when desired and reported agree."""
    if not doc["state"][shadow.DELTA]:
        return None
    state = doc["state"][shadow.DELTA]
    metadata = _mirror(doc["metadata"][shadow.DESIRED], state)
    desired = doc["state"][shadow.DESIRED]
    return DeltaPush(state, metadata, int(doc["version"]), float(doc["timestamp"]), desired)


async def presence(namespace: str, name: str, *, online: bool) -> None:
    """Record that the node connected (online) or its will fired (offline); 404 if unknown."""
    if not await shadows.set_presence(namespace, name, online=online, at=time.time()):
        raise NotFound("node", name, namespace)


async def resources(
    ctx: CloudContext, namespace: str, name: str, wanted: Iterable[ResourceRef]
) -> list[ResourceValue]:
    """The requested specs, all of which the node's desired state must reference (else 403)."""
    refs = list(wanted)
    doc = await _document(namespace, name)
    apps = DesiredState.from_section(doc["state"][shadow.DESIRED]).app_versions()
    mounted = await _mounted(namespace, apps) if _needs_mounts(refs) else set()
    for ref in refs:
        key = (ref.kind, ref.name, ref.version)
        allowed = (
            apps.get(ref.name) == ref.version
            if ref.kind is ResourceKind.APPLICATION
            else key in mounted
        )
        if not allowed:
            raise Forbidden(
                f"{ref.kind.value} {ref.name!r} version {ref.version!r} is not referenced by "
                f"the desired state of node {name}"
            )
    return [await _value(ctx, namespace, ref) for ref in refs]


def _needs_mounts(refs: list[ResourceRef]) -> bool:
    return any(ref.kind is not ResourceKind.APPLICATION for ref in refs)


async def _mounted(namespace: str, apps: Mapping[str, str]) -> set[tuple[ResourceKind, str, str]]:
    """(kind, name, version) of every config and secret mounted by the desired app versions."""
    mounted: set[tuple[ResourceKind, str, str]] = set()
    for row in await app_store.get_many(namespace, apps):
        if apps.get(row.name) != row.version:
            continue  # the desired version is gone: it mounts nothing any more
        spec = wire.validate(Application, row.spec)
        for kind, ref in spec.references():
            mounted.add((kind, ref.name, ref.version))
    return mounted


async def _value(ctx: CloudContext, namespace: str, ref: ResourceRef) -> ResourceValue:
    gone = NotFound(ref.kind.value, f"{ref.name} version {ref.version}", namespace)
    if ref.kind is ResourceKind.APPLICATION:
        row = await app_store.get(namespace, ref.name)
        if row is None or row.version != ref.version:
            raise gone
        app = wire.validate(Application, row.spec)
        return ApplicationValue(kind=ref.kind, name=ref.name, version=ref.version, value=app)
    if ref.kind is ResourceKind.CONFIGURATION:
        config = await config_store.get(namespace, ref.name)
        if config is None or config.version != ref.version:
            raise gone
        served = objects.served(ctx, namespace, config)
        return ConfigurationValue(kind=ref.kind, name=ref.name, version=ref.version, value=served)
    stored = await secret_store.get(namespace, ref.name)
    if stored is None or stored.version != ref.version or stored.sealed is None:
        raise gone
    data = ctx.secrets.open(stored.sealed, bound_to=f"{namespace}/{ref.name}")
    secret = Secret(
        name=stored.name,
        namespace=stored.namespace,
        version=stored.version,
        labels={**stored.labels, SECRET_TYPE_LABEL: stored.secret_type},
        description=stored.description,
        system=stored.system,
        data=data,
        create_time=stored.create_time,
        update_time=stored.update_time,
    )
    return SecretValue(kind=ref.kind, name=ref.name, version=ref.version, value=secret)


async def _document(namespace: str, name: str, *, for_update: bool = False) -> Document:
    doc = await shadows.load_document(namespace, name, for_update=for_update)
    if doc is None:  # a node and its shadow are created and deleted together
        raise NotFound("node", name, namespace)
    return doc


def _mirror(metadata: Document, shape: Document) -> Document:
    """The part of `metadata` under the keys of `shape` (recursing where both are objects)."""
    picked: Document = {}
    for key, value in shape.items():
        meta = metadata.get(key)
        if meta is None:
            continue
        if isinstance(value, dict) and value and isinstance(meta, dict):
            picked[key] = _mirror(meta, value)
        else:
            picked[key] = meta
    return picked
