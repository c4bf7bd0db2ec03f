"""The cloud replica's MQTT link: the shared `MqttLink` with the bridge's options.

MQTT 5, for "retain as published": the retain flag of a message a node published reaches the
cloud, which deletes retained messages the protocol has no use for (decision #76); MQTT 3.1.1
clears the flag on delivery to existing subscriptions. The client id is
`baetyl-cloud:<replica>`, the subscriptions are the share group's (cloud.mqtt.share).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import aiomqtt

from agent.contracts import topics
from agent.contracts.kit.mqtt_link import LinkDown, LinkOptions, MqttLink
from cloud.settings import MqttSettings

__all__ = ["MAX_INFLIGHT", "Incoming", "Link", "LinkDown"]

PUBLISH_TIMEOUT: Final = 10.0
# paho sends at most 20 QoS 1 messages before their PUBACKs by default; a delta push to 1,000
# nodes then waits on round trips (decision #111). The bridge pushes as many at once.
MAX_INFLIGHT: Final = 256
LINK_NAME: Final = "MQTT link"  # "MQTT link up" is the line launchers wait for


@dataclass(frozen=True)
class Incoming:
    """One received message, detached from the MQTT library."""

    topic: str
    payload: bytes
    retain: bool


class Link(MqttLink):
    """The aiomqtt client of one cloud replica."""

    def __init__(
        self,
        settings: MqttSettings,
        deliver: Callable[[Incoming], Awaitable[None]],
        *,
        share_group: str,
    ) -> None:
        """`share_group` is the deployment's secret group (cloud.mqtt.share)."""
        options = LinkOptions(
            name=LINK_NAME,
            host=settings.host,
            port=settings.port,
            identifier=f"baetyl-cloud:{settings.bridge.replica}",
            ca_file=settings.ca_file,
            cert_file=settings.cert_file,
            key_file=settings.key_file,
            keepalive=settings.bridge.keepalive,
            timeout=PUBLISH_TIMEOUT,
            subscriptions=topics.cloud_subscriptions(group=share_group),
            mqtt5=True,
            retain_as_published=True,
            max_inflight=MAX_INFLIGHT,
        )

        async def detached(message: aiomqtt.Message) -> None:
            await deliver(Incoming(message.topic.value, bytes(message.payload), message.retain))

        super().__init__(options, detached)

    async def clear_retained(self, topic: str) -> None:
        """Delete the retained message of `topic` (an empty retained publish), or raise LinkDown."""
        await self.publish(topic, b"", retain=True)
