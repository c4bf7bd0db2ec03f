"""The HTTP side of `baetylctl`: one aiohttp session per run, JSON in and out, errors as CtlError.

The server's error body `{code, message, requestId}` becomes an `ApiError` that keeps the
server's own words; a server that cannot be reached or does not answer in time becomes a
`CtlError` that says so, instead of a traceback.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as field_of
from typing import Any
from urllib.parse import quote

import aiohttp

from cloud.ctlkit.config import Target
from cloud.ctlkit.errors import ApiError, CtlError

_ERROR_TEXT_LIMIT = 300  # how much of a non-JSON error body is worth showing


@dataclass(frozen=True)
class Upload:
    """A file sent as one field of a multipart/form-data body."""

    field: str
    filename: str
    data: bytes = field_of(repr=False)
    content_type: str = "application/yaml"


def path(*segments: str) -> str:
    """An API path from segments, each quoted so a name can never reach another route."""
    return "/v1/" + "/".join(quote(segment, safe="") for segment in segments)


class Client:
    """A session bound to one server and token; use as `async with Client(...) as api`."""

    def __init__(self, target: Target, *, timeout: float, user_agent: str) -> None:
        """Remember where to connect; the session is opened by `__aenter__`, inside the loop."""
        self._target = target
        self._timeout = timeout
        self._headers = {
            "Authorization": f"Bearer {target.token}",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        """Open the session (aiohttp wants it created inside the running loop)."""
        self._session = aiohttp.ClientSession(
            headers=self._headers, timeout=aiohttp.ClientTimeout(total=self._timeout)
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, api_path: str, *, query: Mapping[str, str] | None = None) -> Any:
        """GET `api_path` and return the decoded JSON."""
        return await self.request("GET", api_path, query=query)

    async def post(self, api_path: str, body: Any) -> Any:
        """POST `body` as JSON."""
        return await self.request("POST", api_path, body=body)

    async def put(self, api_path: str, body: Any) -> Any:
        """PUT `body` as JSON."""
        return await self.request("PUT", api_path, body=body)

    async def put_bytes(self, api_path: str, data: bytes) -> Any:
        """PUT raw bytes (an object upload); the decoded JSON answer."""
        return await self.request("PUT", api_path, raw=data)

    async def delete(self, api_path: str) -> Any:
        """DELETE `api_path`."""
        return await self.request("DELETE", api_path)

    async def send_file(self, method: str, api_path: str, upload: Upload) -> Any:
        """Send a file as a multipart/form-data field (the `/v1/yaml` routes); the decoded JSON
        answer."""
        return await self.request(method, api_path, upload=upload)

    async def request(
        self,
        method: str,
        api_path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        raw: bytes | None = None,
        upload: Upload | None = None,
    ) -> Any:
        """Send one request (a JSON `body`, `raw` bytes or a file `upload`); the decoded JSON
        answer, or ApiError / CtlError."""
        answer, status = await self._send(
            method, api_path, query=query, body=body, raw=raw, upload=upload
        )
        try:
            return json.loads(answer) if answer.strip() else None
        except ValueError as exc:
            raise CtlError(
                f"{method} {api_path}: the server answered {status} with a body that is not "
                f"JSON; is {self._target.url} a Baetyl-Py cloud?"
            ) from exc

    async def get_text(self, api_path: str, *, query: Mapping[str, str] | None = None) -> str:
        """GET a plain-text answer (logs); errors as for `request`."""
        raw, _ = await self._send("GET", api_path, query=query, body=None, raw=None, upload=None)
        return raw.decode("utf-8", errors="replace")

    async def _send(
        self,
        method: str,
        api_path: str,
        *,
        query: Mapping[str, str] | None,
        body: Any,
        raw: bytes | None,
        upload: Upload | None,
    ) -> tuple[bytes, int]:
        if self._session is None:
            raise RuntimeError("Client used outside `async with`")
        url = self._target.url + api_path
        # Our own request id: the server adopts it, so even a lost answer can be found in its log.
        headers = {"X-Request-Id": uuid.uuid4().hex}
        kwargs: dict[str, Any] = {"headers": headers, "params": dict(query or {})}
        if upload is not None:  # aiohttp writes the multipart Content-Type and its boundary
            form = aiohttp.FormData()
            form.add_field(
                upload.field,
                io.BytesIO(upload.data),
                filename=upload.filename,
                content_type=upload.content_type,
            )
            kwargs["data"] = form
        elif raw is not None:
            kwargs["data"] = raw
            headers["Content-Type"] = "application/octet-stream"
        elif body is not None:
            kwargs["data"] = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(method, url, **kwargs) as response:
                raw = await response.read()
                status = response.status
                request_id = response.headers.get("X-Request-Id", headers["X-Request-Id"])
        except aiohttp.ClientConnectorError as exc:
            raise CtlError(
                f"cannot connect to {self._target.url}: {_reason(exc)}; is the cloud running "
                "there? (set it with --url, BAETYL_URL or the config file)"
            ) from exc
        except TimeoutError as exc:
            raise CtlError(
                f"no answer from {self._target.url} within {self._timeout:g} s "
                f"({method} {api_path}); raise --timeout or check the server"
            ) from exc
        except aiohttp.ClientError as exc:
            raise CtlError(
                f"request {method} {api_path} to {self._target.url} failed: {exc}"
            ) from exc
        if status >= 400:
            raise _api_error(status, raw, request_id)
        return raw, status


def _api_error(status: int, raw: bytes, request_id: str) -> ApiError:
    """The server's error body as an ApiError; a body of another shape is quoted as it came."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return ApiError(
            status,
            str(body.get("code") or f"HTTP {status}"),
            body["message"],
            str(body.get("requestId") or request_id),
        )
    text = raw.decode("utf-8", "replace").strip()[:_ERROR_TEXT_LIMIT]
    return ApiError(status, f"HTTP {status}", text or "the server gave no reason", request_id)


def _reason(exc: aiohttp.ClientConnectorError) -> str:
    """The OS-level reason of a failed connection (e.g. 'Connection refused')."""
    if exc.errno:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc)
