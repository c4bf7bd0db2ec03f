"""The MQTT bridge of a cloud replica: the link, request workers and delta pushes, as one unit.

Received messages are sharded by node id over a few worker queues, so one node's messages are
handled in order while different nodes proceed in parallel. Desired changes committed by the REST
side are queued (`desired_changed`) and pushed by a task of their own, so a request never waits
for the broker. `start` spawns every task, `stop` ends them in order within a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Mapping
from typing import Any, Final

from agent.contracts import topics
from agent.contracts.kit.aiotasks import Tasks
from agent.contracts.messages import CommandName
from agent.contracts.topics import Channel
from cloud.mqtt.commands import Commands
from cloud.mqtt.handlers import Handlers, doorbell
from cloud.mqtt.link import MAX_INFLIGHT, Incoming, Link, LinkDown
from cloud.mqtt.ratelimit import RateLimiter
from cloud.mqtt.share import share_group
from cloud.services.commands import CommandOutcome, NoBroker
from cloud.services.context import CloudContext
from cloud.settings import MqttSettings
from cloud.store.desired import DesiredChanges, Written

log = logging.getLogger(__name__)
WORKERS: Final = 8
QUEUE_SIZE: Final = 1000
STOP_TIMEOUT: Final = 5.0
PUSHES_IN_FLIGHT: Final = MAX_INFLIGHT  # delta publishes awaiting their PUBACK at once


class Bridge:
    """Build it anywhere; `start(ctx)` in the running loop, `stop()` before the store closes."""

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self._pending: DesiredChanges = {}
        self._tasks = Tasks("MQTT bridge", logger=log)
        self._queues: list[asyncio.Queue[Incoming]] = []
        self._changed: asyncio.Event | None = None
        self._link: Link | None = None
        self._handlers: Handlers | None = None
        self._commands: Commands | None = None

    @property
    def link(self) -> Link:
        """The broker link (only after `start`)."""
        if self._link is None:
            raise LinkDown("the MQTT bridge is not started")
        return self._link

    def start(self, ctx: CloudContext) -> None:
        """Spawn the link, the workers and the delta pusher; offer node commands to `ctx`."""
        self._link = Link(self.settings, self._enqueue, share_group=share_group(ctx.secrets))
        limiter = RateLimiter(self.settings.bridge.max_messages_per_second)
        self._commands = Commands(self._link.publish)
        self._handlers = Handlers(
            ctx,
            self._link.publish,
            limiter,
            self._commands,
            clear_retained=self._link.clear_retained,
        )
        ctx.commands = self
        self._changed = asyncio.Event()
        if self._pending:
            self._changed.set()
        self._queues = [asyncio.Queue(QUEUE_SIZE) for _ in range(WORKERS)]
        self._tasks.spawn(self._link.run(), "mqtt-link")
        for n, queue in enumerate(self._queues):
            self._tasks.spawn(self._work(queue), f"mqtt-worker-{n}")
        self._tasks.spawn(self._push_deltas(), "mqtt-delta-push")

    async def stop(self) -> None:
        """Stop receiving, then cancel the workers and the pusher; wait at most STOP_TIMEOUT."""
        if self._link is not None:
            self._link.stop()
        await self._tasks.stop(grace=STOP_TIMEOUT)

    async def call(self, nid: str, cmd: CommandName, args: dict[str, Any]) -> CommandOutcome:
        """CommandSender of the REST side: one command to one node, until answered or cancelled."""
        if self._commands is None or self._link is None or not self._link.up:
            raise NoBroker("the cloud is not connected to its MQTT broker")
        try:
            return await self._commands.call(nid, cmd, args)
        except LinkDown as exc:
            raise NoBroker(f"could not send the command to node {nid}: {exc}") from None

    def desired_changed(self, changes: DesiredChanges) -> None:
        """Listener of CloudContext: queue a delta push for these nodes (never blocks)."""
        _keep_newest(self._pending, changes)
        if self._changed is not None:
            self._changed.set()

    async def _enqueue(self, message: Incoming) -> None:
        # Shard by the topic's node segment so one node's messages keep their order.
        node = message.topic.split("/", 3)[2] if message.topic.count("/") >= 3 else ""
        shard = zlib.crc32(node.encode()) % len(self._queues)
        await self._queues[shard].put(message)

    async def _work(self, queue: asyncio.Queue[Incoming]) -> None:
        assert self._handlers is not None
        while True:
            message = await queue.get()
            try:
                await self._handlers.handle(message)
            finally:
                queue.task_done()

    async def _push_deltas(self) -> None:
        assert self._changed is not None
        link = self.link
        while True:
            await self._changed.wait()
            self._changed.clear()
            await link.wait_up()
            changes, self._pending = self._pending, {}
            try:
                failed = await self._push(changes)
            except Exception:
                log.exception("delta push failed", extra={"nodes": len(changes)})
                failed = changes
            if failed:
                _keep_newest(self._pending, failed)
                self._changed.set()
                # Pause before retrying so a broken broker does not turn this into a busy loop.
                await asyncio.sleep(1.0)

    async def _push(self, changes: DesiredChanges) -> DesiredChanges:
        """Ring each node with its new version, PUBACKs awaited together; return the failures.

        The version is all a node needs (it then reads its document, decision #111), and the
        desired write that produced it returned it: nothing is read from the database here.
        """
        gate = asyncio.Semaphore(PUSHES_IN_FLIGHT)
        failed: DesiredChanges = {}

        async def push(nid: str, change: Written) -> None:
            async with gate:
                try:
                    await self.link.publish(
                        topics.build(nid, Channel.SHADOW_UPDATE_DELTA), doorbell(change)
                    )
                except LinkDown as exc:
                    log.warning("delta push failed", extra={"nid": nid, "error": str(exc)})
                    failed[nid] = change

        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for nid, change in changes.items():
                group.create_task(push(nid, change), name=f"delta-push-{nid}")
        log.debug(
            "pushed deltas",
            extra={
                "nodes": len(changes),
                "failed": len(failed),
                "ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        return failed


def _keep_newest(pending: DesiredChanges, changes: Mapping[str, Written]) -> None:
    """Merge `changes` into `pending`; a node keeps its newest version (pushes may overtake)."""
    for nid, change in changes.items():
        queued = pending.get(nid)
        if queued is None or change.version > queued.version:
            pending[nid] = change
