"""`/v1/configs`: configurations in Baetyl's ConfigurationView (data as `[{key, value}]` items)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import Field, model_validator

from agent.contracts.resources import Configuration
from agent.contracts.wire import WireModel
from cloud.api.listing import Page
from cloud.api.routing import RouteTable
from cloud.api.stored_kinds import ResourceBody, ResourceView, StoredKind, add_routes, view_fields
from cloud.errors import Invalid
from cloud.services import configs
from cloud.services.configs import ConfigDraft

routes = RouteTable(prefix="/v1")
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


class ConfigurationBody(ResourceBody):
    """A configuration to create or replace; read-only view fields are accepted and ignored."""

    system: bool = False
    data: list[ConfigItem] = Field(default_factory=list)


class ConfigurationView(ResourceView):
    """A configuration (Baetyl's ConfigurationView)."""

    system: bool = False
    data: list[ConfigItem] = Field(default_factory=list)


class ConfigurationPage(Page[ConfigurationView]):
    """A page of configurations."""


def _view(config: Configuration) -> ConfigurationView:
    return ConfigurationView(
        **view_fields(config),
        system=config.system,
        data=[
            ConfigItem(key=key, value=ConfigValue(type=KV, value=value))
            for key, value in sorted(config.data.items())
        ],
    )


def _draft(body: ConfigurationBody, name: str) -> ConfigDraft:
    repeated = sorted(k for k, n in Counter(item.key for item in body.data).items() if n > 1)
    if repeated:
        raise Invalid(f"data: keys must be unique, repeated: {', '.join(repeated)}")
    return ConfigDraft(
        name=name,
        labels=body.labels,
        description=body.description,
        data={item.key: item.value.value for item in body.data},
        system=body.system,
    )


add_routes(
    routes,
    StoredKind(
        path="/configs",
        one="a configuration",
        many="configurations",
        body=ConfigurationBody,
        view=ConfigurationView,
        page=ConfigurationPage,
        service=configs,
        draft=_draft,
        show=_view,
        show_listed=_view,
    ),
)
