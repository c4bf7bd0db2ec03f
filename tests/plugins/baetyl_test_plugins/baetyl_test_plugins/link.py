"""Sync link plug-in `test-counting`: the built-in MQTT link, counting what it publishes per
channel — a plug-in may wrap another."""

from __future__ import annotations

from collections import Counter

from agent.contracts.topics import Channel
from agent.core.sync.link import AgentLink
from agent.core.sync.link_plugin import Connected, Deliver, LinkSettings


class CountingLink:
    """Delegates to an `AgentLink`; `published` counts each channel's messages."""

    def __init__(self, settings: LinkSettings, deliver: Deliver, connected: Connected) -> None:
        self._inner = AgentLink(settings, deliver, connected)
        self.published: Counter[Channel] = Counter()

    @property
    def up(self) -> bool:
        return self._inner.up

    @property
    def connects(self) -> int:
        return self._inner.connects

    async def wait_up(self) -> None:
        await self._inner.wait_up()

    async def run(self) -> None:
        await self._inner.run()

    async def stop(self) -> None:
        await self._inner.stop()

    def reconnect(self) -> None:
        self._inner.reconnect()

    async def publish(self, channel: Channel, payload: bytes) -> None:
        await self._inner.publish(channel, payload)
        self.published[channel] += 1
