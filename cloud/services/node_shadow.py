"""Writes of the desired `nodeprops` and `core` of node shadows: Baetyl's properties PUT, our
PATCH, and the agent settings of Baetyl's core configs (cloud.services.node_core).

Apps and sysapps are not written here (they come from matching). Both writes go
through `agent.contracts.shadow.apply_update` and the store's version-checked save, so a write
computed from a stale document never lands: the PATCH names its version (`If-Match`) and gets
409 when it is stale; the properties PUT names none and simply retries on a concurrent write.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

from agent.contracts import shadow
from agent.contracts.desired import NODEPROPS
from cloud.errors import Conflict, Invalid, NotFound
from cloud.services import nodes
from cloud.services.context import Caller, CloudContext
from cloud.services.nodes import NodeState
from cloud.store import shadows
from cloud.store.db import retry_on_conflict, transaction
from cloud.store.desired import DesiredChanges, Written

WRITE_ATTEMPTS: Final = 3
Document = dict[str, Any]


async def set_properties(
    ctx: CloudContext, caller: Caller, name: str, props: Mapping[str, str]
) -> NodeState:
    """Make the desired `nodeprops` exactly `props`; only changed keys get a new timestamp."""
    namespace = caller.namespace

    async def attempt() -> Document | None:
        async with transaction():
            await nodes.require(namespace, name)
            doc = await _document(namespace, name)
            current = doc["state"][shadow.DESIRED].get(NODEPROPS)
            current = current if isinstance(current, dict) else {}
            patch: dict[str, str | None] = {k: v for k, v in props.items() if current.get(k) != v}
            patch.update({key: None for key in current if key not in props})
            if not patch:
                return None
            return await _write(ctx, namespace, name, doc, {NODEPROPS: patch}, version=None)

    written = await retry_on_conflict(attempt, attempts=WRITE_ATTEMPTS)
    state = await nodes.get(ctx, caller, name)
    if written is not None:
        await ctx.desired_changed(_changed(namespace, name, written))
    return state


async def write_entry(
    ctx: CloudContext, namespace: str, name: str, key: str, value: dict[str, Any]
) -> Document | None:
    """Make the desired entry `key` exactly `value`, inside the caller's transaction; the new
    document, or None when it already was."""
    doc = await _document(namespace, name)
    current = doc["state"][shadow.DESIRED].get(key)
    if current == value or (not value and current is None):
        return None
    # An entry is replaced whole: null it first, so that keys it no longer has go too.
    patch: dict[str, Any] = {key: value or None}
    if isinstance(current, dict) and value:
        patch = {key: {**{k: None for k in current if k not in value}, **value}}
    return await _write(ctx, namespace, name, doc, patch, version=None)


def changed(namespace: str, name: str, doc: Document) -> DesiredChanges:
    """What a desired write announces: the node's new desired section and version."""
    return _changed(namespace, name, doc)


async def patch_shadow(
    ctx: CloudContext, caller: Caller, name: str, patch: Mapping[str, Any], *, if_match: int
) -> NodeState:
    """Merge `patch` (only `nodeprops`) into the desired section if the shadow is at `if_match`.

    Like every accepted shadow update, this raises the version by one even when nothing changed.
    """
    unknown = sorted(set(patch) - {NODEPROPS})
    if unknown:
        raise Invalid(f"state.desired: only {NODEPROPS} may be written, not {', '.join(unknown)}")
    namespace = caller.namespace
    async with transaction():
        await nodes.require(namespace, name)
        doc = await _document(namespace, name)
        new_doc = await _write(ctx, namespace, name, doc, dict(patch), version=if_match)
    state = await nodes.get(ctx, caller, name)
    if new_doc["state"][shadow.DESIRED] != doc["state"][shadow.DESIRED]:
        await ctx.desired_changed(_changed(namespace, name, new_doc))
    return state


def _changed(namespace: str, name: str, doc: Document) -> DesiredChanges:
    written = Written(int(doc["version"]), float(doc["timestamp"]), doc["state"][shadow.DESIRED])
    return {nodes.nid(namespace, name): written}


async def _write(
    ctx: CloudContext,
    namespace: str,
    name: str,
    doc: Document,
    patch: Document,
    *,
    version: int | None,
) -> Document:
    try:
        new_doc = shadow.apply_update(
            doc,
            shadow.DESIRED,
            patch,
            version=version,
            now=time.time(),
            limits=ctx.settings.shadow_limits,
        )
    except shadow.ShadowError as exc:
        if exc.code == 409:
            raise Conflict(exc.message) from exc
        raise Invalid(f"state.desired: {exc.message}") from exc
    await shadows.save_document(namespace, name, new_doc, expected_version=doc["version"])
    return new_doc


async def _document(namespace: str, name: str) -> Document:
    doc = await shadows.load_document(namespace, name, for_update=True)
    if doc is None:  # only a node written outside cloud.services.nodes could lack one
        raise NotFound("shadow", name, namespace)
    return doc
