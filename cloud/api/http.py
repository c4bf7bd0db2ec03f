"""Request plumbing shared by every handler: request ids, the error mapping, parsing, rendering.

Handlers parse with `read_body` / `read_query`, call a service, and answer with `reply`. Every
error — ours, a bad body, a bug — leaves through `error_middleware` as Baetyl's error body
`{"code", "message", "requestId"}`, with the request id also in the `X-Request-Id` header.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from agent.contracts import names
from agent.contracts.wire import PayloadError, describe_errors
from cloud.api.keys import REQUEST_ID
from cloud.errors import CloudError, Invalid

log = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)
MAX_BODY_BYTES = 8 * 1024 * 1024  # a configuration may hold just under 4 MiB of data
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_NAME_PARAMS = frozenset({"name", "app"})
_APPS = "/v1/apps/"
_PROPERTIES = "/v1/properties/"


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Give every request an id and turn every failure into the error body of DESIGN §6."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    try:
        response: web.StreamResponse = await handler(request)
    except CloudError as exc:
        response = _error(exc.status, exc.code, exc.message, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = "ErrRequestMethodNotFound" if exc.status in (404, 405) else "ErrRequestParamInvalid"
        response = _error(exc.status, code, exc.reason, request_id)
    except Exception:
        log.exception("request failed", extra={"request_id": request_id, "path": request.path})
        response = _error(500, "UnknownError", "internal error; see the cloud log", request_id)
    response.headers["X-Request-Id"] = request_id
    return response


def _error(status: int, code: str, message: str, request_id: str) -> web.Response:
    body = {"code": code, "message": message, "requestId": request_id}
    return web.json_response(body, status=status, dumps=_dumps)


async def read_body(request: web.Request, model: type[ModelT]) -> ModelT:
    """Parse the JSON body as `model`; Invalid names every problem."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Invalid(f"request body is larger than {MAX_BODY_BYTES} bytes")
    raw = await request.read()  # the app's client_max_size bounds it
    return parse_body(raw, model)


def parse_body(raw: bytes, model: type[ModelT]) -> ModelT:
    """Parse a JSON body as `model`, exactly as `read_body` does (for bodies that arrive
    otherwise, such as the documents of `/v1/yaml`); Invalid names every problem."""
    if not raw.strip():
        raise Invalid("request body is empty; a JSON object is required")
    _refuse_ambiguous_json(raw)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise Invalid("invalid request body: " + "; ".join(describe_errors(exc, model))) from exc


def _refuse_ambiguous_json(raw: bytes) -> None:
    """Invalid if an object of the body repeats a key, or any text holds a NUL character.

    A JSON parser keeps the last of repeated keys, so `{"role":"read","role":"admin"}` would
    mean whatever the last one says, unseen by a reviewer of the first: ambiguous, refused.
    A NUL (`\\u0000`) is valid JSON but no stored text may hold one (PostgreSQL refuses it in
    text and jsonb columns, C programs cut the string there): refused once, for every route.
    Text that is not JSON is left to the model's parser, which names the problem.
    """
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen and key not in repeated:
                repeated.append(key)
            seen[key] = value
        return seen

    try:
        value = json.loads(raw, object_pairs_hook=pairs)
    except RecursionError:
        raise Invalid("invalid request body: JSON nested too deeply") from None
    except ValueError:
        return
    if repeated:
        shown = ", ".join(repr(key[:64]) for key in repeated[:10])
        raise Invalid(f"invalid request body: duplicate keys in a JSON object: {shown}")
    try:
        where = _nul_at(value, "")
    except RecursionError:
        raise Invalid("invalid request body: JSON nested too deeply") from None
    if where is not None:
        raise Invalid(f"invalid request body: {where[:200] or '(body)'}: text must not contain NUL")


def _nul_at(value: Any, path: str) -> str | None:
    """The path of the first key or string holding a NUL character, None if there is none."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return inner.replace("\x00", "\\u0000")
            found = _nul_at(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_at(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def read_query(request: web.Request, model: type[ModelT]) -> ModelT:
    """Parse the query string as `model` (values are strings; the model converts them)."""
    query = dict(request.query)
    for key, value in query.items():
        if "\x00" in key or "\x00" in value:
            raise Invalid(f"invalid query: {key[:64]!r}: text must not contain NUL")
    try:
        return model.model_validate(query, strict=False)
    except ValidationError as exc:
        raise Invalid("invalid query: " + "; ".join(describe_errors(exc, model))) from exc


def payload_invalid(exc: PayloadError) -> Invalid:
    """An Invalid carrying a PayloadError's problems."""
    return Invalid("; ".join(exc.problems))


def reply(
    value: BaseModel | dict[str, Any] | list[Any] | None, *, status: int = 200
) -> web.Response:
    """A JSON response; models are rendered with their wire (camelCase) names."""
    if value is None:
        return web.json_response({"success": True}, status=status, dumps=_dumps)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return web.json_response(value, status=status, dumps=_dumps)


def path_param(request: web.Request, name: str) -> str:
    """A path parameter (present when the route matched; path_middleware checked names)."""
    return request.match_info[name]


@web.middleware
async def path_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Check `{name}` and `{app}` path parameters like body names (DESIGN §3), before any lookup.

    A name no resource can have is a 400 here, for every route at once, instead of reaching the
    store (where a name longer than its column was a 500). Application names
    (`/v1/apps/{name}`, `{app}`) are held to their shorter limit. Property names are the
    operator's own (up to 128 characters) and are left to their service.
    """
    resource = request.match_info.route.resource
    canonical = "" if resource is None else resource.canonical
    if not canonical.startswith(_PROPERTIES):
        for param in _NAME_PARAMS & request.match_info.keys():
            value = request.match_info[param]
            try:
                if param == "app" or canonical.startswith(_APPS):
                    names.check_app_name(value)
                else:
                    names.check_name(value)
            except names.InvalidName as exc:
                raise Invalid(f"path: {exc}") from None
    response: web.StreamResponse = await handler(request)
    return response


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
