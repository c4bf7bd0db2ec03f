"""`/v1/nodes`: edge nodes, their properties, sync mode, install command and shadow.

Paths, bodies and views follow Baetyl's node API; `GET/PATCH /nodes/{name}/shadow` are ours
(the full shadow document, and version-guarded writes of the desired `nodeprops`).
"""

from __future__ import annotations

import re

from aiohttp import web

from cloud.api import node_views as views
from cloud.api.auth import caller_of
from cloud.api.http import path_param, read_body, read_query, reply
from cloud.api.keys import CONTEXT
from cloud.api.resource_views import check_namespace
from cloud.api.routing import RouteTable
from cloud.errors import Invalid
from cloud.services import commands, install, node_shadow, nodes
from cloud.services.context import Caller, CloudContext
from cloud.services.nodes import NodeChanges, NodeFilter, NodeSpec, NodeState, Ready

TAGS = ("nodes",)
routes = RouteTable(prefix="/v1", tags=TAGS)
_READY = {"online": Ready.ONLINE, "offline": Ready.OFFLINE, "uninstall": Ready.NEVER}
_ETAG = re.compile(r'^(?:W/)?"?([0-9]{1,18})"?$')


@routes.get("/nodes", "List nodes", query=views.NodeQuery, response=views.NodePage)
async def list_nodes(request: web.Request) -> web.Response:
    """Nodes of the caller's namespace, newest first, without their desired state (as Baetyl)."""
    query = read_query(request, views.NodeQuery)
    offset, limit = query.window()
    total, states = await nodes.listing(
        request.app[CONTEXT],
        caller_of(request),
        NodeFilter(
            selector=query.label_filter(),
            name=query.name,
            ready=None if query.ready is None else _READY[query.ready],
            ascending=query.create_sort == "asc",
            offset=offset,
            limit=limit,
        ),
    )
    items = [views.node_view(state, desire=False) for state in states]
    return reply(views.NodePage.of(query, total, items))


@routes.post("/nodes", "Create a node", body=views.NodeCreate, response=views.NodeView)
async def create_node(request: web.Request) -> web.Response:
    """Create a node; it receives at once every app whose selector matches its labels."""
    caller = caller_of(request)
    body = await read_body(request, views.NodeCreate)
    check_namespace(body.namespace, caller)
    state = await nodes.create(request.app[CONTEXT], caller, spec_of(body))
    return reply(views.node_view(state, desire=False, report=False))


def spec_of(body: views.NodeCreate) -> NodeSpec:
    """The node a create body asks for (its namespace already checked)."""
    return NodeSpec(
        name=body.name,
        labels=body.labels,
        description=body.description,
        annotations=body.annotations,
        node_mode=body.node_mode,
        sys_apps=tuple(body.sys_apps),
    )


@routes.put(
    "/nodes",
    "Get several nodes at once (query `batch` required)",
    body=views.NodeNames,
    response=views.NodeBatch,
)
async def batch_nodes(request: web.Request) -> web.Response:
    """Baetyl's `PUT /v1/nodes?batch`: the views of up to 20 named nodes; unknown ones skipped."""
    if "batch" not in request.query:
        raise Invalid("PUT /v1/nodes needs the query parameter 'batch' (PUT /v1/nodes?batch)")
    body = await read_body(request, views.NodeNames)
    states = await nodes.get_many(request.app[CONTEXT], caller_of(request), body.names)
    items = [views.node_view(state, desire=False) for state in states]
    return reply(views.NodeBatch(total=len(items), items=items))


@routes.get("/nodes/{name}", "Get a node", response=views.NodeView)
async def get_node(request: web.Request) -> web.Response:
    """One node with its desired state and last report."""
    return reply(views.node_view(await _state(request)))


@routes.put("/nodes/{name}", "Update a node", body=views.NodeUpdate, response=views.NodeView)
async def update_node(request: web.Request) -> web.Response:
    """Change labels, description or annotations; changed labels re-match the apps."""
    ctx, caller, name = request.app[CONTEXT], caller_of(request), path_param(request, "name")
    body = await read_body(request, views.NodeUpdate)
    check_namespace(body.namespace, caller)
    state = await nodes.update(ctx, caller, name, await changes_of(ctx, caller, name, body))
    return reply(views.node_view(state, desire=False))


async def changes_of(
    ctx: CloudContext, caller: Caller, name: str, body: views.NodeUpdate
) -> NodeChanges:
    """The changes an update body asks for (its namespace already checked); another name, or
    another sync mode than the node's, is refused."""
    if body.name is not None and body.name != name:
        raise Invalid(f"name: the body names node {body.name!r} but the path names {name!r}")
    if body.mode is not None:  # a view put back says the mode it read; another is a mistake
        current = (await nodes.get(ctx, caller, name)).record.sync_mode
        if body.mode != current:
            raise Invalid(
                f"mode: the node syncs in mode {current!r}; change it with "
                f"PUT /v1/nodes/{name}/mode"
            )
    return NodeChanges(
        labels=body.labels,
        description=body.description,
        annotations=body.annotations,
        node_mode=body.node_mode,
        sys_apps=body.sys_apps,
    )


@routes.delete("/nodes/{name}", "Delete a node")
async def delete_node(request: web.Request) -> web.Response:
    """Delete a node, its shadow and its app index; the apps themselves stay."""
    await nodes.delete(request.app[CONTEXT], caller_of(request), path_param(request, "name"))
    return reply(None)


@routes.get("/nodes/{name}/apps", "List the apps a node receives", response=views.NodeAppList)
async def node_apps(request: web.Request) -> web.Response:
    """Every app in the node's desired state, system apps included, by name."""
    caller = caller_of(request)
    found = await nodes.apps_of(caller, path_param(request, "name"))
    items = [views.app_item(caller.namespace, app) for app in found]
    return reply(views.NodeAppList(total=len(items), items=items))


@routes.get("/nodes/{name}/deploys", "List the node's deployments", response=views.NodeDeploys)
async def node_deploys(request: web.Request) -> web.Response:
    """Each app the cloud wants on the node: wanted and running version, status, cause."""
    return reply(views.deploys_view(await _state(request)))


@routes.get(
    "/nodes/{name}/functions",
    "List the functions of the node's function apps",
    response=views.NodeFunctions,
)
async def node_functions(request: web.Request) -> web.Response:
    """`{"functions": ["app/function", ...]}` for the function apps in the node's desire."""
    found = await nodes.functions_of(caller_of(request), path_param(request, "name"))
    return reply(views.NodeFunctions(functions=found))


@routes.get("/nodes/{name}/stats", "Get a node's status", response=views.NodeView)
async def node_stats(request: web.Request) -> web.Response:
    """The node view without its desired state: readiness and the last report."""
    return reply(views.node_view(await _state(request), desire=False))


@routes.get(
    "/nodes/{name}/apps/{app}/logs",
    "Get recent log lines of an app on a node (text/plain, fetched from the node)",
    query=views.LogsQuery,
)
async def app_logs(request: web.Request) -> web.Response:
    """Ask the node's agent over MQTT; 409 when the node is offline, 504 when it does not answer."""
    query = read_query(request, views.LogsQuery)
    text = await commands.app_logs(
        request.app[CONTEXT],
        caller_of(request),
        path_param(request, "name"),
        path_param(request, "app"),
        commands.LogQuery(tail_lines=query.tail_lines, since_seconds=query.since_seconds),
    )
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


@routes.get(
    "/nodes/{name}/init",
    "Get the command that installs a node",
    query=views.InitQuery,
    response=views.InitCommand,
    access="admin",
)
async def node_init(request: web.Request) -> web.Response:
    """A one-liner with a fresh install token (or the operator's `baetyl-init-command`)."""
    query = read_query(request, views.InitQuery)
    cmd = await install.install_command(
        request.app[CONTEXT],
        caller_of(request),
        path_param(request, "name"),
        mode=query.mode,
        method=query.method,
    )
    return reply(views.InitCommand(cmd=cmd))


@routes.get("/nodes/{name}/properties", "Get a node's properties", response=views.NodeProperties)
async def get_properties(request: web.Request) -> web.Response:
    """Desired and reported `nodeprops` with the time each key was written."""
    return reply(views.properties_view(await _state(request)))


@routes.put(
    "/nodes/{name}/properties",
    "Set a node's desired properties",
    body=views.NodePropertiesUpdate,
    response=views.NodeProperties,
)
async def set_properties(request: web.Request) -> web.Response:
    """Replace the desired `nodeprops` (string values); the node gets the change as a delta."""
    body = await read_body(request, views.NodePropertiesUpdate)
    if body.state.desire is None:
        return reply(views.properties_view(await _state(request)))
    state = await node_shadow.set_properties(
        request.app[CONTEXT], caller_of(request), path_param(request, "name"), body.state.desire
    )
    return reply(views.properties_view(state))


@routes.put("/nodes/{name}/mode", "Set a node's sync mode", body=views.NodeModeRequest)
async def set_mode(request: web.Request) -> web.Response:
    """`cloud`: the cloud drives the node; `local`: the node's reports get no delta."""
    body = await read_body(request, views.NodeModeRequest)
    await nodes.set_sync_mode(caller_of(request), path_param(request, "name"), body.mode)
    return reply(None)


@routes.get("/nodes/{name}/shadow", "Get a node's shadow document", response=views.ShadowView)
async def get_shadow(request: web.Request) -> web.Response:
    """The full shadow (desired, reported, delta, metadata, version); `ETag` is the version."""
    return _shadow_reply(await _state(request))


@routes.patch(
    "/nodes/{name}/shadow",
    "Patch a node's desired nodeprops (If-Match: <version> required)",
    body=views.ShadowPatch,
    response=views.ShadowView,
)
async def patch_shadow(request: web.Request) -> web.Response:
    """Merge a desired `nodeprops` patch if the shadow is still at the `If-Match` version."""
    version = _if_match(request)
    body = await read_body(request, views.ShadowPatch)
    desired = body.state.desired
    patch = {"nodeprops": desired.nodeprops} if "nodeprops" in desired.model_fields_set else {}
    state = await node_shadow.patch_shadow(
        request.app[CONTEXT],
        caller_of(request),
        path_param(request, "name"),
        patch,
        if_match=version,
    )
    return _shadow_reply(state)


async def _state(request: web.Request) -> NodeState:
    return await nodes.get(request.app[CONTEXT], caller_of(request), path_param(request, "name"))


def _shadow_reply(state: NodeState) -> web.Response:
    response = reply(views.shadow_view(state))
    response.headers["ETag"] = f'"{state.document["version"]}"'
    return response


def _if_match(request: web.Request) -> int:
    """The shadow version a PATCH was computed from; writing blind is refused."""
    given = request.headers.get("If-Match")
    if given is None:
        raise Invalid(
            "If-Match: header required; send the shadow version you read "
            "(GET /v1/nodes/{name}/shadow gives it in 'version' and 'ETag')"
        )
    match = _ETAG.match(given.strip())
    if match is None or int(match.group(1)) < 1:
        raise Invalid(f"If-Match: {given!r} is not a shadow version (a positive integer)")
    return int(match.group(1))
