"""`/v1/active` and `/v1/init/*`: what an installing node calls, authenticated by its install token.

These routes are anonymous to the bearer-token middleware (DESIGN §6): the install token in the
query or body is the credential, checked by cloud.services.install. Wheels are public software
and are served without a token.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import StringConstraints

from agent.contracts.activation import ActivateRequest, ActivateResponse, ActivationInfo
from agent.contracts.wire import WireModel
from cloud.api.http import path_param, read_body, read_query, reply
from cloud.api.keys import CONTEXT
from cloud.api.routing import RouteTable
from cloud.services import install

TAGS = ("install",)
routes = RouteTable(prefix="/v1", tags=TAGS)
SHELL_SCRIPT = "text/x-shellscript"
YAML = "application/yaml"


class TokenQuery(WireModel):
    """The install token, given in the query string."""

    token: Annotated[str, StringConstraints(min_length=1, max_length=2048)]


@routes.get(
    "/active",
    "Which node an install token activates (the token is checked, not consumed)",
    query=TokenQuery,
    response=ActivationInfo,
    access="anonymous",
)
async def activation_info(request: web.Request) -> web.Response:
    """baetyl-init asks this first, to put the node id into its CSR."""
    query = read_query(request, TokenQuery)
    return reply(await install.activation_info(request.app[CONTEXT], query.token))


@routes.post(
    "/active",
    "Activate a node: sign its CSR and consume the install token",
    body=ActivateRequest,
    response=ActivateResponse,
    access="anonymous",
)
async def activate(request: web.Request) -> web.Response:
    """The node's certificate, the CA and the broker address, for a valid unused token."""
    body = await read_body(request, ActivateRequest)
    return reply(await install.activate(request.app[CONTEXT], body))


@routes.get(
    "/init/baetyl-install.sh",
    "The install script of a native node (text/x-shellscript)",
    query=TokenQuery,
    access="anonymous",
)
async def install_script(request: web.Request) -> web.Response:
    """A POSIX sh script that installs the agent and runs baetyl-init with the token."""
    query = read_query(request, TokenQuery)
    text = await install.install_script(request.app[CONTEXT], query.token)
    return web.Response(text=text, content_type=SHELL_SCRIPT, charset="utf-8")


@routes.get(
    "/init/baetyl-init-deployment.yml",
    "The Kubernetes manifest of a K3s/Kubernetes node (application/yaml)",
    query=TokenQuery,
    access="anonymous",
)
async def deployment_manifest(request: web.Request) -> web.Response:
    """Namespaces, RBAC, the token Secret, the core.yml base and the agent Deployment."""
    query = read_query(request, TokenQuery)
    text = await install.deployment_manifest(request.app[CONTEXT], query.token)
    return web.Response(text=text, content_type=YAML, charset="utf-8")


@routes.get(
    "/init/dist/{file}",
    "An agent wheel from the cloud's dist directory",
    access="anonymous",
)
async def dist_file(request: web.Request) -> web.StreamResponse:
    """The wheel the install script names; only `baetyl_py-*.whl` files are served."""
    path = await install.dist_file(request.app[CONTEXT], path_param(request, "file"))
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})
