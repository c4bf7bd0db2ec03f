"""Application use cases: create, update, delete, read; every change re-places the app on nodes.

Each write is one transaction: the app row, its resource index and the desired state of every
affected node change together, and the desired-changed listeners hear of it after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from agent.contracts import selectors, spec_rules
from agent.contracts.resources import Application
from agent.contracts.wire import PayloadError, validate
from cloud.errors import Conflict, Invalid, NotFound
from cloud.services import deferred, desired, quotas
from cloud.services.app_spec import (
    ApplicationView,
    Resolved,
    referenced,
    resource_refs,
    to_spec,
    to_view,
)
from cloud.services.context import Caller, CloudContext
from cloud.services.tokens import require_admin
from cloud.store import apps as store
from cloud.store import namespaces as namespace_store
from cloud.store.db import transaction
from cloud.store.desired import DesiredChanges
from cloud.store.models import Application as AppRow

KIND = "application"


@dataclass(frozen=True)
class AppPage:
    """Apps of one list page and how many matched in all."""

    total: int
    items: list[ApplicationView]


async def create(ctx: CloudContext, caller: Caller, view: ApplicationView) -> ApplicationView:
    """Store a new app and place it on the nodes it matches."""
    require_admin(caller)
    namespace = caller.namespace
    _refuse_baetyl_name(view.name)
    if view.system:
        # System apps are the platform's own (Baetyl's core, init, broker). Nothing in this
        # cloud makes them yet, and a tenant's "system" app would escape the app quota and land
        # in `desired.sysapps`: refused, like system configurations (decision 84).
        raise Invalid("system: system applications are created by the cloud, not over the API")
    async with transaction():
        await namespace_store.lock(namespace)
        if await store.get(namespace, view.name) is not None:
            raise Conflict(f"application {view.name!r} already exists")
        await quotas.check(ctx.settings.quotas, namespace, quotas.APPS)
        spec = await _resolve(namespace, view)
        _check_deferral(spec)
        await _save(namespace, spec)
        changed = await desired.recompute_for_apps(namespace, [spec.name])
    created = await get(caller, view.name)
    ctx.schedule_changed.set()  # a deferred app may be due sooner than the scheduler thinks
    await ctx.desired_changed(changed)  # last: the pushes must not hold up this answer
    return created


async def update(
    ctx: CloudContext, caller: Caller, name: str, view: ApplicationView
) -> ApplicationView:
    """Replace an app; its version changes only when what nodes run changes."""
    require_admin(caller)
    namespace = caller.namespace
    if view.name != name:
        raise Invalid(f"the body names application {view.name!r}, the path {name!r}")
    changed: DesiredChanges = {}
    async with transaction():
        await namespace_store.lock(namespace)
        row = await store.get(namespace, name)
        if row is None:
            raise NotFound(KIND, name, namespace)
        if view.system != row.system:
            raise Invalid("system: whether an application is a system one cannot be changed")
        spec = await _resolve(namespace, view)
        _check_deferral(spec)
        if spec.version != row.version or _routing(spec) != (row.selector, row.system, row.labels):
            await _save(namespace, spec)
            changed = await desired.recompute_for_apps(namespace, [name])
    updated = await get(caller, name)
    ctx.schedule_changed.set()
    await ctx.desired_changed(changed)  # last: the pushes must not hold up this answer
    return updated


async def delete(ctx: CloudContext, caller: Caller, name: str) -> None:
    """Remove an app from the store and from every node's desired state."""
    require_admin(caller)
    namespace = caller.namespace
    async with transaction():
        await namespace_store.lock(namespace)
        if await store.get(namespace, name) is None:
            raise NotFound(KIND, name, namespace)
        await store.delete(namespace, name)
        changed = await desired.recompute_for_apps(namespace, [name])
    await ctx.desired_changed(changed)


async def get(caller: Caller, name: str) -> ApplicationView:
    """One app as the REST API shows it."""
    row = await store.get(caller.namespace, name)
    if row is None:
        raise NotFound(KIND, name, caller.namespace)
    return (await _views(caller.namespace, [row]))[0]


async def listing(
    caller: Caller, *, selector: str, name: str, offset: int, limit: int | None
) -> AppPage:
    """A page of the namespace's apps, newest first, filtered by label selector and name."""
    namespace = caller.namespace
    if selector.strip():
        match = selectors.parse(selector)
        ids = [
            i for i, labels in await store.all_labels(namespace, name=name) if match.matches(labels)
        ]
        window = ids[offset : offset + limit if limit is not None else None]
        rows = await store.by_ids(window)
        total = len(ids)
    else:
        total, rows = await store.page(namespace, name=name, offset=offset, limit=limit)
    return AppPage(total, await _views(namespace, rows))


async def references(
    caller: Caller, name: str, *, kind: str, secret_type: str | None
) -> list[tuple[str, str]]:
    """(name, current version) of the configs (kind `configuration`) or the secrets of one type
    (kind `secret`, `secret_type` config, certificate or registry) that the app references."""
    namespace = caller.namespace
    if await store.get(namespace, name) is None:
        raise NotFound(KIND, name, namespace)
    wanted = [n for k, n in await store.resources_of(namespace, name) if k == kind]
    if kind == "configuration":
        configs, _ = await store.resource_versions(namespace, wanted, ())
        return sorted(configs.items())
    _, secrets = await store.resource_versions(namespace, (), wanted)
    return sorted((n, v) for n, (v, t) in secrets.items() if t == secret_type)


async def nodes_of(caller: Caller, name: str) -> list[str]:
    """Names of the nodes the app goes to."""
    if await store.get(caller.namespace, name) is None:
        raise NotFound(KIND, name, caller.namespace)
    return sorted(await store.nodes_of_apps(caller.namespace, [name]))


async def _resolve(namespace: str, view: ApplicationView) -> Application:
    configs, secrets = referenced(view)
    found_configs, found_secrets = await store.resource_versions(namespace, configs, secrets)
    spec = to_spec(view, Resolved(found_configs, found_secrets))
    try:
        spec_rules.check(spec)  # the rules the agent applies again before it runs the spec
    except spec_rules.SpecError as exc:
        raise Invalid(f"invalid request body: {exc}") from None
    spec.namespace = namespace
    spec.version = desired.app_version(spec)
    return spec


async def _save(namespace: str, spec: Application) -> None:
    spec.create_time = None  # the row keeps the times; the spec holds what nodes run
    spec.update_time = None
    selector, system, labels = _routing(spec)
    await store.save(
        namespace,
        spec.name,
        version=spec.version,
        selector=selector,
        system=system,
        labels=labels,
        spec=spec.to_wire(),
    )
    await store.set_resources(namespace, spec.name, resource_refs(spec))


def _routing(spec: Application) -> tuple[str, bool, dict[str, str]]:
    """What matching reads: a deferred app waiting for its time matches no node."""
    selector = "" if deferred.waiting(spec, datetime.now(UTC)) else spec.selector
    return selector, spec.system, dict(spec.labels)


def _check_deferral(spec: Application) -> None:
    """Baetyl's rule: a deferred deployment's time lies ahead."""
    if spec.cron_status == 1 and not deferred.waiting(spec, datetime.now(UTC)):
        raise Invalid("cronTime: with cronStatus 1 (deploy later) it must be a time to come")


async def release(ctx: CloudContext, namespace: str, name: str) -> bool:
    """Deploy a deferred app whose time has come: `cronStatus` 2, placed on its nodes. False
    when there is nothing to do (deleted, changed, released by another replica, not due)."""
    async with transaction():
        await namespace_store.lock(namespace)
        row = await store.get(namespace, name)
        if row is None:
            return False
        spec = _stored(row)
        if spec.cron_status != 1 or deferred.waiting(spec, datetime.now(UTC)):
            return False
        spec.cron_status = 2
        spec.version = desired.app_version(spec)
        await _save(namespace, spec)
        changed = await desired.recompute_for_apps(namespace, [name])
    await ctx.desired_changed(changed)
    return True


async def _views(namespace: str, rows: list[AppRow]) -> list[ApplicationView]:
    parsed = [_stored(row) for row in rows]
    secret_names = {
        ref.name for app in parsed for v in app.volumes if (ref := v.secret) is not None
    }
    _, secrets = await store.resource_versions(namespace, (), secret_names)
    types = {name: kind for name, (_, kind) in secrets.items()}
    return [to_view(app, types) for app in parsed]


def _stored(row: AppRow) -> Application:
    try:
        app = validate(Application, row.spec)
    except PayloadError as exc:  # a stored spec that no longer validates is a bug, not a 400
        raise RuntimeError(f"stored application {row.name!r} is invalid: {exc}") from exc
    app.create_time = row.create_time
    app.update_time = row.update_time
    return app


def _refuse_baetyl_name(name: str) -> None:
    if "baetyl" in name:
        raise Invalid(
            f"application name {name!r} must not contain 'baetyl' (reserved for system apps)"
        )
