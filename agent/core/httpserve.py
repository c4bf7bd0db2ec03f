"""A small HTTP/1.1 server on asyncio streams for the agent's local API, with strict limits.

One request per connection (every answer says `Connection: close`), no keep-alive, no chunked
bodies: what loopback tools need, without aiohttp's server (≈ 11 MB of RSS,
docs/performance-notes.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Protocol
from urllib.parse import parse_qs, unquote

log = logging.getLogger(__name__)

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"/[\x21\x22\x24-\x7e]*")  # origin-form: visible ASCII, no fragment
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 1024 * 1024
_MAX_QUERY_FIELDS = 100

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Limits:
    """What one request may be; anything larger or slower is refused with a 4xx, then closed."""

    request_line: int = 8 * 1024
    """Bytes of `METHOD /target HTTP/1.1` (414 beyond)."""
    headers: int = 64
    """Header fields (431 beyond)."""
    header_bytes: int = 16 * 1024
    """Bytes of all header lines together (431 beyond)."""
    body: int = 64 * 1024
    """Bytes of a body, which must come with Content-Length (413 beyond, 411 when chunked)."""
    read_timeout: float = 10.0
    """Seconds to receive a whole request, head and body (408 after)."""
    write_timeout: float = 10.0
    """Seconds to hand an answer over and close (the connection is dropped after)."""


@dataclass(frozen=True)
class Request:
    """One parsed request; the path and query are percent-decoded (UTF-8)."""

    method: str
    path: str
    segments: tuple[str, ...]
    """The path split at `/`, each part decoded on its own (`%2F` stays inside its segment)."""
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    """By lower-case name; repeated fields are joined with `, `."""
    body: bytes = b""
    version: str = "1.1"
    params: Mapping[str, str] = field(default_factory=dict)
    """What the route's `{name}` segments matched."""


@dataclass(frozen=True)
class Response:
    """An answer; Content-Length, Date and `Connection: close` are added when it is sent."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: Headers = ()


def json_response(data: object, *, status: int = 200, headers: Headers = ()) -> Response:
    """`data` as JSON."""
    return Response(status, json.dumps(data).encode(), headers=headers)


def text_response(text: str, *, status: int = 200) -> Response:
    """`text` as UTF-8 plain text."""
    return Response(status, text.encode(), "text/plain; charset=utf-8")


class HttpError(Exception):
    """A request the HTTP layer refuses: its `status`, a short `message`, extra headers (Allow)."""

    def __init__(self, status: int, message: str | None = None, *, headers: Headers = ()) -> None:
        self.status = status
        self.message = message or HTTPStatus(status).phrase
        self.headers = headers
        super().__init__(self.message)


Handler = Callable[[Request], Awaitable[Response]]


class Application(Protocol):
    """What the server serves: it answers requests and renders the errors of the HTTP layer."""

    async def handle(self, request: Request) -> Response:
        """The answer to a well-formed request (route it, run it, map its errors)."""
        ...

    def error(self, error: HttpError) -> Response:
        """The answer to a request refused before or while routing it."""
        ...


class Router:
    """Routes by method and path; a `{name}` segment matches any one non-empty segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[tuple[str, ...], dict[str, Handler]]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve `method pattern` with `handler`."""
        segments = tuple(pattern[1:].split("/"))
        for known, handlers in self._routes:
            if known == segments:
                handlers[method] = handler
                return
        self._routes.append((segments, {method: handler}))

    def resolve(self, method: str, segments: Sequence[str]) -> tuple[Handler, dict[str, str]]:
        """The handler and the `{name}` values; HttpError 404, or 405 with Allow."""
        allowed: set[str] = set()
        for pattern, handlers in self._routes:
            params = _match(pattern, segments)
            if params is None:
                continue
            if method in handlers:
                return handlers[method], params
            allowed.update(handlers)
        if allowed:
            raise HttpError(405, headers=(("Allow", ", ".join(sorted(allowed))),))
        raise HttpError(404)


def _match(pattern: tuple[str, ...], segments: Sequence[str]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    params = {}
    for want, got in zip(pattern, segments, strict=True):
        if want.startswith("{") and want.endswith("}"):
            if not got:
                return None
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


class Server:
    """Serves an Application on a TCP address: `await start()`, then `await stop()` once.

    Each connection is a task of this server named `<name>-connection-<n>`. Stopping closes the
    listener, drops connections still waiting for their request, lets requests in progress
    finish for up to `shutdown_timeout` seconds and then cancels them.
    """

    def __init__(
        self,
        app: Application,
        *,
        host: str,
        port: int,
        limits: Limits | None = None,
        shutdown_timeout: float = 3.0,
        name: str = "http",
        access_log: logging.Logger = log,
    ) -> None:
        self.app = app
        self.host = host
        self.limits = limits or Limits()
        self.name = name
        self._requested_port = port
        self._shutdown_timeout = shutdown_timeout
        self._access_log = access_log
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()  # holding a whole request
        self._ids = itertools.count(1)

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        if self._port is None:
            raise RuntimeError(f"{self.name} is not listening")
        return self._port

    async def start(self) -> None:
        """Bind and serve; OSError (address in use, ...) leaves nothing behind."""
        stream_limit = max(self.limits.request_line, self.limits.header_bytes) + 2
        self._server = await asyncio.start_server(
            self._accept, self.host, self._requested_port, limit=stream_limit
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and end every connection within about `shutdown_timeout` seconds."""
        if self._server is None:
            return
        server, self._server, self._port = self._server, None, None
        server.close()
        for task in self._tasks - self._busy:
            task.cancel()  # still waiting for its request: nothing is lost
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self._shutdown_timeout)
        late = set(self._tasks)
        for task in late:
            task.cancel()
        if late:
            log.warning("dropped requests at shutdown", extra={"server": self.name, "n": len(late)})
            await asyncio.wait(late, timeout=1.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1.0)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = f"{self.name}-connection-{next(self._ids)}"
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._busy.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: read one request, answer it, close."""
        started = time.monotonic()
        peer = _peer(writer)
        request: Request | None = None
        linger = False
        try:
            try:
                async with asyncio.timeout(self.limits.read_timeout):
                    request = await _read_request(reader, writer, self.limits)
            except HttpError as exc:
                response, linger = self.app.error(exc), True
            except TimeoutError:
                timeout = self.limits.read_timeout
                response = self.app.error(HttpError(408, f"no whole request within {timeout} s"))
            else:
                task = asyncio.current_task()
                assert task is not None
                self._busy.add(task)
                response = await self._answer(request)
            async with asyncio.timeout(self.limits.write_timeout):
                await _send(writer, response, body=request is None or request.method != "HEAD")
                if linger:
                    await _linger(reader, writer)
                writer.close()
                await writer.wait_closed()
            self._access_log.debug(
                "request served",
                extra={
                    "method": request.method if request else "-",
                    "path": request.path if request else "-",
                    "status": response.status,
                    "bytes": len(response.body),
                    "ms": round((time.monotonic() - started) * 1000, 1),
                    "peer": peer,
                },
            )
        except (ConnectionError, EOFError, TimeoutError) as exc:
            log.debug("client went away", extra={"peer": peer, "error": repr(exc)})
        except Exception:
            log.exception("connection failed", extra={"peer": peer})
        finally:
            writer.transport.abort()  # a no-op once closed; drops a client that does not read

    async def _answer(self, request: Request) -> Response:
        try:
            return await self.app.handle(request)
        except Exception:
            log.exception("request failed", extra={"path": request.path})
            return self.app.error(HttpError(500))


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: Limits
) -> Request:
    line = await _read_line(reader, limits.request_line, 414, "the request line")
    if not line:  # one empty line before a request is allowed (RFC 9112 §2.2)
        line = await _read_line(reader, limits.request_line, 414, "the request line")
    method, target, version = _request_line(line)
    headers = await _read_headers(reader, limits)
    if version == "1.1" and "host" not in headers:
        raise HttpError(400, "an HTTP/1.1 request needs a Host header")
    length = _body_length(headers, version, limits)
    expect = headers.get("expect")
    if expect is not None:
        if expect.lower() != "100-continue":
            raise HttpError(417)
        if length and version == "1.1":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    raw_path, _, raw_query = target.partition("?")
    try:
        path = unquote(raw_path, errors="strict")
        segments = tuple(unquote(part, errors="strict") for part in raw_path[1:].split("/"))
    except UnicodeDecodeError as exc:
        raise HttpError(400, "the path is not UTF-8 once percent-decoded") from exc
    try:
        query = parse_qs(
            raw_query, keep_blank_values=True, errors="strict", max_num_fields=_MAX_QUERY_FIELDS
        )
    except ValueError as exc:  # UnicodeDecodeError included
        raise HttpError(400, f"malformed query ({exc})") from exc
    body = await reader.readexactly(length) if length else b""
    return Request(method, path, segments, query, headers, body, version)


async def _read_line(reader: asyncio.StreamReader, limit: int, status: int, what: str) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise HttpError(status, f"{what} is longer than {limit} bytes") from exc
    if len(line) > limit + 2:
        raise HttpError(status, f"{what} is longer than {limit} bytes")
    return line.removesuffix(b"\n").removesuffix(b"\r")


def _request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise HttpError(400, "malformed method")
    if not _TARGET.fullmatch(target):
        raise HttpError(400, "malformed request target")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        if _VERSION.fullmatch(version):
            raise HttpError(505)
        raise HttpError(400, "malformed HTTP version")
    return method.decode(), target.decode(), version[5:].decode()


async def _read_headers(reader: asyncio.StreamReader, limits: Limits) -> dict[str, str]:
    headers: dict[str, str] = {}
    size = count = 0
    too_large = f"the headers are larger than {limits.header_bytes} bytes"
    while True:
        line = await _read_line(reader, limits.header_bytes, 431, "a header line")
        size += len(line) + 2
        if size > limits.header_bytes:
            raise HttpError(431, too_large)
        if not line:
            return headers
        count += 1
        if count > limits.headers:
            raise HttpError(431, f"more than {limits.headers} headers")
        name, colon, value = line.partition(b":")
        value = value.strip(b" \t")
        # A name must touch its colon; a line starting with whitespace is an obsolete fold.
        if not colon or not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise HttpError(400, "malformed header line")
        key, text = name.decode().lower(), value.decode("latin-1")
        if key not in headers:
            headers[key] = text
        elif key in ("content-length", "host"):
            raise HttpError(400, f"{key} is given more than once")
        else:
            headers[key] = f"{headers[key]}, {text}"


def _body_length(headers: Mapping[str, str], version: str, limits: Limits) -> int:
    coding, length = headers.get("transfer-encoding"), headers.get("content-length")
    if coding is not None:
        if length is not None or version == "1.0":
            raise HttpError(400, "Transfer-Encoding with Content-Length or in HTTP/1.0")
        if [part.strip().lower() for part in coding.split(",")] == ["chunked"]:
            raise HttpError(411, "a body needs Content-Length; chunked bodies are not accepted")
        raise HttpError(501, f"transfer coding {coding[:40]!r} is not supported")
    if length is None:
        return 0
    if not (length.isascii() and length.isdigit()):
        raise HttpError(400, "Content-Length must be a number of bytes")
    if len(length) > 18 or int(length) > limits.body:
        raise HttpError(413, f"body is larger than {limits.body} bytes")
    return int(length)


async def _send(writer: asyncio.StreamWriter, response: Response, *, body: bool) -> None:
    """Write the answer; without its body for HEAD (its length is still told)."""
    status = response.status
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        f"Date: {formatdate(usegmt=True)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers),
    ]
    head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
    writer.write(head + response.body if body else head)
    await writer.drain()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read (and drop) what a refused client still sends, for a moment.

    Closing a socket with unread input resets the connection, and the client could lose the
    answer (413, 431, ...) before reading it.
    """
    if writer.can_write_eof():
        writer.write_eof()
    discarded = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_LINGER_SECONDS):
            while discarded < _LINGER_BYTES:
                chunk = await reader.read(64 * 1024)
                if not chunk:
                    break
                discarded += len(chunk)


def _peer(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        host = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
        return f"{host}:{address[1]}"
    return str(address)
