"""The field names a model accepts at a place in a payload, and the one a misspelt name meant.

Payloads refuse fields they do not know (a typo must not be dropped in silence); the refusal is
more useful when it says which known name was probably meant: `nodeSelecter` → `nodeSelector`.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

Location = Sequence[int | str]


def accepted(model: type[BaseModel], location: Location) -> list[str]:
    """The JSON names of the fields of the object at `location` in a `model` payload (empty
    when the location does not lead to a model)."""
    current: Any = model
    for part in location:
        current = _step(current, part)
        if current is None:
            return []
    found = _models(current)
    if not found:
        return []
    return sorted({name for each in found for name in _names(each)})


def closest(name: str, known: Sequence[str]) -> str | None:
    """The known name `name` was most likely meant to be, if one is close enough."""
    by_lower = {k.lower(): k for k in known}
    if name.lower() in by_lower:  # a matter of case: hostIp for hostIP
        return by_lower[name.lower()]
    found = difflib.get_close_matches(name, list(known), n=1, cutoff=0.7)
    return found[0] if found else None


def _step(current: Any, part: int | str) -> Any:
    """What `part` of a value of type `current` is, or None when that cannot be told."""
    for model in _models(current):
        if isinstance(part, str):
            if part == model.__name__:  # pydantic names the union member it tried
                return model
            for field_name, field in model.model_fields.items():
                if part in (_alias(model, field_name), field_name):
                    return field.annotation
    for arm in _arms(current):
        origin = typing.get_origin(arm)
        arguments = typing.get_args(arm)
        if isinstance(part, int) and origin in (list, tuple, set, frozenset) and arguments:
            return arguments[0]
        if isinstance(part, str) and origin is dict and len(arguments) == 2:
            return arguments[1]
    return None


def _arms(annotation: Any) -> list[Any]:
    """The alternatives of an annotation: `Annotated` unwrapped, unions split, None left out."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [arm for each in typing.get_args(annotation) for arm in _arms(each)]
    return [] if annotation is type(None) else [annotation]


def _models(annotation: Any) -> list[type[BaseModel]]:
    return [
        arm for arm in _arms(annotation) if isinstance(arm, type) and issubclass(arm, BaseModel)
    ]


def _names(model: type[BaseModel]) -> list[str]:
    return [_alias(model, name) for name in model.model_fields]


def _alias(model: type[BaseModel], name: str) -> str:
    """The JSON name of a field (a field whose type was a forward reference keeps no alias on
    its FieldInfo, though the generator applies to it)."""
    alias = model.model_fields[name].alias
    if alias:
        return alias
    generator = model.model_config.get("alias_generator")
    return generator(name) if callable(generator) else name
