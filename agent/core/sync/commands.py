"""Commands from the cloud (`cmd/request`), each run as its own task and answered (`cmd/response`).

The cloud sends a command when a REST caller asks for something only the node has, such as an
app's logs (docs/protocol.md "Commands"). Each runs in a task of its own so a slow one never holds
up the shadow, at most MAX_COMMANDS at once; an error becomes the answer (`ok: false`), never a
crash; an answer too large for the node's message cap is cut to fit (`answer_fit.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from agent.contracts.kit.aiotasks import Tasks
from agent.contracts.messages import CommandRequest, CommandResponse
from agent.contracts.topics import Channel
from agent.core.sync.answer_fit import fit_answer
from agent.core.sync.link import LinkDown

log = logging.getLogger(__name__)
CommandHandler = Callable[[CommandRequest], Awaitable[Any]]
Publish = Callable[[Channel, bytes], Awaitable[None]]

MAX_COMMANDS: Final = 8
STOP_GRACE: Final = 1.0


class CommandRunner:
    """Runs the cloud's commands with `handler` and publishes each answer with `publish`."""

    def __init__(self, handler: CommandHandler, publish: Publish) -> None:
        self._handler = handler
        self._publish = publish
        self._gate = asyncio.Semaphore(MAX_COMMANDS)
        self._tasks = Tasks("command", logger=log)

    def start(self, request: CommandRequest) -> None:
        """Run `request` in the background (never blocks the caller, who delivers messages)."""
        self._tasks.spawn(self._run(request), f"command-{request.cmd}")

    async def stop(self) -> None:
        """Cancel the commands still running; their callers get no answer (the agent stops)."""
        await self._tasks.stop(grace=STOP_GRACE)

    async def _run(self, request: CommandRequest) -> None:
        async with self._gate:
            started = time.monotonic()
            token = request.client_token
            try:
                result = await self._handler(request)
                response = CommandResponse(client_token=token, ok=True, result=result)
            except Exception as exc:  # noqa: BLE001 - the answer says why; the agent carries on
                error = str(exc) or type(exc).__name__
                response = CommandResponse(client_token=token, ok=False, error=error)
            try:
                await self._publish(Channel.CMD_RESPONSE, fit_answer(response))
            except LinkDown as exc:
                log.warning("could not answer a command", extra={"error": str(exc)})
            log.info(
                "answered a command",
                extra={
                    "cmd": request.cmd,
                    "ok": response.ok,
                    "ms": int((time.monotonic() - started) * 1000),
                },
            )
