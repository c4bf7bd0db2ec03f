"""Keep-alive connections from the proxy to runtime instances, pooled per address (DESIGN §9).

A call takes an idle connection of its instance or opens one, writes the request, and is called
back with the whole answer; the connection goes back to the pool when the answer allowed
keep-alive. Two failures are told apart, because only the first may be retried on another
instance: `NotReached` (no connection could be opened: the runtime never saw the call) and
`RuntimeFailed` (it was sent; the runtime closed, answered garbage or too much). A call past its
deadline gets TimeoutError. Any failure closes the connection: a late answer would come to
nobody.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import httptools

log = logging.getLogger(__name__)
MAX_ANSWER: Final = 64 * 1024 * 1024
"""Largest answer body a runtime may send; the call fails beyond (the proxy keeps it in memory)."""
IDLE_SECONDS: Final = 30.0
"""How long an idle connection is kept: under the runtime's own keep-alive (75 s), so that a
pooled connection is never one the runtime is about to close."""
MAX_IDLE: Final = 64
"""Idle connections kept per instance; more are closed when they come back."""


class NotReached(Exception):
    """No connection to the instance could be opened."""


class RuntimeFailed(Exception):
    """The call was sent but no complete, valid answer came back."""


@dataclass(slots=True)
class Answer:
    """A runtime's complete answer."""

    status: int
    body: bytes
    content_type: bytes | None


Outcome = Callable[["Answer | Exception"], None]
"""Called once per call: the answer, or RuntimeFailed / TimeoutError."""


class RuntimeConnection(asyncio.Protocol):
    """One connection to a runtime; one call at a time."""

    def __init__(self, pool: UpstreamPool, address: str) -> None:
        self._pool = pool
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._outcome: Outcome | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._content_type: bytes | None = None
        self._headers_done = False
        self._framed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._outcome is None:  # bytes nobody asked for: the connection is no good
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(RuntimeFailed(f"unreadable answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        if self._outcome is not None and self._headers_done and not self._framed and exc is None:
            self.on_message_complete()  # an answer without a length ends with its connection
        if self._outcome is not None:
            self._fail(RuntimeFailed(f"connection closed{f': {exc}' if exc else ''}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type" and self._content_type is None:
            self._content_type = value
        elif name in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_ANSWER:
            self._fail(RuntimeFailed(f"answer over {MAX_ANSWER} bytes"))
            return
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._outcome is None:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # informational: the answer proper follows
            self._reset()
            return
        answer = Answer(status, b"".join(self._chunks), self._content_type)
        keep = self._parser.should_keep_alive() and not self.closed
        self._reset()
        outcome = self._finish()
        if keep:
            self._pool.give_back(self)
        else:
            self.close()
        _deliver(outcome, answer)

    # the pool's side
    def send(self, request: bytes, deadline: float, outcome: Outcome) -> None:
        """Write `request`; `outcome` gets its answer or failure, TimeoutError at `deadline`."""
        assert self.transport is not None
        self._outcome = outcome
        self._timer = asyncio.get_running_loop().call_at(deadline, self._expire)
        self.transport.write(request)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _expire(self) -> None:
        self._timer = None
        self._fail(TimeoutError())

    def _finish(self) -> Outcome | None:
        outcome, self._outcome = self._outcome, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pool.busy.discard(self)
        return outcome

    def _fail(self, exc: Exception) -> None:
        outcome = self._finish()
        self.close()
        if outcome is not None:
            _deliver(outcome, exc)


def _deliver(outcome: Outcome | None, result: Answer | Exception) -> None:
    """Hand a call its result; a failure of the receiver is its own, not the connection's."""
    if outcome is None:
        return
    try:
        outcome(result)
    except Exception:
        log.exception("handling a runtime's answer failed")


class UpstreamPool:
    """Connections to runtime instances, by `host:port`."""

    def __init__(self) -> None:
        self._idle: dict[str, deque[RuntimeConnection]] = {}
        self.busy: set[RuntimeConnection] = set()

    def take(self, address: str) -> RuntimeConnection | None:
        """An idle connection to `address`, if there is one."""
        idle = self._idle.get(address)
        while idle:
            connection = idle.pop()
            transport = connection.transport
            if not connection.closed and transport is not None and not transport.is_closing():
                return connection
        return None

    async def open(self, address: str) -> RuntimeConnection:
        """A new connection to `address`; NotReached when it cannot be made."""
        host, _, port = address.rpartition(":")
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: RuntimeConnection(self, address), host.strip("[]"), int(port)
            )
        except (OSError, ValueError) as exc:
            raise NotReached(f"{address}: {exc}") from exc
        return connection

    def send(
        self, connection: RuntimeConnection, request: bytes, deadline: float, outcome: Outcome
    ) -> None:
        """One call on `connection` (taken or opened here)."""
        self.busy.add(connection)
        connection.send(request, deadline, outcome)

    def give_back(self, connection: RuntimeConnection) -> None:
        """A connection whose call is over and that may serve another."""
        idle = self._idle.setdefault(connection.address, deque())
        if len(idle) >= MAX_IDLE:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    def forget(self, connection: RuntimeConnection) -> None:
        """A closed connection leaves the pool."""
        idle = self._idle.get(connection.address)
        if idle is not None and connection in idle:
            idle.remove(connection)

    def sweep(self) -> None:
        """Close connections idle for longer than IDLE_SECONDS."""
        oldest = time.monotonic() - IDLE_SECONDS
        for address, idle in list(self._idle.items()):
            while idle and idle[0].idle_since < oldest:
                idle.popleft().close()
            if not idle:
                del self._idle[address]

    def close(self) -> None:
        """Close every connection, idle or busy."""
        for idle in self._idle.values():
            for connection in list(idle):
                connection.close()
        self._idle.clear()
        for connection in list(self.busy):
            connection.close()
