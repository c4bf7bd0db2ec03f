"""The agent's one MQTT connection: the shared `MqttLink` with the node's options.

Mutual TLS with the node certificate (client id = the nid), MQTT 3.1.1 with a clean session,
and a retained will `{"online": false}` on `presence`. Each connection subscribes to the node's
cloud → agent topics, publishes the retained `presence` online message, and only then tells the
sync module it is up (DESIGN §4: subscribe first, then `shadow/get`). The TLS files are read
again on every connect, so `reconnect()` after a certificate renewal brings the new certificate
into use. Messages on topics of other shapes are logged and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Final

import aiomqtt

from agent.contracts import topics
from agent.contracts.kit.mqtt_link import QOS, LinkDown, LinkOptions, MqttLink
from agent.contracts.messages import Presence
from agent.contracts.topics import Channel
from agent.contracts.version import VERSION
from agent.core.sync.link_plugin import Connected, Deliver, LinkSettings, Received, SyncLink

__all__ = ["AgentLink", "LinkDown", "LinkSettings", "Received"]

log = logging.getLogger(__name__)
LINK_NAME: Final = "cloud link"  # "cloud link up" is the line `baetyl-init start` waits for
STOP_PRESENCE_TIMEOUT: Final = 2.0


class AgentLink:
    """The node's link; `run` is the body of the agent's `sync-link` task.

    The built-in sync link plug-in `mqtt` (agent.core.sync.link_plugin, setup.cfg): the class
    is its factory.
    """

    def __init__(self, settings: LinkSettings, deliver: Deliver, connected: Connected) -> None:
        self._settings = settings
        self._deliver = deliver
        options = LinkOptions(
            name=LINK_NAME,
            host=settings.host,
            port=settings.port,
            identifier=settings.nid,
            ca_file=settings.ca_file,
            cert_file=settings.cert_file,
            key_file=settings.key_file,
            keepalive=settings.keepalive,
            timeout=settings.timeout,
            subscriptions=topics.agent_subscriptions(settings.nid),
            will=aiomqtt.Will(
                topics.build(settings.nid, Channel.PRESENCE),
                _presence(online=False),
                qos=QOS,
                retain=True,
            ),
        )
        self._link = MqttLink(options, self._received, on_session=self._say_online, on_up=connected)

    @property
    def up(self) -> bool:
        """Whether the link is connected and subscribed."""
        return self._link.up

    @property
    def connects(self) -> int:
        """How many times the link came up (tests and the polling imitation count them)."""
        return self._link.connects

    async def wait_up(self) -> None:
        """Return once connected (callers bound it with a timeout)."""
        await self._link.wait_up()

    async def run(self) -> None:
        """Connect and serve until stopped; reconnect after every failure."""
        await self._link.run()

    async def stop(self) -> None:
        """Say offline (a clean disconnect sends no will) and end `run`."""
        if self._link.up:
            with contextlib.suppress(LinkDown, TimeoutError):
                async with asyncio.timeout(STOP_PRESENCE_TIMEOUT):
                    await self.publish(Channel.PRESENCE, _presence(online=False), retain=True)
        self._link.stop()

    def reconnect(self) -> None:
        """Disconnect cleanly (no will) and connect again at once, reading the TLS files anew.

        Apps and the sync state are untouched; the new connection subscribes and reads the
        shadow like any other.
        """
        self._link.reconnect()

    async def publish(self, channel: Channel, payload: bytes, *, retain: bool = False) -> None:
        """Publish on the node's own topic with QoS 1 and wait for the PUBACK, or LinkDown."""
        await self._link.publish(topics.build(self._settings.nid, channel), payload, retain=retain)

    async def _say_online(self) -> None:
        await self.publish(Channel.PRESENCE, _presence(online=True), retain=True)

    async def _received(self, message: aiomqtt.Message) -> None:
        try:
            topic = topics.parse(message.topic.value)
        except topics.TopicError as exc:
            log.warning("dropped a message on an unknown topic", extra={"error": str(exc)})
            return
        await self._deliver(Received(topic.channel, bytes(message.payload)))


def _presence(*, online: bool) -> bytes:
    if not online:
        return Presence(online=False).to_bytes()
    return Presence(online=True, timestamp=time.time(), version=VERSION).to_bytes()


if TYPE_CHECKING:

    def _a_sync_link(link: AgentLink) -> SyncLink:
        """Never called: mypy checks here that the built-in satisfies the plug-in protocol."""
        return link
