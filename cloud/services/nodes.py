"""Edge nodes: create, list, read, relabel and delete them, keeping one shadow per node.

Creating a node or changing its labels recomputes which apps it receives (cloud.services.desired)
in the same transaction as the node write, and tells the desired-state listeners after the
commit, so a node never runs with a desire that disagrees with its labels. The cloud writes only
the desired `nodeprops` of a shadow here; apps and sysapps belong to the matching.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from agent.contracts import names, selectors, shadow
from agent.contracts.desired import DesiredState
from agent.contracts.resources import Application
from agent.contracts.wire import validate
from cloud.errors import Conflict, Invalid, NotFound
from cloud.services import desired, quotas
from cloud.services.context import Caller, CloudContext
from cloud.services.versions import content_version
from cloud.store import denied as denied_store
from cloud.store import namespaces as namespace_store
from cloud.store import node_certs as cert_store
from cloud.store import nodes as store
from cloud.store import shadows
from cloud.store.db import transaction
from cloud.store.desired import DesiredChanges
from cloud.store.nodes import AppSummary, NodeRecord
from cloud.store.shadows import Liveness

KIND: Final = "node"
NODE_NAME_LABEL: Final = "baetyl-node-name"
NODE_MODES: Final = ("native", "kube")
SYNC_MODES: Final = ("cloud", "local")
ANNOTATIONS: Final = "annotations"
SYS_APPS: Final = "sysApps"
OFFLINE_AFTER_REPORTS: Final = 3  # missed report intervals before a node counts as offline

Document = dict[str, Any]
NodeApp = AppSummary  # what apps_of returns, named here so the API layer need not see the store


class Ready(enum.IntEnum):
    """Baetyl's `ready`: whether the node has ever reported, and whether it still does."""

    NEVER = 0
    ONLINE = 1
    OFFLINE = 2


@dataclass(frozen=True)
class NodeSpec:
    """A node to create (already shape-checked by the API layer)."""

    name: str
    labels: dict[str, str]
    description: str = ""
    annotations: dict[str, str] | None = None
    node_mode: str = "native"
    sys_apps: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeChanges:
    """A node update: None keeps the stored value, anything else replaces it."""

    labels: dict[str, str] | None = None
    description: str | None = None
    annotations: dict[str, str] | None = None
    node_mode: str | None = None
    sys_apps: list[str] | None = None


@dataclass(frozen=True)
class NodeFilter:
    """What a node list asks for; `limit` None means to the end."""

    selector: selectors.Selector | None = None
    name: str = ""
    ready: Ready | None = None
    ascending: bool = False
    offset: int = 0
    limit: int | None = None


@dataclass(frozen=True)
class NodeState:
    """A node with its shadow document, when it last reported, and its computed readiness."""

    record: NodeRecord
    document: Document
    report_time: float | None
    ready: Ready
    last_seen: float | None = None

    @property
    def annotations(self) -> dict[str, str]:
        """User annotations (kept in the node's attributes)."""
        value = self.record.attributes.get(ANNOTATIONS)
        return dict(value) if isinstance(value, dict) else {}

    @property
    def sys_apps(self) -> list[str]:
        """The optional system apps the node runs (kept in the node's attributes)."""
        value = self.record.attributes.get(SYS_APPS)
        return [str(v) for v in value] if isinstance(value, list) else []

    @property
    def version(self) -> str:
        """A content version of the node itself (not of its shadow)."""
        return node_version(self.record)


def node_version(record: NodeRecord) -> str:
    """The version of a node: a digest of what a user set on it."""
    return content_version(
        {
            "labels": record.labels,
            "description": record.description,
            "nodeMode": record.node_mode,
            "mode": record.sync_mode,
            "attributes": record.attributes,
        }
    )


def ready_of(seen: Liveness, *, now: float, report_interval: float) -> Ready:
    """Readiness from MQTT presence; from the age of the last report when no presence is known."""
    if seen.online is not None:
        return Ready.ONLINE if seen.online else Ready.OFFLINE
    if seen.report_time is None:
        return Ready.NEVER
    if now - seen.report_time < OFFLINE_AFTER_REPORTS * report_interval:
        return Ready.ONLINE
    return Ready.OFFLINE


def last_seen(seen: Liveness) -> float | None:
    """When the node was last heard of: its latest report or presence message."""
    times = [t for t in (seen.report_time, seen.presence_time) if t is not None]
    return max(times) if times else None


def with_node_name_label(name: str, labels: Mapping[str, str]) -> dict[str, str]:
    """`labels` plus the system label `baetyl-node-name=<name>` that system apps select on."""
    given = labels.get(NODE_NAME_LABEL)
    if given is not None and given != name:
        raise Invalid(
            f"labels: {NODE_NAME_LABEL} is set by the cloud to the node name ({name!r}), "
            f"not {given!r}"
        )
    return {**labels, NODE_NAME_LABEL: name}


def nid(namespace: str, name: str) -> str:
    """The node id `{ns}.{node}` that listeners are told about."""
    return names.make_nid(namespace, name)


async def create(ctx: CloudContext, caller: Caller, spec: NodeSpec) -> NodeState:
    """Create a node with an empty shadow and the apps its labels select."""
    namespace = caller.namespace
    labels = with_node_name_label(spec.name, spec.labels)
    attributes: dict[str, Any] = {ANNOTATIONS: spec.annotations} if spec.annotations else {}
    if spec.sys_apps:
        attributes[SYS_APPS] = list(spec.sys_apps)
    async with transaction():
        await namespace_store.ensure(namespace)
        await namespace_store.lock(namespace)
        if await store.get(namespace, spec.name) is not None:
            raise Conflict(f"node {spec.name} already exists in namespace {namespace}")
        await quotas.check(ctx.settings.quotas, namespace, quotas.NODES)
        await store.insert(
            namespace,
            spec.name,
            labels=labels,
            description=spec.description,
            node_mode=spec.node_mode,
            attributes=attributes,
        )
        await shadows.create(namespace, spec.name, shadow.new_document(time.time()))
        changed = await desired.recompute_for_nodes(namespace, [spec.name])
        if spec.sys_apps:
            changed |= await desired.set_builtins(namespace, spec.name, spec.sys_apps)
        readmitted = await denied_store.remove(namespace, spec.name)
    if readmitted:
        await ctx.access_changed()
    state = await get(ctx, caller, spec.name)
    await ctx.desired_changed(changed)  # last: the push must not hold up this answer
    return state


async def update(ctx: CloudContext, caller: Caller, name: str, changes: NodeChanges) -> NodeState:
    """Change labels, description or annotations; new labels re-match the namespace's apps."""
    namespace = caller.namespace
    changed: DesiredChanges = {}
    async with transaction():
        await namespace_store.lock(namespace)
        record = await require(namespace, name, for_update=True)
        if changes.node_mode is not None and changes.node_mode != record.node_mode:
            raise Invalid(
                f"nodeMode: a node's mode is fixed at creation ({record.node_mode!r}); "
                "delete and re-create the node to change it"
            )
        labels = with_node_name_label(
            name, record.labels if changes.labels is None else changes.labels
        )
        attributes = dict(record.attributes)
        if changes.annotations is not None:
            attributes[ANNOTATIONS] = changes.annotations
            if not changes.annotations:
                del attributes[ANNOTATIONS]
        if changes.sys_apps is not None:
            attributes[SYS_APPS] = list(changes.sys_apps)
            if not changes.sys_apps:
                del attributes[SYS_APPS]
        description = record.description if changes.description is None else changes.description
        if (labels, description, attributes) != (
            record.labels,
            record.description,
            record.attributes,
        ):
            await store.update(
                namespace,
                name,
                labels=labels,
                description=description,
                sync_mode=record.sync_mode,
                attributes=attributes,
                now=datetime.now(UTC),
            )
        if labels != record.labels:
            changed = await desired.recompute_for_nodes(namespace, [name])
        if attributes.get(SYS_APPS) != record.attributes.get(SYS_APPS):
            changed |= await desired.set_builtins(
                namespace, name, list(attributes.get(SYS_APPS) or [])
            )
    state = await get(ctx, caller, name)
    await ctx.desired_changed(changed)  # last: the push must not hold up this answer
    return state


async def set_sync_mode(caller: Caller, name: str, mode: str) -> None:
    """Switch a node between `cloud` (the cloud drives its desire) and `local` sync mode."""
    if mode not in SYNC_MODES:
        raise Invalid(f"mode must be one of {', '.join(SYNC_MODES)}, not {mode!r}")
    namespace = caller.namespace
    async with transaction():
        record = await require(namespace, name, for_update=True)
        if record.sync_mode != mode:
            await store.update(
                namespace,
                name,
                labels=record.labels,
                description=record.description,
                sync_mode=mode,
                attributes=record.attributes,
                now=datetime.now(UTC),
            )


async def delete(ctx: CloudContext, caller: Caller, name: str) -> None:
    """Delete a node with its shadow and app index rows (the apps themselves stay).

    The node goes on the broker's deny list: its certificate may still be valid. Its
    certificate rows are stamped revoked in the same transaction.
    """
    namespace = caller.namespace
    async with transaction():
        # Under the namespace lock, so a concurrent app placement cannot index the node again.
        await namespace_store.lock(namespace)
        if not await store.delete(namespace, name):
            raise NotFound(KIND, name, namespace)
        await shadows.delete(namespace, [name])
        await denied_store.add(namespace, [name])
        await cert_store.revoke(namespace, [name])
    await ctx.access_changed()


async def get(ctx: CloudContext, caller: Caller, name: str) -> NodeState:
    """One node of the caller's namespace, or NotFound."""
    record = await require(caller.namespace, name)
    return (await states(ctx, caller.namespace, [record]))[0]


async def get_many(ctx: CloudContext, caller: Caller, wanted: Iterable[str]) -> list[NodeState]:
    """The named nodes that exist, in the order asked (unknown names are skipped, as Baetyl)."""
    order = list(dict.fromkeys(wanted))
    found = await store.get_many(caller.namespace, order)
    return await states(ctx, caller.namespace, [found[n] for n in order if n in found])


async def listing(
    ctx: CloudContext, caller: Caller, wanted: NodeFilter
) -> tuple[int, list[NodeState]]:
    """(total matches, one page of nodes), newest first unless `ascending`.

    Without a selector or readiness filter the page is cut in SQL; with one, only the label
    index is read for every node and the page's rows are fetched afterwards.
    """
    namespace = caller.namespace
    if wanted.selector is None and wanted.ready is None:
        total, records = await store.page(
            namespace,
            name=wanted.name,
            offset=wanted.offset,
            limit=wanted.limit,
            ascending=wanted.ascending,
        )
        return total, await states(ctx, namespace, records)
    entries = await store.index(namespace, name=wanted.name, ascending=wanted.ascending)
    if wanted.selector is not None:
        entries = [entry for entry in entries if wanted.selector.matches(entry.labels)]
    if wanted.ready is not None:
        seen = await shadows.liveness(namespace)
        now = time.time()
        interval = ctx.settings.report_interval
        entries = [
            entry
            for entry in entries
            if ready_of(seen.get(entry.name, Liveness()), now=now, report_interval=interval)
            == wanted.ready
        ]
    end = None if wanted.limit is None else wanted.offset + wanted.limit
    window = entries[wanted.offset : end]
    records = await store.by_ids([entry.id for entry in window])
    return len(entries), await states(ctx, namespace, records)


async def apps_of(caller: Caller, name: str) -> list[NodeApp]:
    """Every app (system and user) in the node's desired state."""
    namespace = caller.namespace
    await require(namespace, name)
    doc = await shadows.load_document(namespace, name)
    section = None if doc is None else doc["state"][shadow.DESIRED]
    return await store.apps(namespace, set(DesiredState.from_section(section).app_versions()))


async def functions_of(caller: Caller, name: str) -> list[str]:
    """`app/function` of every function app in the node's desired state (Baetyl's view)."""
    found = []
    for app in await apps_of(caller, name):
        spec = validate(Application, app.spec)
        found += [f"{app.name}/{function}" for function in spec.function_services()]
    return found


async def require(namespace: str, name: str, *, for_update: bool = False) -> NodeRecord:
    """The node, or NotFound."""
    record = await store.get(namespace, name, for_update=for_update)
    if record is None:
        raise NotFound(KIND, name, namespace)
    return record


async def states(ctx: CloudContext, namespace: str, records: list[NodeRecord]) -> list[NodeState]:
    """Attach shadows and readiness to node records with one query."""
    loaded = await shadows.load_with_liveness(namespace, [r.name for r in records])
    now = time.time()
    interval = ctx.settings.report_interval
    states = []
    for record in records:
        doc, seen = loaded.get(record.name, (shadow.new_document(0.0), Liveness()))
        ready = ready_of(seen, now=now, report_interval=interval)
        states.append(NodeState(record, doc, seen.report_time, ready, last_seen(seen)))
    return states
