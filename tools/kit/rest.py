"""The cloud's REST API as its callers outside the product use it: status and JSON, or an error.

`baetylctl` is the user's client; this one is for the demo, the benchmarks and the end-to-end
tests, which also need the status codes of refused calls.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

HEALTH_TIMEOUT = 2.0


class RestError(RuntimeError):
    """A call failed (no answer, or not the status expected); the message has method and path."""


class Rest:
    """A cloud's REST API with one token, over the caller's session."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.token = token

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The status and the decoded JSON body (None when empty)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            async with self.session.request(
                method, self.url + path, json=body, headers=headers
            ) as answer:
                text = await answer.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RestError(f"{method} {self.url}{path} failed: {exc}") from exc
        try:
            return answer.status, (json.loads(text) if text else None)
        except ValueError:
            return answer.status, text

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        """The body of a 200 answer; RestError for any other status."""
        status, answer = await self.call(method, path, body)
        if status != 200:
            raise RestError(f"{method} {path}: {status} {answer}")
        return answer


async def healthy(session: aiohttp.ClientSession, url: str) -> bool:
    """Whether the server at `url` answers `GET /health` with 200."""
    try:
        async with session.get(
            url.rstrip("/") + "/health", timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT)
        ) as answer:
            return answer.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def health_of(url: str) -> Any:
    """The JSON body of `GET url/health` (an agent's local API), or None while it does not
    answer with one."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                url.rstrip("/") + "/health", timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT)
            ) as answer,
        ):
            return await answer.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
