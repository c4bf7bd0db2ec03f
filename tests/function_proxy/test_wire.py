"""The proxy's own HTTP/1.1, on raw sockets: what callers may send it (pipelining, chunked
bodies, `Expect: 100-continue`, HTTP/1.0) and what they may not (malformed requests, huge
heads, bodies over the limit, other methods), and what runtimes may answer it (chunked or
unframed answers, garbage, a connection closed midway). The proxy is the real process; the
runtimes here are small servers in the test, so that they can answer what a real one never
would."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.function_proxy.kit import Running, free_port, proxy, runtime, write_code
from tools.kit.waiting import eventually

Answerer = Callable[[bytes], Awaitable[bytes | None]]
"""A fake runtime's answer to one request head: the bytes to send (None: close at once)."""


@dataclass
class FakeRuntime:
    """A listening socket that answers each request with what `answer` returns."""

    port: int
    answer: Answerer
    accepted: int = 0
    heads: list[bytes] = field(default_factory=list)
    close_after: bool = False
    """Hang up after the next answer (sent as it is, complete or not)."""


@asynccontextmanager
async def fake_runtime(answer: Answerer) -> AsyncIterator[FakeRuntime]:
    fake = FakeRuntime(0, answer)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fake.accepted += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                fake.heads.append(head)
                reply = await fake.answer(head)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if fake.close_after:
                    fake.close_after = False
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    async with server:
        yield fake


@dataclass
class Setup:
    proxy: Running
    registry: Path

    def route(self, app: str, port: int) -> None:
        staged = self.registry.with_suffix(".tmp")
        staged.write_text(json.dumps({app: {"fn": [f"127.0.0.1:{port}"]}}), encoding="utf-8")
        staged.replace(self.registry)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    config = write_code(tmp_path)
    registry = tmp_path / "services.json"
    async with runtime(config, free_port(), tmp_path / "runtime.log") as real:
        registry.write_text(
            json.dumps({"hello": {"fn": [f"127.0.0.1:{real.port}"]}}), encoding="utf-8"
        )
        async with proxy(
            registry, free_port(), tmp_path / "proxy.log", "--timeout", "3", "--max-body", "1000"
        ) as running:
            yield Setup(running, registry)


async def exchange(port: int, data: bytes, answers: int = 1) -> list[tuple[bytes, bytes]]:
    """Send raw `data`, read `answers` answers (head, body) or until the proxy closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return [answer for answer in [await read_answer(reader) for _ in range(answers)] if answer]
    finally:
        writer.close()


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    except asyncio.IncompleteReadError:
        return None
    length = int(header(head, b"content-length") or 0)
    return head, await reader.readexactly(length)


def header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def request(path: str, body: bytes = b"", *extra: str, version: str = "1.1") -> bytes:
    lines = [f"POST {path} HTTP/{version}", "Host: x", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def test_pipelined_requests_are_answered_in_order_on_one_connection(setup: Setup) -> None:
    data = b"".join(request("/hello/echo", str(i).encode()) for i in range(5))
    answers = await exchange(setup.proxy.port, data, answers=5)
    assert [json.loads(body)["event"] for _, body in answers] == [0, 1, 2, 3, 4]


async def test_a_chunked_body_http_1_0_and_expect_continue_are_served(setup: Setup) -> None:
    chunked = (
        b"POST /hello/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n"
    )
    ((head, body),) = await exchange(setup.proxy.port, chunked)
    assert (status(head), json.loads(body)["event"]) == (200, [1, 2])
    # HTTP/1.0 without keep-alive: answered, then closed by the proxy.
    answers = await exchange(setup.proxy.port, request("/hello/echo", b"5", version="1.0"), 2)
    assert len(answers) == 1
    assert header(answers[0][0], b"connection") == b"close"
    # A caller that waits for 100 Continue before its body gets it, then the answer.
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.proxy.port)
    writer.write(request("/hello/echo", b"", "Expect: 100-continue").replace(b"th: 0", b"th: 2"))
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    assert status(interim) == 100
    writer.write(b"42")
    answer = await read_answer(reader)
    writer.close()
    assert answer is not None
    assert json.loads(answer[1])["event"] == 42


async def test_bad_requests_are_refused_and_the_proxy_stays_up(setup: Setup) -> None:
    port = setup.proxy.port
    cases: list[tuple[bytes, int]] = [
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET /hello/echo HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"CONNECT example:443 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (request("/hello/echo", b"", "X-Big: " + "y" * 20000), 431),
        (request("/hello/echo", b"", *(f"X-{i}: 1" for i in range(150))), 431),
        (request("/hello/echo", b"x" * 1001), 413),
        (request("/hello/echo", b"", "Expect: 100-continue").replace(b"th: 0", b"th: 5000"), 413),
        (b"PATCH /hello/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
        (request("/", b""), 404),
        (request("/hello/echo/more", b""), 404),
    ]  # fmt: skip
    for data, expected in cases:
        answers = await exchange(port, data)
        assert answers, data[:60]
        head, body = answers[0]
        assert status(head) == expected, (data[:60], head, body)
        assert json.loads(body)["errCode"], body
    # No protocol switch: refused at its headers, and nothing after it is read.
    upgrade = request("/hello/echo", b"7", "Upgrade: websocket", "Connection: upgrade")
    answers = await exchange(port, upgrade + request("/hello/echo", b"8"), answers=2)
    assert [status(head) for head, _ in answers] == [400]
    # A body declared far over the limit is not read: 413 at once, and the connection closes.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request("/hello/echo", b"").replace(b"th: 0", b"th: 100000000"))
    answer = await read_answer(reader)
    assert answer is not None
    assert status(answer[0]) == 413
    assert await reader.read() == b""
    writer.close()
    ((head, _),) = await exchange(port, request("/hello/echo", b"1"))
    assert status(head) == 200


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(min_size=1, max_size=300))
async def test_random_bytes_never_break_the_proxy(setup: Setup, garbage: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.proxy.port)
    writer.write(garbage + b"\r\n\r\n")
    await writer.drain()
    writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 20)  # an answer or a close, never a hang
    writer.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 ")
    ((head, _),) = await exchange(setup.proxy.port, request("/hello/echo", b"1"))
    assert status(head) == 200
    assert setup.proxy.process.returncode is None


async def test_what_a_runtime_answers_is_read_whatever_its_framing(setup: Setup) -> None:
    framings: dict[bytes, bytes] = {
        b"/chunked": (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        ),
        b"/length": b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    }

    async def answer(head: bytes) -> bytes | None:
        path = head.split(b" ")[1]
        if path == b"/unframed":  # no length: the answer ends when the runtime hangs up
            fake.close_after = True
            return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
        return framings[path]

    async with fake_runtime(answer) as fake:
        setup.route("fake", fake.port)
        await ready_fake(setup)
        for path, expected in (("chunked", (200, b"hello world")), ("length", (201, b"ok"))):
            ((head, body),) = await exchange(setup.proxy.port, request(f"/fake/{path}"))
            assert (status(head), body) == expected
        # Sequential calls share one pooled connection to the runtime.
        before = fake.accepted
        for _ in range(3):
            await exchange(setup.proxy.port, request("/fake/length"))
        assert fake.accepted == before
        ((head, body),) = await exchange(setup.proxy.port, request("/fake/unframed"))
        assert (status(head), body) == (200, b"until the end")
        # What the runtime got: our head, the invoke id, nothing hop-by-hop from the caller.
        sent = fake.heads[-1].lower()
        assert b"x-baetyl-invoke-id: " in sent
        assert b"connection" not in sent


async def ready_fake(setup: Setup) -> None:
    """Until the proxy routes app `fake` (the registry is re-read within half a second)."""

    async def routed() -> bool:
        ((head, _),) = await exchange(setup.proxy.port, request("/fake/length"))
        return status(head) != 404 or header(head, b"content-type") != b"application/json"

    await eventually(routed, limit=20, what="the proxy routing the fake runtime")


async def test_a_runtime_that_breaks_gets_502_and_the_next_call_a_new_connection(
    setup: Setup,
) -> None:
    behaviour = {"mode": "ok"}

    async def answer(_: bytes) -> bytes | None:
        mode = behaviour["mode"]
        if mode == "garbage":
            return b"SPLAT\r\n\r\n"
        if mode == "close":
            return None
        if mode == "half":  # part of an answer, then the runtime hangs up
            fake.close_after = True
            return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async with fake_runtime(answer) as fake:
        setup.route("fake", fake.port)
        await ready_fake(setup)
        for mode, said in (
            ("garbage", "unreadable answer"),
            ("close", "connection closed"),
            ("half", "connection closed"),
        ):
            behaviour["mode"] = mode
            ((head, body),) = await exchange(setup.proxy.port, request("/fake/f"))
            assert status(head) == 502, (mode, body)
            assert said in json.loads(body)["message"], (mode, body)
            behaviour["mode"] = "ok"
            ((head, body),) = await exchange(setup.proxy.port, request("/fake/f"))
            assert (status(head), body) == (200, b"ok"), mode


async def test_sigterm_lets_the_call_in_flight_finish(setup: Setup) -> None:
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def answer(head: bytes) -> bytes | None:
        if b"/slow" in head.split(b"\r\n")[0]:
            arrived.set()
            await release.wait()
        return b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone"

    async with fake_runtime(answer) as fake:
        setup.route("fake", fake.port)
        await ready_fake(setup)
        reader, writer = await asyncio.open_connection("127.0.0.1", setup.proxy.port)
        writer.write(request("/fake/slow"))
        await writer.drain()
        await asyncio.wait_for(arrived.wait(), 20)  # the call is with the runtime
        setup.proxy.process.send_signal(signal.SIGTERM)

        # Still listening until the signal is handled; then no new connection is accepted.
        async def refusing() -> bool:
            try:
                _, probe = await asyncio.open_connection("127.0.0.1", setup.proxy.port)
            except OSError:
                return True
            probe.close()
            return False

        await eventually(refusing, limit=20, what="the proxy refusing connections after SIGTERM")
        release.set()
        answer_ = await read_answer(reader)
        writer.close()
        assert answer_ is not None
        assert (status(answer_[0]), answer_[1]) == (200, b"done")
        assert header(answer_[0], b"connection") == b"close"
        assert await asyncio.wait_for(setup.proxy.process.wait(), 20) == 0
