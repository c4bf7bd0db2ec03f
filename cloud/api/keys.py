"""Typed keys of the aiohttp application and request (declared in one module, STYLE: aiohttp)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from cloud.api.routing import Route
    from cloud.mqtt.bridge import Bridge
    from cloud.services.context import Caller, CloudContext

CONTEXT: web.AppKey[CloudContext] = web.AppKey("context")
BRIDGE: web.AppKey[Bridge] = web.AppKey("mqtt_bridge")
ROUTES: web.AppKey[dict[tuple[str, str], Route]] = web.AppKey("routes")
ALL_ROUTES: web.AppKey[list[Route]] = web.AppKey("all_routes")
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
CALLER: web.RequestKey[Caller] = web.RequestKey("caller")
