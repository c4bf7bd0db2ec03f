"""The base of every JSON model on the wire: camelCase names, strict types, one decode error type.

Payloads and resources subclass `WireModel`; `decode` turns bytes from MQTT or HTTP into a model or
a `PayloadError` that lists every problem at once, so a bad message gets one clear answer.
"""

from __future__ import annotations

import json
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from agent.contracts import field_names

JSONObject = dict[str, Any]
ModelT = TypeVar("ModelT", bound="WireModel")


class PayloadError(ValueError):
    """A payload that is not valid UTF-8 JSON of the expected shape; `problems` lists each one."""

    def __init__(self, what: str, problems: list[str]) -> None:
        self.what = what
        self.problems = problems
        super().__init__(f"invalid {what}: " + "; ".join(problems))


class WireModel(BaseModel):
    """Strict camelCase JSON model; unknown fields are refused because these payloads are ours."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
    )

    def to_wire(self) -> JSONObject:
        """The JSON object for this model, with Baetyl's field names and without unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON, as published on MQTT."""
        return json.dumps(self.to_wire(), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, payload: bytes | str) -> Self:
        """Parse a JSON payload into this model or raise PayloadError naming every problem."""
        return decode(cls, payload)


def decode(model: type[ModelT], payload: bytes | str) -> ModelT:
    """Parse `payload` as `model`; PayloadError says what is wrong and where."""
    what = _describe(model)
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(what, [f"not UTF-8 ({exc.reason} at byte {exc.start})"]) from exc
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise PayloadError(what, describe_errors(exc, model)) from exc


def validate(model: type[ModelT], value: object) -> ModelT:
    """Validate an already-parsed JSON value (a dict from a REST body, say) as `model`."""
    # Going through JSON text gives parsed values the same strictness rules as raw payloads
    # (a datetime arrives as a string either way), so REST bodies and MQTT payloads agree.
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadError(_describe(model), [f"not a JSON value ({exc})"]) from exc
    return decode(model, text)


def describe_errors(exc: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """One human line per validation error: `path.to.field: message`; with the `model` that
    was validated, an unknown field names the known one it was probably meant to be."""
    lines = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"]) or "(payload)"
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if error["type"] == "extra_forbidden" and model is not None and error["loc"]:
            message = _unknown_field(model, error["loc"])
        lines.append(f"{location}: {message}")
    return lines


def _unknown_field(model: type[BaseModel], location: tuple[int | str, ...]) -> str:
    name = str(location[-1])
    known = field_names.accepted(model, location[:-1])
    meant = field_names.closest(name, known)
    if meant is not None:
        return f"unknown field; did you mean {meant!r}?"
    if known and len(known) <= 40:
        return "unknown field; known here: " + ", ".join(known)
    return "unknown field"


def _describe(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip().splitlines()
    return f"{model.__name__} payload" if not doc else f"{model.__name__} ({doc[0].rstrip('.')})"
