"""Asking a node for something now, over MQTT (`cmd/request`): today the logs of one app.

The REST side sees only the `CommandSender` protocol; the MQTT bridge provides it. Checks that need
no node happen first (the node exists, runs the app, is online), so a request for an offline node
answers 409 at once instead of waiting for a timeout, and a REST-only cloud answers 503.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from agent.contracts import shadow
from agent.contracts.desired import DesiredState
from agent.contracts.messages import CommandName
from cloud.errors import CloudError, NotFound
from cloud.services import nodes
from cloud.services.context import Caller, CloudContext
from cloud.services.nodes import Document, Ready


@dataclass(frozen=True)
class CommandOutcome:
    """What the node answered."""

    ok: bool
    result: Any = None
    error: str | None = None


class CommandSender(Protocol):
    """Sends one command to a node and waits for the answer (the MQTT bridge)."""

    async def call(self, nid: str, cmd: CommandName, args: dict[str, Any]) -> CommandOutcome:
        """Wait for the answer until cancelled (the caller's timeout)."""
        ...


class TooBusy(CloudError):
    """Too many commands are waiting for answers on this replica."""

    status = 503
    code = "ErrServiceBusy"


class NoBroker(CloudError):
    """This cloud runs without MQTT, or its broker link is down."""

    status = 503
    code = "ErrNodeUnreachable"


class NodeOffline(CloudError):
    """The node is not connected, so it cannot answer."""

    status = 409
    code = "ErrNodeOffline"


class NodeTimeout(CloudError):
    """The node is connected but did not answer in time."""

    status = 504
    code = "ErrNodeTimeout"


class NodeFailed(CloudError):
    """The node answered that the command failed."""

    status = 502
    code = "ErrNodeCommand"


@dataclass(frozen=True)
class LogQuery:
    """Which part of an app's log to fetch; None leaves the choice to the agent."""

    tail_lines: int | None = None
    since_seconds: int | None = None


async def app_logs(ctx: CloudContext, caller: Caller, name: str, app: str, query: LogQuery) -> str:
    """The recent log text of `app` on node `name`, fetched from the node's agent."""
    state = await nodes.get(ctx, caller, name)
    if app not in _deployed(state.document):
        raise NotFound("application", app, caller.namespace)
    if ctx.commands is None:
        raise NoBroker("this cloud runs without MQTT (--no-mqtt): it cannot reach nodes")
    if state.ready is not Ready.ONLINE:
        raise NodeOffline(f"node {name} is offline: it cannot send logs now")
    args: dict[str, Any] = {"app": app}
    if query.tail_lines is not None:
        args["tailLines"] = query.tail_lines
    if query.since_seconds is not None:
        args["sinceSeconds"] = query.since_seconds
    outcome = await _call(ctx, nodes.nid(caller.namespace, name), "logs", args)
    if not outcome.ok:
        raise NodeFailed(f"node {name} could not read the logs of {app}: {outcome.error}")
    if not isinstance(outcome.result, str):
        raise NodeFailed(f"node {name} answered the logs command without log text")
    return outcome.result


def _deployed(doc: Document) -> set[str]:
    """Apps (system apps included) in a node's desired state."""
    return set(DesiredState.from_section(doc["state"][shadow.DESIRED]).app_versions())


async def _call(
    ctx: CloudContext, nid: str, cmd: CommandName, args: dict[str, Any]
) -> CommandOutcome:
    sender = ctx.commands
    assert sender is not None  # checked by the caller, before the node's readiness
    timeout = ctx.settings.command_timeout
    try:
        async with asyncio.timeout(timeout):
            return await sender.call(nid, cmd, args)
    except TimeoutError:
        raise NodeTimeout(f"node {nid} did not answer within {timeout:g} s") from None
