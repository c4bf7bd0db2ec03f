"""One MQTT connection that stays up: mutual TLS, subscriptions, QoS 1 publishing, reconnect.

The agent's link to the cloud broker and each cloud replica's bridge link are the same thing
with different options, so they share this class (issue 13). It owns an aiomqtt client made
inside the running loop on every (re)connect; the TLS files are read again each time, so a
renewed certificate comes into use at the next connect. Each connection subscribes first, then
runs the owner's `on_session` hook (the agent's retained presence), and only then counts as up.
Messages go to `deliver` in arrival order. A dropped or refused connection is retried with
jittered exponential backoff, 1 s doubling to 60 s; publishing while disconnected raises
`LinkDown`.

This is the one module of `agent.contracts` that imports aiomqtt (import-linter lets it, and
only it, do so): both sides install aiomqtt, and a link written twice drifted apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.contracts.kit import backoff

log = logging.getLogger(__name__)
BACKOFF_BASE: Final = 1.0
BACKOFF_CAP: Final = 60.0
BACKOFF_JITTER: Final = 0.5
QOS: Final = 1
# paho leaves Nagle's algorithm on: a message written right after a PUBACK then waits for the
# broker's delayed ACK (40 ms on Linux) — a delay on every round trip (bench/fleet.py measured it).
NO_DELAY: Final = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

Deliver = Callable[[aiomqtt.Message], Awaitable[None]]
Hook = Callable[[], Coroutine[Any, Any, None]]


class LinkDown(Exception):
    """The broker connection is not up (or dropped while publishing)."""


@dataclass(frozen=True)
class LinkOptions:
    """Who connects where, and how.

    Attributes:
        name: what the logs call this link ("cloud link", "MQTT link"); `"<name> up"` is
            logged on every connect, and launchers wait for that line.
        host, port: the broker's TLS listener.
        identifier: the MQTT client id.
        ca_file: the CA that signed the broker's certificate (the only one trusted).
        cert_file, key_file: this client's certificate and key.
        keepalive: MQTT keepalive, seconds.
        timeout: seconds to wait for the broker's answer to a connect, subscribe or publish.
        subscriptions: the topic filters subscribed to on every connect.
        mqtt5: MQTT 5 with clean start (else MQTT 3.1.1 with a clean session).
        retain_as_published: subscribe so that a retained message keeps its flag (MQTT 5).
        will: the last will, if any.
        max_inflight: QoS 1 messages sent before their PUBACKs (paho's default is 20).
    """

    name: str
    host: str
    port: int
    identifier: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    keepalive: int
    timeout: float
    subscriptions: Sequence[str]
    mqtt5: bool = False
    retain_as_published: bool = False
    will: aiomqtt.Will | None = None
    max_inflight: int | None = None

    @property
    def address(self) -> str:
        """`host:port`, for messages."""
        return f"{self.host}:{self.port}"


def tls_context(ca_file: Path, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """Client TLS: trust `ca_file` only, present `cert_file`."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.load_cert_chain(cert_file, key_file)
    return context


class MqttLink:
    """Owns one aiomqtt client; `run` is the body of the owner's link task.

    `on_session` runs once per connection after the subscriptions and before the link counts
    as up (it may publish). `on_up` runs beside the message loop once the link is up — it may
    wait for answers the loop delivers — and is cancelled when the connection ends; it logs
    its own failures.
    """

    def __init__(
        self,
        options: LinkOptions,
        deliver: Deliver,
        *,
        on_session: Hook | None = None,
        on_up: Hook | None = None,
    ) -> None:
        self._options = options
        self._deliver = deliver
        self._on_session = on_session
        self._on_up = on_up
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
        """Return once connected and subscribed (callers bound it with a timeout)."""
        await self._up.wait()

    async def run(self) -> None:
        """Connect and serve until stopped; reconnect after every failure."""
        options = self._options
        failures = 0
        while not self._stopping.is_set():
            # Cleared before the files are read: a reconnect asked for from here on is honoured.
            self._reconnect.clear()
            try:
                context = await asyncio.to_thread(
                    tls_context, options.ca_file, options.cert_file, options.key_file
                )
                await self._session(context)
                failures = 0
            except (aiomqtt.MqttError, ssl.SSLError, OSError) as exc:
                failures += 1
                log.warning(
                    "%s down",
                    options.name,
                    extra={"broker": options.address, "error": str(exc), "failures": failures},
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

    def stop(self) -> None:
        """Ask `run` to end; the owner then awaits or cancels its task."""
        self._stopping.set()
        self._reconnect.set()

    def reconnect(self) -> None:
        """Disconnect cleanly (no will) and connect again at once, reading the TLS files anew.

        Without a connection this changes nothing: the next connect reads the files anyway.
        """
        self._reconnect.set()

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish with QoS 1 and wait for the broker's PUBACK, or raise LinkDown."""
        client = self._client
        if client is None:
            raise LinkDown(f"not connected to the MQTT broker at {self._options.address}")
        try:
            await client.publish(
                topic, payload, qos=QOS, retain=retain, timeout=self._options.timeout
            )
        except aiomqtt.MqttError as exc:
            raise LinkDown(f"publish to {topic} failed: {exc}") from exc

    async def _session(self, context: ssl.SSLContext) -> None:
        options = self._options
        client = aiomqtt.Client(
            options.host,
            options.port,
            identifier=options.identifier,
            protocol=aiomqtt.ProtocolVersion.V5 if options.mqtt5 else aiomqtt.ProtocolVersion.V311,
            # MQTT 5 starts clean with `clean_start`, 3.1.1 with `clean_session`; paho refuses
            # a `clean_start` other than its default on 3.1.1.
            clean_session=None if options.mqtt5 else True,
            clean_start=True if options.mqtt5 else MQTT_CLEAN_START_FIRST_ONLY,
            keepalive=options.keepalive,
            tls_context=context,
            timeout=options.timeout,
            socket_options=[NO_DELAY],
            will=options.will,
            max_inflight_messages=options.max_inflight,
        )
        async with client:
            subscribe = SubscribeOptions(qos=QOS, retainAsPublished=options.retain_as_published)
            for topic_filter in options.subscriptions:
                if options.mqtt5:
                    await client.subscribe(topic_filter, options=subscribe)
                else:
                    await client.subscribe(topic_filter, qos=QOS)
            self._client = client
            beside: asyncio.Task[None] | None = None
            try:
                if self._on_session is not None:
                    await self._on_session()
                self._up.set()
                self.connects += 1
                log.info(
                    "%s up",
                    options.name,
                    extra={"broker": options.address, "client": options.identifier},
                )
                if self._on_up is not None:
                    beside = asyncio.create_task(
                        self._on_up(), name=f"{options.name.replace(' ', '-')}-on-up"
                    )
                await self._serve(client)
            finally:
                self._client = None
                self._up.clear()
                if beside is not None:
                    beside.cancel()
                    # The hook logs its own failures; the connection ending ends it, that's all.
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await beside

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Deliver messages until the connection drops (MqttError) or a reconnect is asked for."""
        name = self._options.name.replace(" ", "-")
        receive = asyncio.create_task(self._receive(client), name=f"{name}-receive")
        asked = asyncio.create_task(self._reconnect.wait(), name=f"{name}-reconnect")
        try:
            await asyncio.wait({receive, asked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            receive.cancel()
            asked.cancel()
            await asyncio.wait({receive, asked})
        if not receive.cancelled():
            receive.result()  # the drop's MqttError, for run() to log and back off
        if self._reconnect.is_set() and not self._stopping.is_set():
            options = self._options
            log.info("%s reconnecting", options.name, extra={"broker": options.address})

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self._deliver(message)
