"""A minimal MQTT 3.1.1 client on an asyncio protocol: cheap enough for thousands per process.

aiomqtt runs a paho client, a task and a queue per connection; a simulated node needs none of
that. This client only CONNECTs (clean session, optional will), SUBSCRIBEs, PUBLISHes with QoS 0/1
without waiting for the PUBACK, acknowledges QoS 1 deliveries and answers keepalive with PINGREQ.
Incoming messages go to a plain callback, in arrival order, on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import time
from collections.abc import Callable, Sequence
from typing import Final

CONNECT: Final = 0x10
CONNACK: Final = 0x20
PUBLISH: Final = 0x30
PUBACK: Final = 0x40
SUBSCRIBE: Final = 0x82  # the reserved flag bits of SUBSCRIBE are 0b0010
SUBACK: Final = 0x90
PINGREQ: Final = b"\xc0\x00"
PINGRESP: Final = 0xD0
DISCONNECT: Final = b"\xe0\x00"
_MAX_LENGTH_BYTES: Final = 4

OnMessage = Callable[[str, bytes], None]
OnLost = Callable[[Exception | None], None]


class MqttError(Exception):
    """The broker refused us, broke the protocol or did not answer in time."""


def encode_length(length: int) -> bytes:
    """MQTT's variable-length "remaining length" (1-4 bytes, 7 bits each)."""
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def encode_string(text: str | bytes) -> bytes:
    """A length-prefixed UTF-8 string."""
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def packet(header: int, body: bytes) -> bytes:
    """A whole control packet: fixed header, remaining length, body."""
    return bytes([header]) + encode_length(len(body)) + body


def connect_packet(
    client_id: str,
    *,
    keepalive: int,
    will: tuple[str, bytes, bool] | None = None,
) -> bytes:
    """CONNECT, protocol level 4 (3.1.1), clean session; `will` = (topic, payload, retain)."""
    flags = 0x02
    payload = encode_string(client_id)
    if will is not None:
        topic, message, retain = will
        flags |= 0x04 | (1 << 3) | (0x20 if retain else 0)  # will flag, will QoS 1, retain
        payload += encode_string(topic) + encode_string(message)
    variable = encode_string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    return packet(CONNECT, variable + payload)


def publish_packet(
    topic: bytes, payload: bytes, *, packet_id: int = 0, qos: int = 1, retain: bool = False
) -> bytes:
    """PUBLISH with QoS 0 or 1 (`packet_id` is required for QoS 1)."""
    header = PUBLISH | (qos << 1) | (1 if retain else 0)
    body = encode_string(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    return packet(header, body + payload)


def split_packets(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take every complete packet off the front of `buffer`: (first byte, body) pairs.

    What remains in `buffer` is an incomplete packet waiting for more data.
    """
    packets: list[tuple[int, bytes]] = []
    position, size = 0, len(buffer)
    while size - position >= 2:
        length, multiplier, index = 0, 1, position + 1
        while True:
            if index >= size:
                del buffer[:position]
                return packets
            byte = buffer[index]
            length += (byte & 0x7F) * multiplier
            index += 1
            if not byte & 0x80:
                break
            multiplier *= 128
            if index - position > _MAX_LENGTH_BYTES:
                raise MqttError("malformed remaining length")
        if index + length > size:
            break
        packets.append((buffer[position], bytes(buffer[index : index + length])))
        position = index + length
    del buffer[:position]
    return packets


class MqttClient(asyncio.Protocol):
    """One MQTT connection. Build with `await MqttClient.open(...)`, end with `close()`."""

    def __init__(self, on_message: OnMessage, on_lost: OnLost) -> None:
        self._on_message = on_message
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiting: dict[int, asyncio.Future[bytes]] = {}  # CONNACK = 0, SUBACK = packet id
        self._next_id = 0
        self.unacked = 0
        self.last_sent = time.monotonic()
        self.closing = False

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        context: ssl.SSLContext,
        client_id: str,
        keepalive: int,
        on_message: OnMessage,
        on_lost: OnLost,
        will: tuple[str, bytes, bool] | None = None,
        within: float = 30.0,
    ) -> MqttClient:
        """Connect over TLS and wait `within` s for an accepting CONNACK, or raise MqttError."""
        loop = asyncio.get_running_loop()
        client = cls(on_message, on_lost)
        await asyncio.wait_for(
            loop.create_connection(lambda: client, host, port, ssl=context, server_hostname=host),
            within,
        )
        try:
            answer = await client._request(
                0, connect_packet(client_id, keepalive=keepalive, will=will), within
            )
        except BaseException:
            client.abort()
            raise
        if len(answer) != 2 or answer[1] != 0:
            client.abort()
            raise MqttError(f"CONNACK refused the connection: {answer.hex()}")
        return client

    async def subscribe(
        self, filters: Sequence[str], *, qos: int = 1, within: float = 30.0
    ) -> None:
        """SUBSCRIBE to `filters` and wait for a SUBACK granting every one."""
        packet_id = self._packet_id()
        body = struct.pack("!H", packet_id)
        for topic_filter in filters:
            body += encode_string(topic_filter) + bytes([qos])
        answer = await self._request(packet_id, packet(SUBSCRIBE, body), within)
        if any(code == 0x80 for code in answer[2:]):
            raise MqttError(f"SUBACK refused a subscription: {answer[2:].hex()}")

    def publish(self, topic: bytes, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Send a PUBLISH now; the PUBACK only decrements `unacked` (nothing waits for it)."""
        packet_id = self._packet_id() if qos else 0
        if qos:
            self.unacked += 1
        self._write(publish_packet(topic, payload, packet_id=packet_id, qos=qos, retain=retain))

    def ping(self) -> None:
        """PINGREQ, to keep an otherwise idle connection inside its keepalive."""
        self._write(PINGREQ)

    def close(self) -> None:
        """DISCONNECT (so the broker drops the will) and close the connection."""
        self.closing = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(DISCONNECT)
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection without DISCONNECT."""
        self.closing = True
        if self._transport is not None:
            self._transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        """Parse complete packets and dispatch them."""
        self._buffer += data
        try:
            packets = split_packets(self._buffer)
        except MqttError as exc:
            self._fail(exc)
            return
        for first, body in packets:
            self._dispatch(first, body)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail whoever waits and tell the owner (unless we closed it ourselves)."""
        self._transport = None
        error = MqttError(f"connection lost: {exc}" if exc else "connection closed by the broker")
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()
        if not self.closing:
            self._on_lost(exc)

    def _dispatch(self, first: int, body: bytes) -> None:
        kind = first & 0xF0
        if kind == PUBLISH:
            self._received(first, body)
        elif kind == PUBACK:
            self.unacked -= 1
        elif kind == CONNACK:
            self._resolve(0, body)
        elif kind == SUBACK:
            self._resolve(struct.unpack_from("!H", body)[0], body)
        elif kind != PINGRESP:
            self._fail(MqttError(f"unexpected packet type {first:#04x}"))

    def _received(self, first: int, body: bytes) -> None:
        (topic_length,) = struct.unpack_from("!H", body)
        start = 2 + topic_length
        topic = body[2:start].decode()
        if (first >> 1) & 0x03:
            self._write(bytes([PUBACK, 2]) + body[start : start + 2])
            start += 2
        self._on_message(topic, body[start:])

    async def _request(self, key: int, data: bytes, within: float) -> bytes:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        self._write(data)
        try:
            return await asyncio.wait_for(future, within)
        except TimeoutError as exc:
            raise MqttError(f"no answer from the broker within {within} s") from exc
        finally:
            self._waiting.pop(key, None)

    def _resolve(self, key: int, body: bytes) -> None:
        future = self._waiting.get(key)
        if future is not None and not future.done():
            future.set_result(body)

    def _packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def _write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise MqttError("not connected")
        self._transport.write(data)
        self.last_sent = time.monotonic()

    def _fail(self, exc: MqttError) -> None:
        if self._transport is not None:
            self._transport.abort()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(exc)
