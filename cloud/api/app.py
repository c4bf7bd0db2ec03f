"""The aiohttp application of the cloud: `create_app(settings) -> web.Application`.

The store (Tortoise), the secret key and the first-start tenant are one `cleanup_ctx` entry, so
they open when the server starts and close when it stops, in tests as in production; the MQTT
bridge, when configured, is the next entry (started after the store, stopped before it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable

from aiohttp import web

from cloud import logs
from cloud.api import (
    apps,
    certificates,
    configs,
    install,
    misc,
    namespace,
    node_core,
    nodes,
    objects,
    registries,
    runtimes,
    secrets,
    system,
    tokens,
    yaml_files,
)
from cloud.api.auth import auth_middleware
from cloud.api.http import MAX_BODY_BYTES, error_middleware, path_middleware
from cloud.api.keys import ALL_ROUTES, BRIDGE, CONTEXT, ROUTES
from cloud.api.routing import RouteTable
from cloud.mqtt.bridge import Bridge
from cloud.services import apps as apps_service
from cloud.services import bootstrap, deferred
from cloud.services.context import AccessListener, DesiredListener
from cloud.settings import CloudSettings

ROUTE_MODULES = (
    system,
    tokens,
    apps,
    nodes,
    node_core,
    namespace,
    misc,
    configs,
    secrets,
    certificates,
    registries,
    objects,
    runtimes,
    install,
    yaml_files,
)


def create_app(
    settings: CloudSettings,
    *,
    desired_listeners: Iterable[DesiredListener] = (),
    access_listeners: Iterable[AccessListener] = (),
) -> web.Application:
    """Build the REST application; nothing is opened until the app starts."""
    logs.redact_library_logs()
    app = web.Application(
        middlewares=[system.metrics_middleware, error_middleware, auth_middleware, path_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    table = RouteTable()
    for module in ROUTE_MODULES:
        table.extend(module.routes)
    app[ROUTES] = table.install(app)
    app[ALL_ROUTES] = list(table.routes)
    app[system.METRICS] = system.Metrics()
    listeners = list(desired_listeners)
    bridge = None if settings.mqtt is None else Bridge(settings.mqtt)
    if bridge is not None:
        listeners.append(bridge.desired_changed)
    app.cleanup_ctx.append(_store_context(settings, listeners, list(access_listeners)))
    app.cleanup_ctx.append(_deferred_context)
    if bridge is not None:
        app[BRIDGE] = bridge
        app.cleanup_ctx.append(_bridge_context(bridge))
    return app


def _store_context(
    settings: CloudSettings, listeners: list[DesiredListener], access: list[AccessListener]
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def store(app: web.Application) -> AsyncIterator[None]:
        app[CONTEXT] = await bootstrap.start(settings, listeners, access)
        try:
            yield
        finally:
            await bootstrap.stop()

    return store


async def _deferred_context(app: web.Application) -> AsyncIterator[None]:
    """The task that deploys deferred apps when their time comes (after the store opens)."""
    task = asyncio.create_task(
        deferred.run(app[CONTEXT], apps_service.release), name="cloud:deferred-deployments"
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _bridge_context(bridge: Bridge) -> Callable[[web.Application], AsyncIterator[None]]:
    # After the store context, so the bridge starts after the store opens and stops before it
    # closes (aiohttp unwinds cleanup contexts in reverse order).
    async def mqtt(app: web.Application) -> AsyncIterator[None]:
        bridge.start(app[CONTEXT])
        try:
            yield
        finally:
            await bridge.stop()

    return mqtt
