"""Function runtimes and agent versions, as Baetyl's `GET /v1/functions` and its (deprecated)
`/v1/sysconfig` lookups list them (DESIGN §9, docs/functions.md).

Baetyl maps each runtime name to the container image of its runtime module. Here the one
runtime, `python3` (Baetyl's `python36`, `python3.x` names are taken as it), is built in: a
native node runs it with the agent's own Python, a kube node in the agent's image. There are no
function sources (Baetyl's plugins importing code from a cloud's function service): code is a
configuration, uploaded with `baetylctl config push-code`.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from agent.contracts.version import VERSION
from agent.contracts.wire import WireModel
from cloud.api.http import reply
from cloud.api.routing import RouteTable

routes = RouteTable(prefix="/v1", tags=("functions",))
BUILTIN: Final = "builtin"
RUNTIMES: Final = {"python3": BUILTIN}


class Functions(WireModel):
    """Function sources and runtimes (runtime → where it comes from)."""

    sources: list[str]
    runtimes: dict[str, str]


class SysConfig(WireModel):
    """One of Baetyl's system settings."""

    type: str
    key: str
    value: str


class SysConfigs(WireModel):
    """Baetyl's list of system settings of one type."""

    sysconfigs: list[SysConfig]


@routes.get("/functions", "List function runtimes", response=Functions)
async def functions(_: web.Request) -> web.Response:
    """The runtimes function apps may name; no function sources."""
    return reply(Functions(sources=[], runtimes=dict(RUNTIMES)))


@routes.get(
    "/sysconfig/baetyl-function-runtime", "List function runtimes (Baetyl's)", response=SysConfigs
)
async def function_runtimes(_: web.Request) -> web.Response:
    """Baetyl's deprecated form of the runtime list."""
    items = [
        SysConfig(type="baetyl-function-runtime", key=name, value=value)
        for name, value in RUNTIMES.items()
    ]
    return reply(SysConfigs(sysconfigs=items))


@routes.get(
    "/sysconfig/baetyl_version/latest", "The newest agent version (Baetyl's)", response=SysConfig
)
async def latest_version(_: web.Request) -> web.Response:
    """The agent version this cloud installs."""
    return reply(SysConfig(type="baetyl_version", key="latest", value=VERSION))
