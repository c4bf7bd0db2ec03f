"""The proxy's listening side: HTTP/1.1 connections from callers, parsed by llhttp (httptools),
each request read in full and handed to the proxy, answers written in order (DESIGN §9). It is
driven by the event loop's callbacks alone: a connection has no task of its own.

Limits a caller cannot get past: a request head of HEAD_LIMIT bytes and MAX_HEADERS headers
(431), a body of `max_body` bytes (413: the rest of a body that is not much larger is read and
dropped so that the caller gets the answer, a larger one closes the connection), at most
MAX_QUEUED pipelined requests read ahead, a connection idle for IDLE_SECONDS or a request that
takes SLOW_REQUEST_SECONDS to arrive closed. Protocol upgrades and CONNECT are refused (400).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Final

import httptools

from function_proxy.wire import FORWARDED, Call, Reply, encode_reply, error_reply, invoke_id_of

log = logging.getLogger(__name__)
Handler = Callable[[Call, Callable[[Reply], None]], None]
"""Starts answering a call, and calls its second argument once with the answer, at once or
later: no task and no future per call on the common path (docs/functions.md, the benchmark)."""
HEAD_LIMIT: Final = 16 * 1024
MAX_HEADERS: Final = 100
DRAIN_LIMIT: Final = 256 * 1024
"""Bytes of a too large body still read (and dropped) so that its 413 reaches the caller."""
MAX_QUEUED: Final = 16
IDLE_SECONDS: Final = 75.0
SLOW_REQUEST_SECONDS: Final = 60.0
KEPT_HEADERS: Final = frozenset(
    {b"content-length", b"expect", b"upgrade", b"x-baetyl-invoke-id", b"invokeid", *FORWARDED}
)
"""The headers anything here reads; the others are counted and dropped."""
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


class CallerConnection(asyncio.Protocol):
    """One caller's connection: parses requests, queues them, and a task of its own answers
    them one after the other."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[tuple[Call | Reply, bool]] = deque()
        self._keep_alive = True
        self._advancing = False
        self._write_paused = False
        self._reading_paused = False
        self._refusing = False
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.last_active = time.monotonic()
        self.request_began: float | None = None
        self._begin()

    def _begin(self) -> None:
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._head_size = 0
        self._header_count = 0
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._listener.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._refusing:
            return
        self.last_active = time.monotonic()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # refused at its headers; nothing more is read
            self._refuse(_no_upgrades())
        except httptools.HttpParserError as exc:
            if not self._refusing:
                self._refuse(error_reply(400, "ErrBadRequest", f"malformed request: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._queue.clear()  # a call in flight finishes; its answer is dropped
        self._listener.forget(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._next()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._begin()
        self.request_began = time.monotonic()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._grow_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._head_size += len(name) + len(value)
        if self._head_size > HEAD_LIMIT:
            self._grow_head(0)
        name = name.lower()
        if name in KEPT_HEADERS and name not in self._headers:
            self._headers[name] = value

    def on_headers_complete(self) -> None:
        if self._refusing:
            return
        if b"upgrade" in self._headers or self._parser.get_method() == b"CONNECT":
            # llhttp reads what follows as another protocol: nothing more on this connection.
            self._refuse(_no_upgrades())
            return
        if self._header_count > MAX_HEADERS:
            self._refuse(error_reply(431, "ErrBadRequest", f"more than {MAX_HEADERS} headers"))
            return
        limit = self._listener.max_body
        declared = self._headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self._too_large = True
            if int(declared) - limit > DRAIN_LIMIT or b"expect" in self._headers:
                self._refuse(
                    _too_large(limit, self._headers)
                )  # not worth reading: answer and close
                return
        if self._headers.get(b"expect", b"").lower() == b"100-continue" and self.transport:
            self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self._refusing:
            return
        self._size += len(body)
        if self._too_large or self._size > self._listener.max_body:
            self._too_large = True
            self._chunks.clear()
            if self._size > self._listener.max_body + DRAIN_LIMIT:
                self._refuse(_too_large(self._listener.max_body, self._headers))
            return
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._refusing:
            return
        self.request_began = None
        keep_alive = self._parser.should_keep_alive()
        if self._too_large:
            self._push(_too_large(self._listener.max_body, self._headers), keep_alive=False)
            return
        path, _, query = self._url.partition(b"?")
        path, _, _ = path.partition(b"#")
        call = Call(
            method=self._parser.get_method().decode(),
            path=path.decode("latin-1"),
            query=query,
            headers=self._headers,
            body=b"".join(self._chunks),
            keep_alive=keep_alive,
        )
        self._push(call, keep_alive)

    # answering
    def _grow_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > HEAD_LIMIT:
            self._refuse(error_reply(431, "ErrBadRequest", f"request head over {HEAD_LIMIT} bytes"))

    def _refuse(self, reply: Reply) -> None:
        """Answer `reply` after what is queued, read nothing more, close."""
        if self._refusing:
            return
        self._refusing = True
        self._push(reply, keep_alive=False)
        if self.transport is not None and not self._reading_paused:
            self.transport.pause_reading()
            self._reading_paused = True

    def _push(self, item: Call | Reply, keep_alive: bool) -> None:
        self._queue.append((item, keep_alive))
        if len(self._queue) >= MAX_QUEUED and self.transport and not self._reading_paused:
            self.transport.pause_reading()
            self._reading_paused = True
        self._next()

    def _next(self) -> None:
        """Start answering the next queued request, unless one is being answered, the caller
        is not reading its answers, or this is already running further up the stack."""
        if self._advancing:
            return
        self._advancing = True
        try:
            while self._queue and not self.busy and not self._write_paused:
                item, self._keep_alive = self._queue.popleft()
                if self._reading_paused and not self._refusing and len(self._queue) < MAX_QUEUED:
                    assert self.transport is not None
                    self.transport.resume_reading()
                    self._reading_paused = False
                self.busy = True
                if isinstance(item, Reply):
                    self._answer(item)
                    continue
                try:
                    self._listener.handler(item, self._answer)
                except Exception:
                    log.exception("answering a call failed")
                    self._answer(error_reply(500, "ErrInternal", "the proxy failed; see its log"))
        finally:
            self._advancing = False

    def _answer(self, reply: Reply) -> None:
        """Write the answer to the request being answered; then go on with the next."""
        transport = self.transport
        if not self.busy or transport is None:
            return
        self.busy = False
        self.last_active = time.monotonic()
        if transport.is_closing():
            return
        keep_alive = self._keep_alive and not self._listener.stopping
        transport.write(encode_reply(reply, keep_alive))
        if not keep_alive or (self._listener.stopping and not self._queue):
            transport.close()
        else:
            self._next()

    def stale(self, now: float) -> bool:
        """Idle too long, or a request arriving too slowly."""
        if self.busy:
            return False
        if self.request_began is not None:
            return now - self.request_began > SLOW_REQUEST_SECONDS
        return now - self.last_active > IDLE_SECONDS

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Listener:
    """The caller connections of one listening socket, and their orderly end."""

    def __init__(self, handler: Handler, max_body: int) -> None:
        self.handler = handler
        self.max_body = max_body
        self.connections: set[CallerConnection] = set()
        self.stopping = False
        self._server: asyncio.Server | None = None
        self._all_closed = asyncio.Event()

    async def start(self, host: str, port: int) -> None:
        """Listen on `host:port` (OSError when it cannot)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: CallerConnection(self), host, port)

    def forget(self, connection: CallerConnection) -> None:
        """A connection that closed."""
        self.connections.discard(connection)
        if self.stopping and not self.connections:
            self._all_closed.set()

    def sweep(self) -> None:
        """Close idle and too slow connections."""
        now = time.monotonic()
        for connection in list(self.connections):
            if connection.stale(now):
                connection.close()

    async def stop(self, grace: float) -> None:
        """Accept no more; answer what is in flight (for `grace` seconds at most), then close."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if not connection.busy:
                connection.close()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), grace)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()


def _no_upgrades() -> Reply:
    return error_reply(400, "ErrBadRequest", "protocol upgrades and CONNECT are not served")


def _too_large(limit: int, headers: dict[bytes, bytes]) -> Reply:
    reply = error_reply(413, "ErrTooLarge", f"the body is over {limit} bytes")
    reply.invoke_id = invoke_id_of(headers)
    return reply
