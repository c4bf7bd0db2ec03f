"""`/v1/configs`: configurations in Baetyl's ConfigurationView (data as `[{key, value}]` items).

Items are `kv` (the file's text) or `object`/`function` (a file the node downloads, stored under
`_object_<key>` as Baetyl does; agent.contracts.objects).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any, Final, Literal

from pydantic import Discriminator, Field, Tag, field_serializer, model_validator

from agent.contracts.objects import OBJECT_PREFIX, ObjectItem, is_object_key
from agent.contracts.resources import Configuration
from agent.contracts.wire import WireModel
from cloud.api.listing import Page
from cloud.api.routing import RouteTable
from cloud.api.stored_kinds import ResourceBody, ResourceView, StoredKind, add_routes, view_fields
from cloud.errors import Invalid
from cloud.services import configs
from cloud.services.configs import ConfigDraft

routes = RouteTable(prefix="/v1")
KV: Final = "kv"


class ConfigValue(WireModel):
    """A `kv` item's value: the file's text."""

    type: Literal["kv"] = KV
    value: str = ""


def _item_type(raw: Any) -> str:
    kind = raw.get("type", KV) if isinstance(raw, dict) else getattr(raw, "type", KV)
    return KV if kind == KV else "object"


ItemValue = Annotated[
    Annotated[ConfigValue, Tag(KV)] | Annotated[ObjectItem, Tag("object")],
    Discriminator(_item_type),
]
"""Baetyl's item values: `kv` (text) or `object`/`function` (a file the node downloads)."""


class ConfigItem(WireModel):
    """One file of a configuration: its name (`key`) and content, or where the node gets it."""

    key: str
    value: ItemValue

    @field_serializer("value")
    def _given_fields(self, value: ConfigValue | ObjectItem) -> dict[str, Any]:
        # An object item shows the fields it has, not the defaults of every field it could have.
        if isinstance(value, ObjectItem):
            return {"type": value.type, **json.loads(value.to_text())}
        return value.model_dump(mode="json", by_alias=True)

    @model_validator(mode="after")
    def _plain_key(self) -> ConfigItem:
        if is_object_key(self.key):
            raise ValueError(f"key {self.key!r}: keys may not start with {OBJECT_PREFIX!r}")
        return self


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
        data=sorted(
            [
                ConfigItem(key=key, value=ConfigValue(value=text))
                for key, text in config.text_items().items()
            ]
            + [ConfigItem(key=key, value=item) for key, item in config.object_items().items()],
            key=lambda item: item.key,
        ),
    )


def _draft(body: ConfigurationBody, name: str) -> ConfigDraft:
    repeated = sorted(k for k, n in Counter(item.key for item in body.data).items() if n > 1)
    if repeated:
        raise Invalid(f"data: keys must be unique, repeated: {', '.join(repeated)}")
    return ConfigDraft(
        name=name,
        labels=body.labels,
        description=body.description,
        data={_data_key(item): _data_value(item) for item in body.data},
        system=body.system,
    )


def _data_key(item: ConfigItem) -> str:
    return item.key if isinstance(item.value, ConfigValue) else OBJECT_PREFIX + item.key


def _data_value(item: ConfigItem) -> str:
    if isinstance(item.value, ConfigValue):
        return item.value.value
    return item.value.to_text()


KIND = StoredKind(
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
)
add_routes(routes, KIND)
