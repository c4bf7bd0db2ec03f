"""`/v1/quotas` and `/v1/properties/{name}`: the caller's limits and the cloud's global settings."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from agent.contracts.wire import WireModel
from cloud.api.auth import caller_of
from cloud.api.http import path_param, reply
from cloud.api.keys import CONTEXT
from cloud.api.routing import RouteTable
from cloud.services import properties, quotas

routes = RouteTable(prefix="/v1")


class QuotaUsage(WireModel):
    """How much of each quota the namespace uses."""

    max_node_count: int
    max_app_count: int


class QuotaView(WireModel):
    """Baetyl's `{quotaName: limit}` (0 = unlimited), plus the usage under `used`."""

    max_node_count: int
    max_app_count: int
    used: QuotaUsage


class PropertyView(WireModel):
    """A global cloud property."""

    name: str
    value: str
    create_time: datetime
    update_time: datetime


@routes.get("/quotas", "Get the namespace's quotas", response=QuotaView, tags=("quotas",))
async def get_quotas(request: web.Request) -> web.Response:
    """The limits of the caller's namespace and how much of each is used."""
    found = await quotas.states(request.app[CONTEXT].settings.quotas, caller_of(request).namespace)
    nodes, apps = found[quotas.NODES], found[quotas.APPS]
    return reply(
        QuotaView(
            max_node_count=nodes.limit,
            max_app_count=apps.limit,
            used=QuotaUsage(max_node_count=nodes.used, max_app_count=apps.used),
        )
    )


@routes.get(
    "/properties/{name}", "Get a global property", response=PropertyView, tags=("properties",)
)
async def get_property(request: web.Request) -> web.Response:
    """One property set by the operator, or 404."""
    found = await properties.get(path_param(request, "name"))
    return reply(
        PropertyView(
            name=found.name,
            value=found.value,
            create_time=found.create_time,
            update_time=found.update_time,
        )
    )
