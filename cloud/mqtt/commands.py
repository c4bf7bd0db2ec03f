"""Commands to one node (`cmd/request`) and their answers (`cmd/response`), correlated by token.

Every replica subscribes to `cmd/response` plainly, not through the shared group: the answer to
a request reaches every replica and only the one holding the token resolves it (the others drop
it). Responses are rare — one per REST call that asks a node for something — so the fan-out
costs nothing, and no replica ever has to forward an answer to another (decision #39).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from agent.contracts import topics
from agent.contracts.messages import CommandName, CommandRequest, CommandResponse
from agent.contracts.topics import Channel
from cloud.services.commands import CommandOutcome, TooBusy

log = logging.getLogger(__name__)
Publish = Callable[[str, bytes], Awaitable[None]]
MAX_PENDING: Final = 1000


@dataclass
class _Pending:
    nid: str
    answer: asyncio.Future[CommandResponse]


class Commands:
    """The requests this replica is waiting on, by client token."""

    def __init__(self, publish: Publish, *, max_pending: int = MAX_PENDING) -> None:
        self._publish = publish
        self._max_pending = max_pending
        self._pending: dict[str, _Pending] = {}

    @property
    def pending(self) -> int:
        """How many requests wait for an answer."""
        return len(self._pending)

    async def call(self, nid: str, cmd: CommandName, args: dict[str, Any]) -> CommandOutcome:
        """Send one command and wait for its answer (callers bound the wait with a timeout).

        Raises LinkDown when the request cannot be published and TooBusy when too many commands
        already wait (a bound on memory, not a rate limit).
        """
        if len(self._pending) >= self._max_pending:
            raise TooBusy(f"{len(self._pending)} node commands are already waiting for answers")
        token = secrets.token_hex(16)
        answer: asyncio.Future[CommandResponse] = asyncio.get_running_loop().create_future()
        self._pending[token] = _Pending(nid, answer)
        try:
            request = CommandRequest(client_token=token, cmd=cmd, args=args)
            await self._publish(topics.build(nid, Channel.CMD_REQUEST), request.to_bytes())
            response = await answer
        finally:
            self._pending.pop(token, None)
        return CommandOutcome(ok=response.ok, result=response.result, error=response.error)

    def resolve(self, nid: str, response: CommandResponse) -> bool:
        """Hand an answer to its waiting request; False when this replica did not send it.

        The node id must be the one the request went to: a node can publish only under its own
        prefix (ACL), so it can never answer — or spoil — another node's command.
        """
        waiting = self._pending.get(response.client_token)
        if waiting is None:
            return False
        if waiting.nid != nid:
            log.warning(
                "dropped a command answer from the wrong node",
                extra={"nid": nid, "expected": waiting.nid},
            )
            return False
        if not waiting.answer.done():
            waiting.answer.set_result(response)
        return True
