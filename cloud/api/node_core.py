"""`GET/PUT /v1/nodes/{name}/core/configs` and `GET .../core/versions`: Baetyl's core configs and
agent versions of a node (DESIGN §6).

`frequency` (1-300 s) and `apiport` (1024-65535) are required, as in Baetyl; `agentport`
(1024-65535) defaults to 30080, `logLevel` (debug, info, warn, error) to `info`, `byteUnit` to
`KB`, `speedLimit` to 0. `frequency` and `logLevel` reach the agent through its shadow and take
effect without a restart (cloud.services.node_core).
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, StringConstraints

from agent.contracts.core_settings import MAX_FREQUENCY, MIN_FREQUENCY
from agent.contracts.wire import WireModel
from cloud.api.auth import caller_of
from cloud.api.http import path_param, read_body, reply
from cloud.api.keys import CONTEXT
from cloud.api.routing import RouteTable
from cloud.services import node_core
from cloud.services.node_core import CoreConfigs

routes = RouteTable(prefix="/v1", tags=("nodes",))
ServicePort = Annotated[int, Field(ge=1024, le=65535)]


class CoreConfigsBody(WireModel):
    """Baetyl's NodeCoreConfigs as a request."""

    version: Annotated[str, StringConstraints(max_length=64)] = ""
    frequency: Annotated[int, Field(ge=MIN_FREQUENCY, le=MAX_FREQUENCY)]
    apiport: ServicePort
    agentport: ServicePort = 30080
    log_level: Literal["debug", "info", "warn", "error", ""] = "info"
    byte_unit: Annotated[str, StringConstraints(max_length=8)] = "KB"
    speed_limit: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0


class CoreConfigsView(WireModel):
    """Baetyl's NodeCoreConfigs as an answer; `version` is the agent's."""

    version: str
    frequency: int
    apiport: int
    agentport: int
    log_level: str
    byte_unit: str
    speed_limit: int


def _view(configs: CoreConfigs) -> CoreConfigsView:
    return CoreConfigsView(
        version=configs.version,
        frequency=configs.frequency,
        apiport=configs.apiport,
        agentport=configs.agentport,
        log_level=configs.log_level,
        byte_unit=configs.byte_unit,
        speed_limit=configs.speed_limit,
    )


@routes.get("/nodes/{name}/core/configs", "Get a node's core configs", response=CoreConfigsView)
async def get_core_configs(request: web.Request) -> web.Response:
    """What was set (Baetyl's defaults for the rest) and the agent version the node runs."""
    configs = await node_core.get(
        request.app[CONTEXT], caller_of(request), path_param(request, "name")
    )
    return reply(_view(configs))


@routes.put(
    "/nodes/{name}/core/configs",
    "Set a node's core configs",
    body=CoreConfigsBody,
    response=CoreConfigsView,
)
async def put_core_configs(request: web.Request) -> web.Response:
    """Keep the configs; `frequency` and `logLevel` reach the agent at once."""
    body = await read_body(request, CoreConfigsBody)
    wanted = CoreConfigs(
        version=body.version,
        frequency=body.frequency,
        apiport=body.apiport,
        agentport=body.agentport,
        log_level=body.log_level or "info",
        byte_unit=body.byte_unit or "KB",
        speed_limit=body.speed_limit,
    )
    configs = await node_core.put(
        request.app[CONTEXT], caller_of(request), path_param(request, "name"), wanted
    )
    return reply(_view(configs))


class UpgradeReport(WireModel):
    """The node's report of its last agent upgrade."""

    version: str
    state: str
    previous: str = ""
    message: str = ""
    time: str = ""


class CoreVersionsView(WireModel):
    """Baetyl's `{"versions": [previous?, current, latest?]}`, and what stands behind it."""

    versions: list[str]
    current: str
    """The version the node reports it runs."""
    wanted: str
    """The version its desired `core` entry asks for (the current one when none is asked)."""
    previous: str
    latest: str
    """The newest version this cloud serves, when newer than the current one."""
    available: list[str]
    """Every version this cloud serves a wheel of (`--dist-dir`), oldest first."""
    upgrade: UpgradeReport | None = None


@routes.get(
    "/nodes/{name}/core/versions", "List a node's agent versions", response=CoreVersionsView
)
async def get_core_versions(request: web.Request) -> web.Response:
    """Previous, current and latest agent version, as Baetyl lists them, and the last upgrade."""
    found = await node_core.versions(
        request.app[CONTEXT], caller_of(request), path_param(request, "name")
    )
    upgrade = found.upgrade
    return reply(
        CoreVersionsView(
            versions=found.versions,
            current=found.current,
            wanted=found.wanted,
            previous=found.previous,
            latest=found.latest,
            available=found.available,
            upgrade=UpgradeReport.model_validate(upgrade, strict=False) if upgrade else None,
        )
    )
