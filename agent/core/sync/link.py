"""The agent's one MQTT connection: mutual TLS, its own topics, the presence will, reconnect.

Each connection subscribes to the node's cloud → agent topics first, publishes the retained
`presence` online message (its will says offline), and only then tells the sync module it is up
(DESIGN §4: subscribe first, then `shadow/get`). Messages are handed over in arrival order. A
dropped or refused connection is retried with jittered exponential backoff, 1 s doubling to
60 s; publishing while disconnected raises `LinkDown`. The TLS files are read again on every
connect, so `reconnect()` after a certificate renewal brings the new certificate into use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiomqtt

from agent.contracts import topics
from agent.contracts.kit import backoff
from agent.contracts.messages import Presence
from agent.contracts.topics import Channel
from agent.contracts.version import VERSION

log = logging.getLogger(__name__)
BACKOFF_BASE: Final = 1.0
BACKOFF_CAP: Final = 60.0
BACKOFF_JITTER: Final = 0.5
QOS: Final = 1
# paho leaves Nagle's algorithm on: a request written right after a PUBACK then waits for the
# broker's delayed ACK (40 ms on Linux) — a delay on every round trip.
NO_DELAY: Final = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class LinkDown(Exception):
    """The broker connection is not up (or dropped while publishing)."""


@dataclass(frozen=True)
class LinkSettings:
    """Where the broker is and who this node is (the certificate's CN is the nid).

    `keepalive` and `timeout` (seconds) have no default here: they come from core.yml
    (`cloud.keepalive`, `sync.timeout`), whose defaults are the only ones.
    """

    host: str
    port: int
    nid: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    keepalive: int
    timeout: float


@dataclass(frozen=True)
class Received:
    """One message for this node, detached from the MQTT library."""

    channel: Channel
    payload: bytes


Deliver = Callable[[Received], Awaitable[None]]
Connected = Callable[[], Coroutine[Any, Any, None]]


def tls_context(settings: LinkSettings) -> ssl.SSLContext:
    """Trust the cloud CA only; present the node's certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(settings.ca_file))
    context.load_cert_chain(settings.cert_file, settings.key_file)
    return context


class AgentLink:
    """Owns the node's aiomqtt client; `run` is the body of the agent's `sync-link` task."""

    def __init__(self, settings: LinkSettings, deliver: Deliver, connected: Connected) -> None:
        self._settings = settings
        self._deliver = deliver
        self._connected_callback = connected
        self._client: aiomqtt.Client | None = None
        self._up = asyncio.Event()
        self._stopping = asyncio.Event()
        self._reconnect = asyncio.Event()
        self.connects = 0

    @property
    def up(self) -> bool:
        """Whether the link is connected and subscribed."""
        return self._client is not None

    async def wait_up(self) -> None:
        """Return once connected (callers bound it with a timeout)."""
        await self._up.wait()

    async def run(self) -> None:
        """Connect and serve until stopped; reconnect after every failure."""
        failures = 0
        while not self._stopping.is_set():
            # Cleared before the files are read: a reconnect asked for from here on is honoured.
            self._reconnect.clear()
            try:
                context = await asyncio.to_thread(tls_context, self._settings)
                await self._session(context)
                failures = 0
            except (aiomqtt.MqttError, ssl.SSLError, OSError) as exc:
                failures += 1
                log.warning(
                    "cloud link down",
                    extra={"broker": self._address, "error": str(exc), "failures": failures},
                )
            if self._stopping.is_set():
                break
            if self._reconnect.is_set() and not failures:
                continue  # asked for: connect again at once
            delay = backoff.delay(
                max(failures, 1), base=BACKOFF_BASE, cap=BACKOFF_CAP, jitter=BACKOFF_JITTER
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def stop(self) -> None:
        """Say offline (a clean disconnect sends no will) and end `run`."""
        self._stopping.set()
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, LinkDown, TimeoutError):
                async with asyncio.timeout(2):
                    await self.publish(Channel.PRESENCE, _presence(online=False), retain=True)

    def reconnect(self) -> None:
        """Disconnect cleanly (no will) and connect again at once, reading the TLS files anew.

        Apps and the sync state are untouched; the new connection subscribes and reads the
        shadow like any other. Without a connection this changes nothing: the next connect
        reads the files anyway.
        """
        self._reconnect.set()

    async def publish(self, channel: Channel, payload: bytes, *, retain: bool = False) -> None:
        """Publish on the node's own topic with QoS 1 and wait for the PUBACK, or LinkDown."""
        client = self._client
        if client is None:
            raise LinkDown(f"not connected to the cloud broker at {self._address}")
        topic = topics.build(self._settings.nid, channel)
        try:
            await client.publish(
                topic, payload, qos=QOS, retain=retain, timeout=self._settings.timeout
            )
        except aiomqtt.MqttError as exc:
            raise LinkDown(f"publish to {topic} failed: {exc}") from exc

    async def _session(self, context: ssl.SSLContext) -> None:
        settings = self._settings
        client = aiomqtt.Client(
            settings.host,
            settings.port,
            identifier=settings.nid,
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=True,
            keepalive=settings.keepalive,
            tls_context=context,
            timeout=settings.timeout,
            socket_options=[NO_DELAY],
            will=aiomqtt.Will(
                topics.build(settings.nid, Channel.PRESENCE),
                _presence(online=False),
                qos=QOS,
                retain=True,
            ),
        )
        async with client:
            for topic in topics.agent_subscriptions(settings.nid):
                await client.subscribe(topic, qos=QOS)
            self._client = client
            on_connect: asyncio.Task[None] | None = None
            try:
                await self.publish(Channel.PRESENCE, _presence(online=True), retain=True)
                self._up.set()
                self.connects += 1
                log.info("cloud link up", extra={"broker": self._address, "nid": settings.nid})
                # Runs beside the message loop: it waits for answers that this loop delivers.
                on_connect = asyncio.create_task(self._connected_callback(), name="sync-on-connect")
                await self._serve(client)
            finally:
                self._client = None
                self._up.clear()
                if on_connect is not None:
                    on_connect.cancel()
                    # The callback logs its own failures; a link going down ends it, that's all.
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await on_connect

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Deliver messages until the connection drops (MqttError) or a reconnect is asked for."""
        receive = asyncio.create_task(self._receive(client), name="sync-link-receive")
        asked = asyncio.create_task(self._reconnect.wait(), name="sync-link-reconnect")
        try:
            await asyncio.wait({receive, asked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            receive.cancel()
            asked.cancel()
            await asyncio.wait({receive, asked})
        if not receive.cancelled():
            receive.result()  # the drop's MqttError, for run() to log and back off
        if self._reconnect.is_set():
            log.info("cloud link reconnecting", extra={"broker": self._address})

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            received = _received(message)
            if received is not None:
                await self._deliver(received)

    @property
    def _address(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"


def _presence(*, online: bool) -> bytes:
    if not online:
        return Presence(online=False).to_bytes()
    return Presence(online=True, timestamp=time.time(), version=VERSION).to_bytes()


def _received(message: aiomqtt.Message) -> Received | None:
    try:
        topic = topics.parse(message.topic.value)
    except topics.TopicError as exc:
        log.warning("dropped a message on an unknown topic", extra={"error": str(exc)})
        return None
    payload = message.payload
    data = payload if isinstance(payload, bytes) else str(payload).encode()
    return Received(topic.channel, data)
