"""Configuration use cases: create, read, list, replace, delete, and the apps that mount one.

A configuration's version is a digest of its data, so it changes exactly when the files a node
would write change; a new version is pushed into every app that mounts it (and so into the
desired state of their nodes) in the same transaction as the update.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from agent.contracts.resources import CONFIG_DATA_MAX_BYTES, Configuration, ResourceKind
from cloud.errors import Invalid, NotFound
from cloud.services import desired, objects
from cloud.services.context import Caller, CloudContext
from cloud.services.resource_rules import (
    AppUse,
    DataTooLarge,
    Window,
    apps_using,
    invalid_from,
    pick,
    refuse_if_used,
    refuse_reserved_name,
)
from cloud.services.tokens import require_admin
from cloud.services.versions import content_version
from cloud.store import configs as store
from cloud.store import namespaces as namespace_store
from cloud.store.db import transaction
from cloud.store.desired import DesiredChanges

KIND = "config"  # the resource name in Baetyl's "The (config) resource (x) is not found."


@dataclass(frozen=True)
class ConfigDraft:
    """A configuration as a request wants it; checked by the service before anything is stored."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    data: Mapping[str, str] = field(default_factory=dict)
    system: bool = False


@dataclass(frozen=True)
class ConfigPage:
    """Configurations of one list page and how many matched in all."""

    total: int
    items: list[Configuration]


def config_version(data: Mapping[str, str]) -> str:
    """The version of configuration data: what a node writes, nothing else."""
    return content_version(dict(data))


async def create(ctx: CloudContext, caller: Caller, draft: ConfigDraft) -> Configuration:
    """Store a new configuration (no app can reference it yet, so nothing to propagate)."""
    require_admin(caller)
    refuse_reserved_name(draft.name, "configuration")
    if draft.system:
        raise Invalid("system: system configurations are created by the cloud, not over the API")
    data = await objects.pin(ctx, caller.namespace, dict(draft.data))
    config = _checked(draft, caller.namespace, data)
    async with transaction():
        await namespace_store.lock(caller.namespace)
        return await store.insert(caller.namespace, config)


async def get(ctx: CloudContext, caller: Caller, name: str) -> Configuration:
    """One configuration with its data."""
    del ctx
    config = await store.get(caller.namespace, name)
    if config is None:
        raise NotFound(KIND, name, caller.namespace)
    return config


async def listing(caller: Caller, window: Window) -> ConfigPage:
    """A page of the namespace's configurations, newest first (system ones hidden)."""
    index = await store.label_index(caller.namespace, name=window.name)
    total, ids = pick(index, window)
    return ConfigPage(total, await store.by_ids(ids))


async def replace(
    ctx: CloudContext, caller: Caller, name: str, draft: ConfigDraft
) -> Configuration:
    """Replace a configuration; a new version (data changed) reaches every app that mounts it."""
    require_admin(caller)
    namespace = caller.namespace
    if draft.name != name:
        raise Invalid(f"name: the body names configuration {draft.name!r}, the path {name!r}")
    wanted = _checked(draft, namespace, await objects.pin(ctx, namespace, dict(draft.data)))
    changed_nodes: DesiredChanges = {}
    async with transaction():
        await namespace_store.lock(namespace)
        current = await store.get(namespace, name)
        if current is None:
            raise NotFound(KIND, name, namespace)
        if draft.system != current.system:
            raise Invalid("system: whether a configuration is a system one cannot be changed")
        if current.system and dict(wanted.labels) != dict(current.labels):
            raise Invalid("labels: the labels of a system configuration cannot be changed")
        if _content(wanted) == _content(current):
            return current
        saved = await store.update(namespace, wanted)
        if saved is None:  # pragma: no cover - the row is locked by the namespace lock
            raise NotFound(KIND, name, namespace)
        if saved.version != current.version:
            changed_nodes = await desired.propagate_resource(
                namespace, ResourceKind.CONFIGURATION, name, saved.version
            )
    await ctx.desired_changed(changed_nodes)
    return saved


async def delete(caller: Caller, name: str) -> None:
    """Remove a configuration that no app mounts (403 `ErrResourceHasBeenUsed` otherwise)."""
    require_admin(caller)
    refuse_reserved_name(name, "configuration")
    namespace = caller.namespace
    async with transaction():
        await namespace_store.lock(namespace)
        await refuse_if_used(namespace, ResourceKind.CONFIGURATION, name, "configuration")
        if not await store.delete(namespace, name):
            raise NotFound(KIND, name, namespace)


async def users(caller: Caller, name: str) -> list[AppUse]:
    """The apps that mount the configuration."""
    if not await store.exists(caller.namespace, name):
        raise NotFound(KIND, name, caller.namespace)
    return await apps_using(caller.namespace, ResourceKind.CONFIGURATION, name)


def _checked(draft: ConfigDraft, namespace: str, data: dict[str, str]) -> Configuration:
    """The configuration to store: `draft` with `data` (its object items pinned), validated."""
    size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    if size > CONFIG_DATA_MAX_BYTES:
        raise DataTooLarge(
            f"data: the configuration data is {size} bytes; it must be under 4 MiB "
            f"(at most {CONFIG_DATA_MAX_BYTES} bytes as compact JSON)"
        )
    try:
        return Configuration.model_validate(
            {
                "name": draft.name,
                "namespace": namespace,
                "version": config_version(data),
                "labels": dict(draft.labels),
                "description": draft.description,
                "system": draft.system,
                "data": data,
            }
        )
    except ValidationError as exc:
        raise invalid_from(exc, "configuration") from exc


def _content(config: Configuration) -> tuple[object, ...]:
    return (config.version, dict(config.labels), config.description, dict(config.data))
