"""`/v1/configs`: configurations in Baetyl's ConfigurationView (data as `[{key, value}]` items)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import Field, model_validator

from agent.contracts.resources import Configuration, Description, Labels, Name
from agent.contracts.wire import WireModel
from cloud.api.auth import caller_of
from cloud.api.http import path_param, read_body, read_query, reply
from cloud.api.keys import CONTEXT
from cloud.api.listing import ListQuery, Page
from cloud.api.resource_views import AppUseList, app_uses, body_name, check_namespace, window
from cloud.api.routing import RouteTable
from cloud.errors import Invalid
from cloud.services import configs
from cloud.services.configs import ConfigDraft
from cloud.services.context import Caller

routes = RouteTable(prefix="/v1")
TAGS = ("configurations",)
KV = "kv"


class ConfigValue(WireModel):
    """An item's value; only Baetyl's `kv` type (the file's text) is supported."""

    type: str = KV
    value: str = ""

    @model_validator(mode="before")
    @classmethod
    def _only_kv(cls, raw: Any) -> Any:
        # Checked before the fields so that an `object` item gets this one message, not a list
        # of its unknown fields (`source`, `url`, ...).
        if isinstance(raw, dict) and raw.get("type", KV) != KV:
            raise ValueError(
                f"type {raw.get('type')!r} is not supported: only 'kv' items (text content) are; "
                "Baetyl's 'object' and 'function' items are not implemented"
            )
        return raw


class ConfigItem(WireModel):
    """One file of a configuration: its name (`key`) and content."""

    key: str
    value: ConfigValue


class ConfigurationBody(WireModel):
    """A configuration to create or replace; read-only view fields are accepted and ignored."""

    name: Name | None = None
    namespace: str | None = None
    labels: Labels = Field(default_factory=dict)
    description: Description = ""
    system: bool = False
    data: list[ConfigItem] = Field(default_factory=list)
    version: str | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


class ConfigurationView(WireModel):
    """A configuration (Baetyl's ConfigurationView)."""

    name: str
    namespace: str
    version: str
    labels: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    system: bool = False
    data: list[ConfigItem] = Field(default_factory=list)
    create_time: datetime | None = None
    update_time: datetime | None = None


class ConfigurationPage(Page[ConfigurationView]):
    """A page of configurations."""


def _view(config: Configuration) -> ConfigurationView:
    return ConfigurationView(
        name=config.name,
        namespace=config.namespace or "",
        version=config.version,
        labels=dict(config.labels),
        description=config.description,
        system=config.system,
        data=[
            ConfigItem(key=key, value=ConfigValue(type=KV, value=value))
            for key, value in sorted(config.data.items())
        ],
        create_time=config.create_time,
        update_time=config.update_time,
    )


def _draft(body: ConfigurationBody, caller: Caller, path: str | None) -> ConfigDraft:
    check_namespace(body.namespace, caller)
    repeated = sorted(k for k, n in Counter(item.key for item in body.data).items() if n > 1)
    if repeated:
        raise Invalid(f"data: keys must be unique, repeated: {', '.join(repeated)}")
    return ConfigDraft(
        name=body_name(body.name, path),
        labels=body.labels,
        description=body.description,
        data={item.key: item.value.value for item in body.data},
        system=body.system,
    )


@routes.route(
    "GET",
    "/configs",
    summary="List configurations",
    query=ListQuery,
    response=ConfigurationPage,
    tags=TAGS,
)
async def list_configs(request: web.Request) -> web.Response:
    """Configurations of the caller's namespace, newest first (`selector`, `name` filters)."""
    query = read_query(request, ListQuery)
    found = await configs.listing(caller_of(request), window(query))
    return reply(ConfigurationPage.of(query, found.total, [_view(c) for c in found.items]))


@routes.route(
    "POST",
    "/configs",
    summary="Create a configuration",
    body=ConfigurationBody,
    response=ConfigurationView,
    tags=TAGS,
)
async def create_config(request: web.Request) -> web.Response:
    """Create a configuration in the caller's namespace."""
    caller = caller_of(request)
    body = await read_body(request, ConfigurationBody)
    return reply(_view(await configs.create(caller, _draft(body, caller, None))))


@routes.route(
    "GET",
    "/configs/{name}",
    summary="Get a configuration",
    response=ConfigurationView,
    tags=TAGS,
)
async def get_config(request: web.Request) -> web.Response:
    """One configuration with its data."""
    return reply(_view(await configs.get(caller_of(request), path_param(request, "name"))))


@routes.route(
    "PUT",
    "/configs/{name}",
    summary="Replace a configuration",
    body=ConfigurationBody,
    response=ConfigurationView,
    tags=TAGS,
)
async def replace_config(request: web.Request) -> web.Response:
    """Replace a configuration; apps that mount it get its new version when the data changed."""
    caller = caller_of(request)
    name = path_param(request, "name")
    body = await read_body(request, ConfigurationBody)
    saved = await configs.replace(request.app[CONTEXT], caller, name, _draft(body, caller, name))
    return reply(_view(saved))


@routes.route("DELETE", "/configs/{name}", summary="Delete a configuration", tags=TAGS)
async def delete_config(request: web.Request) -> web.Response:
    """Delete a configuration that no app mounts."""
    await configs.delete(caller_of(request), path_param(request, "name"))
    return reply(None)


@routes.route(
    "GET",
    "/configs/{name}/apps",
    summary="List the applications that mount a configuration",
    response=AppUseList,
    tags=TAGS,
)
async def config_apps(request: web.Request) -> web.Response:
    """The apps whose volumes mount the configuration."""
    return reply(app_uses(await configs.users(caller_of(request), path_param(request, "name"))))
