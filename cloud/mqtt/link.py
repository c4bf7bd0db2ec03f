"""The cloud's one MQTT connection: mutual TLS, subscriptions, QoS 1 publishing, reconnect.

The aiomqtt client is created inside the running loop on every (re)connect; messages go to the
`deliver` callback in arrival order. A dropped connection is retried with jittered exponential
backoff (1 s → 60 s); publishing while disconnected raises `LinkDown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.contracts import topics
from agent.contracts.kit import backoff
from cloud.settings import MqttSettings

log = logging.getLogger(__name__)
BACKOFF_BASE: Final = 1.0
BACKOFF_CAP: Final = 60.0
BACKOFF_JITTER: Final = 0.5
QOS: Final = 1
PUBLISH_TIMEOUT: Final = 10.0
MAX_INFLIGHT: Final = 256  # QoS 1 publishes awaiting their PUBACK (the bridge pushes as many)
NO_DELAY: Final = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class LinkDown(Exception):
    """The broker connection is not up (or dropped while publishing)."""


@dataclass(frozen=True)
class Incoming:
    """One received message, detached from the MQTT library."""

    topic: str
    payload: bytes
    retain: bool


Deliver = Callable[[Incoming], Awaitable[None]]


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """Client TLS: trust the cloud CA, present this replica's certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(settings.ca_file))
    context.load_cert_chain(settings.cert_file, settings.key_file)
    return context


class Link:
    """Owns the aiomqtt client of one cloud replica."""

    def __init__(self, settings: MqttSettings, deliver: Deliver, *, share_group: str) -> None:
        """`share_group` is the deployment's secret group (cloud.mqtt.share)."""
        self._settings = settings
        self._deliver = deliver
        self._filters = topics.cloud_subscriptions(group=share_group)
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._stopping = asyncio.Event()

    @property
    def connected(self) -> bool:
        """Whether the client is connected and subscribed."""
        return self._client is not None

    async def wait_connected(self) -> None:
        """Return once connected and subscribed (callers bound it with a timeout)."""
        await self._connected.wait()

    async def run(self) -> None:
        """Connect, subscribe and deliver messages until stopped; reconnect on every failure."""
        context = tls_context(self._settings)
        failures = 0
        while not self._stopping.is_set():
            try:
                await self._session(context)
                failures = 0
            except aiomqtt.MqttError as exc:
                failures += 1
                log.warning(
                    "MQTT link down",
                    extra={"broker": self._address, "error": str(exc), "failures": failures},
                )
            if self._stopping.is_set():
                break
            delay = backoff.delay(
                max(failures, 1), base=BACKOFF_BASE, cap=BACKOFF_CAP, jitter=BACKOFF_JITTER
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def stop(self) -> None:
        """Ask `run` to end; the caller then cancels or awaits its task."""
        self._stopping.set()

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish with QoS 1 and wait for the broker's PUBACK, or raise LinkDown."""
        client = self._client
        if client is None:
            raise LinkDown(f"not connected to the MQTT broker at {self._address}")
        try:
            await client.publish(topic, payload, qos=QOS, retain=retain, timeout=PUBLISH_TIMEOUT)
        except aiomqtt.MqttError as exc:
            raise LinkDown(f"publish to {topic} failed: {exc}") from exc

    async def clear_retained(self, topic: str) -> None:
        """Delete the retained message of `topic` (an empty retained publish), or raise LinkDown."""
        await self.publish(topic, b"", retain=True)

    async def _session(self, context: ssl.SSLContext) -> None:
        settings = self._settings
        client = aiomqtt.Client(
            settings.host,
            settings.port,
            identifier=f"baetyl-cloud:{settings.bridge.replica}",
            # MQTT 5 for "retain as published": the retain flag of a message a node published
            # reaches the cloud, which deletes retained messages the protocol has no use for
            # (decision #76). MQTT 3.1.1 clears the flag on delivery to existing subscriptions.
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            keepalive=settings.bridge.keepalive,
            tls_context=context,
            timeout=PUBLISH_TIMEOUT,
            # paho leaves Nagle on: an answer written right after the PUBACK of the request then
            # waits for the broker's delayed ACK, 40 ms on Linux (bench/fleet.py measured it).
            socket_options=[NO_DELAY],
            # paho sends at most 20 QoS 1 messages before their PUBACKs by default; a delta push
            # to 1,000 nodes then waits on round trips (decision #111).
            max_inflight_messages=MAX_INFLIGHT,
        )
        async with client:
            options = SubscribeOptions(qos=QOS, retainAsPublished=True)
            for topic_filter in self._filters:
                await client.subscribe(topic_filter, options=options)
            self._client = client
            self._connected.set()
            log.info("MQTT link up", extra={"broker": self._address})
            try:
                async for message in client.messages:
                    await self._deliver(
                        Incoming(message.topic.value, bytes(message.payload), message.retain)
                    )
            finally:
                self._client = None
                self._connected.clear()

    @property
    def _address(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"
