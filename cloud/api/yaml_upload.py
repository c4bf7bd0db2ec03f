"""The file of `/v1/yaml`: the multipart field `file`, read within the body limit, and its YAML
documents as JSON values, numbered as they stand in the file.

The YAML is read as strictly as `read_body` reads JSON: a key repeated in a mapping is refused
(the last one would win unseen), and so are aliases (`*name`, whose expansion can blow a small
file up) and values JSON has no room for (`!!binary`, sets, NaN). Timestamps become RFC 3339
text and scalar keys text, as Kubernetes' YAML reader makes them.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import yaml
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from cloud.api.http import MAX_BODY_BYTES
from cloud.errors import Invalid

try:  # libyaml's parser where PyYAML was built with it: a few times faster
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

FIELD: Final = "file"
MAX_DOCUMENTS: Final = 100
_HOW = "send the file as the multipart/form-data field 'file' (curl -F file=@resources.yaml)"


@dataclass(frozen=True)
class Document:
    """One non-empty document of the file: where it stands and its value (a JSON object)."""

    number: int
    line: int
    value: dict[str, Any]


async def read_file(request: web.Request) -> bytes:
    """The bytes of the request's `file` field; Invalid when there is none or it is too big."""
    if request.content_type != "multipart/form-data":
        raise Invalid(f"the body is {request.content_type or 'missing'}; {_HOW}")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Invalid(f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        form = await request.post()  # bounded by the app's client_max_size
    except web.HTTPRequestEntityTooLarge:
        raise Invalid(f"request body is larger than {MAX_BODY_BYTES} bytes") from None
    except (ValueError, HttpProcessingError) as exc:  # a part's headers can be malformed too
        raise Invalid(f"the multipart body cannot be read ({_said(exc)}); {_HOW}") from exc
    fields = form.getall(FIELD, [])
    if len(fields) != 1:
        given = "no field 'file'" if not fields else "the field 'file' more than once"
        raise Invalid(f"the form has {given}; {_HOW}")
    (field,) = fields
    if isinstance(field, web.FileField):
        data: bytes = field.file.read()
        return data
    return field.encode("utf-8") if isinstance(field, str) else bytes(field)


def _said(exc: Exception) -> str:
    """The parser's complaint on one line (aiohttp's header errors span two)."""
    if isinstance(exc, HttpProcessingError):
        return " ".join(str(exc.message).split())
    return " ".join(str(exc).split())


async def read_documents(request: web.Request) -> list[Document]:
    """The documents of the request's file. YAML is read in a worker thread: a file near the
    body limit takes seconds to construct, which must not stall the event loop."""
    raw = await read_file(request)
    return await asyncio.to_thread(documents, raw)


def documents(raw: bytes) -> list[Document]:
    """The file's documents (split on `---`), empty ones skipped but counted in the numbering."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(f"the file is not UTF-8 text (byte {exc.start})") from None
    found: list[Document] = []
    loader = _StrictLoader(text)
    number = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            number += 1
            if node is None:
                continue
            line = node.start_mark.line + 1
            _refuse_aliases(node)
            value = loader.construct_document(node)
            if value is None:
                continue
            where = f"document {number} (line {line})"
            if not isinstance(value, dict):
                raise Invalid(f"{where}: expected a mapping, found {_type_name(value)}")
            if len(found) == MAX_DOCUMENTS:
                raise Invalid(f"the file holds more than {MAX_DOCUMENTS} documents; split it")
            found.append(Document(number, line, _plain(value, where)))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise Invalid(f"the file is not valid YAML: {at}{what}") from None
    except yaml.YAMLError as exc:
        raise Invalid(f"the file is not valid YAML: {exc}") from None
    except RecursionError:
        raise Invalid("the file is not valid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    if not found:
        raise Invalid("the file holds no document")
    return found


class _StrictLoader(_Loader):
    """The safe loader refusing repeated keys; aliases are refused by `_refuse_aliases` before
    a document is constructed."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            marker = _key_text(key) if _is_scalar(key) else id(key_node)
            if marker in seen:
                raise yaml.MarkedYAMLError(
                    problem=f"the key {key!r} is repeated in this mapping",
                    problem_mark=key_node.start_mark,
                )
            seen.add(marker)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _refuse_aliases(root: yaml.Node) -> None:
    """MarkedYAMLError at the first node reached twice: an alias (`*name`) of an anchored one.

    Expanding aliases can turn a small file into a huge value (a "billion laughs"), and a
    document that repeats a value by reference reads differently from what it means.
    """
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise yaml.MarkedYAMLError(
                problem="aliases (*name) are not accepted; write the value out",
                problem_mark=node.start_mark,
            )
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(part for pair in node.value for part in pair)


def _plain(value: Any, where: str, path: str = "") -> Any:
    """`value` as JSON would hold it; Invalid naming the spot of what JSON cannot."""
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not _is_scalar(key) or key is None:
                raise Invalid(f"{where}: {path or '(document)'}: keys must be text")
            text = _key_text(key)
            result[text] = _plain(item, where, f"{path}.{text}" if path else text)
        return result
    if isinstance(value, list):
        return [_plain(item, where, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid(f"{where}: {path}: {value} is not a number JSON can hold")
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise Invalid(f"{where}: {path or '(document)'}: a YAML {_type_name(value)} is not accepted")


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, bool | int | float | str | datetime | date)


def _key_text(key: object) -> str:
    """A mapping key as text, as Kubernetes' YAML reader writes it (`true`, `123`)."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, datetime | date):
        return key.isoformat()
    return str(key)


def _type_name(value: object) -> str:
    names = {list: "list", str: "text", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), type(value).__name__)
