"""Requests to the cloud and their answers, correlated by `clientToken` (DESIGN §4).

The agent asks (`shadow/update`, `shadow/get`, `resources/get`, `cert/renew`) and the cloud
answers on the matching `accepted` or `rejected` channel with the same token. An answer nobody
waits for any more (its request timed out) is dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from agent.contracts.topics import Channel

log = logging.getLogger(__name__)
Publish = Callable[[Channel, bytes], Awaitable[None]]

ANSWERS: Final = {
    Channel.SHADOW_UPDATE: (Channel.SHADOW_UPDATE_ACCEPTED, Channel.SHADOW_UPDATE_REJECTED),
    Channel.SHADOW_GET: (Channel.SHADOW_GET_ACCEPTED, Channel.SHADOW_GET_REJECTED),
    Channel.RESOURCES_GET: (Channel.RESOURCES_GET_ACCEPTED, Channel.RESOURCES_GET_REJECTED),
    Channel.CERT_RENEW: (Channel.CERT_RENEW_ACCEPTED, Channel.CERT_RENEW_REJECTED),
}
ACCEPTED: Final = frozenset(accepted for accepted, _ in ANSWERS.values())
REJECTED: Final = frozenset(rejected for _, rejected in ANSWERS.values())


class Rejected(Exception):
    """The cloud refused a request; `code` follows DESIGN §5's table."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Answer:
    """An accepted answer: its channel and payload (already JSON-decoded)."""

    channel: Channel
    body: dict[str, Any]


class Requests:
    """The requests in flight, by token."""

    def __init__(self, publish: Publish, *, timeout: float) -> None:
        self._publish = publish
        self._timeout = timeout
        self._waiting: dict[str, asyncio.Future[Answer]] = {}
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def token(self) -> str:
        """A fresh client token (unique per agent run, readable in logs)."""
        return f"{self._prefix}-{next(self._counter)}"

    async def ask(self, channel: Channel, body: dict[str, Any]) -> Answer:
        """Publish `body` (its `clientToken` is set here) and wait for the accepted answer.

        Raises Rejected, TimeoutError after the configured timeout (`sync.timeout`), or the
        link's error when the request cannot be sent.
        """
        token = self.token()
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[token] = answer
        try:
            async with asyncio.timeout(self._timeout):
                await self._publish(channel, _encode({**body, "clientToken": token}))
                return await answer
        finally:
            self._waiting.pop(token, None)

    def deliver(self, channel: Channel, body: dict[str, Any]) -> bool:
        """Hand an answer to its request; False when nobody waits for it."""
        token = body.get("clientToken")
        waiting = self._waiting.get(token) if isinstance(token, str) else None
        if waiting is None or waiting.done():
            log.debug("dropped an answer nobody waits for", extra={"channel": str(channel)})
            return False
        if channel in REJECTED:
            code = body.get("code")
            message = body.get("message")
            waiting.set_exception(
                Rejected(code if isinstance(code, int) else 500, str(message or "rejected"))
            )
        else:
            waiting.set_result(Answer(channel, body))
        return True

    def fail_all(self, error: Exception) -> None:
        """The link went down: every waiting request fails now instead of timing out."""
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(error)


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
