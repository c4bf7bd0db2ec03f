"""Matching apps to nodes and writing the result into node desires (DESIGN §7).

An app goes to every node of its namespace whose labels match its selector: into
`desired.sysapps` when it is a system app, else `desired.apps`, as `{name: version}`. Every
function here runs inside the caller's transaction and returns, by nid, the new shadow version of
each node whose desired state changed; the caller tells `CloudContext.desired_changed` after the
commit, and the MQTT bridge rings each node with that version (decision #111).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from agent.contracts import names, selectors
from agent.contracts.desired import (
    APPS,
    BUILTIN_SYSAPPS,
    BUILTIN_VERSION,
    SYSAPPS,
    DesiredState,
)
from agent.contracts.resources import Application, ResourceKind
from agent.contracts.wire import validate
from cloud.services.versions import content_version
from cloud.store import apps as app_store
from cloud.store import desired as shadow_store
from cloud.store import namespaces as namespace_store
from cloud.store.apps import AppTarget
from cloud.store.desired import DesiredChanges


@lru_cache(maxsize=4096)
def _selector(text: str) -> selectors.Selector:
    return selectors.parse(text)


def matches(target: AppTarget, labels: Mapping[str, str]) -> bool:
    """Whether app `target` goes to a node with `labels` (an empty selector matches nothing)."""
    return _selector(target.selector).matches(labels)


def desired_patch(
    desired: Mapping[str, Any], wanted: Mapping[str, AppTarget | None]
) -> dict[str, dict[str, str | None]]:
    """The desired-section patch that gives each app of `wanted` its place (None = nowhere).

    Only the named apps are touched; a patch is returned only for real changes, so that an
    unchanged node keeps its shadow version.
    """
    patch: dict[str, dict[str, str | None]] = {}
    for app, target in wanted.items():
        for section in (APPS, SYSAPPS):
            current = desired.get(section)
            have = current.get(app) if isinstance(current, dict) else None
            belongs = target is not None and (section == SYSAPPS) == target.system
            want = target.version if belongs and target is not None else None
            if have != want:
                patch.setdefault(section, {})[app] = want
    return patch


async def recompute_for_nodes(namespace: str, nodes: Iterable[str]) -> DesiredChanges:
    """Recompute the desired apps of `nodes` (after a node was created or relabelled)."""
    await namespace_store.lock(namespace)
    wanted_nodes = sorted(set(nodes))
    rows = await shadow_store.load_for_update(namespace, wanted_nodes)
    labels = await app_store.node_labels(namespace, wanted_nodes)
    targets = await app_store.targets(namespace)
    placements: dict[str, dict[str, AppTarget | None]] = {}
    for node in rows.names():
        node_labels = labels.get(node, {})
        placement: dict[str, AppTarget | None] = {
            t.name: (t if matches(t, node_labels) else None) for t in targets
        }
        # Apps the node has but that no longer exist are removed too (not the built-in system
        # apps its sysApps asks for: they are no app of the cloud's).
        for app in DesiredState.from_section(rows.desired(node)).app_versions():
            if app not in BUILTIN_SYSAPPS:
                placement.setdefault(app, None)
        placements[node] = placement
    return await _write(namespace, rows, placements)


async def recompute_for_apps(namespace: str, apps: Iterable[str]) -> DesiredChanges:
    """Place `apps` (created, updated or deleted) on exactly the nodes they now match."""
    await namespace_store.lock(namespace)
    app_names = sorted(set(apps))
    targets = {t.name: t for t in await app_store.targets(namespace, app_names)}
    labels = await app_store.node_labels(namespace)
    affected = await app_store.nodes_of_apps(namespace, app_names)
    for target in targets.values():
        affected.update(
            node for node, node_labels in labels.items() if matches(target, node_labels)
        )
    rows = await shadow_store.load_for_update(namespace, affected)
    placements = {
        node: {
            app: (
                targets[app]
                if app in targets and matches(targets[app], labels.get(node, {}))
                else None
            )
            for app in app_names
        }
        for node in rows.names()
    }
    return await _write(namespace, rows, placements)


async def set_builtins(namespace: str, node: str, sys_apps: Iterable[str]) -> DesiredChanges:
    """Put the built-in system apps a node's `sysApps` lists in its desired `sysapps` (at
    BUILTIN_VERSION: the agent runs its own spec of them) and take out the others."""
    listed = set(sys_apps)
    rows = await shadow_store.load_for_update(namespace, [node])
    if node not in rows.names():
        return {}
    current = DesiredState.from_section(rows.desired(node)).sysapps
    patch = {
        name: (BUILTIN_VERSION if name in listed else None)
        for name in BUILTIN_SYSAPPS
        if current.get(name) != (BUILTIN_VERSION if name in listed else None)
    }
    if patch:
        rows.update_desired(node, {SYSAPPS: patch}, now=time.time())
    written = await rows.save()
    return {names.make_nid(namespace, n): change for n, change in written.items()}


async def propagate_resource(
    namespace: str, kind: ResourceKind, name: str, version: str
) -> DesiredChanges:
    """Give every app that mounts config/secret `name` its new `version`, then re-place them.

    Rewriting the volume reference changes the app's content, hence its version, which then
    flows into the desired state of every node the app goes to.
    """
    await namespace_store.lock(namespace)
    using = await app_store.apps_using(namespace, kind.value, name)
    changed_apps = []
    for row in await app_store.get_many(namespace, using):
        spec = validate(Application, row.spec)
        if not spec.pin(kind, name, version):
            continue
        new_version = app_version(spec)
        spec.version = new_version
        await app_store.save(
            namespace,
            row.name,
            version=new_version,
            selector=row.selector,
            system=row.system,
            labels=row.labels,
            spec=spec.to_wire(),
        )
        changed_apps.append(row.name)
    if not changed_apps:
        return {}
    return await recompute_for_apps(namespace, changed_apps)


def app_version(app: Application) -> str:
    """The version of an app: a digest of what nodes run (name, times and version excluded)."""
    content = app.to_wire()
    for field in ("version", "createTime", "updateTime", "namespace"):
        content.pop(field, None)
    return content_version(content)


async def _write(
    namespace: str,
    rows: shadow_store.ShadowRows,
    placements: Mapping[str, Mapping[str, AppTarget | None]],
) -> DesiredChanges:
    now = time.time()
    added: list[tuple[str, str]] = []
    removed: list[tuple[str, str]] = []
    for node, placement in placements.items():
        desired = rows.desired(node)
        placed = DesiredState.from_section(desired).app_versions()
        for app, target in placement.items():
            if target is not None and app not in placed:
                added.append((app, node))
            elif target is None and app in placed:
                removed.append((app, node))
        patch = desired_patch(desired, placement)
        if patch:
            rows.update_desired(node, patch, now=now)
    written = await rows.save()
    await app_store.set_node_index(namespace, added=added, removed=removed)
    return {names.make_nid(namespace, node): change for node, change in written.items()}
