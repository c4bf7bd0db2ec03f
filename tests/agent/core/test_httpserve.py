"""The local API's HTTP layer over raw sockets: parsing, limits, timeouts, concurrency, stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from agent.core.httpserve import (
    HttpError,
    Limits,
    Request,
    Response,
    Router,
    Server,
    json_response,
)

LIMITS = Limits(
    request_line=1024, headers=8, header_bytes=2048, body=4096, read_timeout=0.5, write_timeout=2
)


class EchoApp:
    """Answers with what it was asked; `/wait` holds requests until the test releases them."""

    def __init__(self) -> None:
        self.router = Router()
        self.router.add("GET", "/words/{word}", self.word)
        self.router.add("GET", "/body", self.last_body)
        self.router.add("PUT", "/body", self.put_body)
        self.router.add("GET", "/wait", self.wait)
        self.router.add("GET", "/boom", self.boom)
        self.body = b""
        self.waiting = 0
        self.finished = 0
        self.everyone_waits = 0
        self.all_in = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, request: Request) -> Response:
        try:
            handler, params = self.router.resolve(request.method, request.segments)
        except HttpError as exc:
            return self.error(exc)
        return await handler(replace(request, params=params))

    def error(self, error: HttpError) -> Response:
        body = {"status": error.status, "message": error.message}
        return json_response(body, status=error.status, headers=error.headers)

    async def word(self, request: Request) -> Response:
        return json_response(
            {"word": request.params["word"], "path": request.path, "query": dict(request.query)}
        )

    async def last_body(self, request: Request) -> Response:
        return Response(200, self.body, "application/octet-stream")

    async def put_body(self, request: Request) -> Response:
        self.body = request.body
        return json_response({"length": len(request.body)})

    async def wait(self, request: Request) -> Response:
        self.waiting += 1
        if self.waiting == self.everyone_waits:
            self.all_in.set()
        await self.release.wait()
        self.finished += 1
        return json_response({"waited": True})

    async def boom(self, request: Request) -> Response:
        raise RuntimeError("handler bug")


@pytest.fixture
def app() -> EchoApp:
    return EchoApp()


@pytest.fixture
async def server(app: EchoApp) -> AsyncIterator[Server]:
    server = Server(
        app, host="127.0.0.1", port=0, limits=LIMITS, shutdown_timeout=0.5, name="test-http"
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Answer:
    """A parsed raw HTTP answer."""

    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self.version, status, self.reason = status_line.split(" ", 2)
        self.status = int(status)
        self.headers = {
            name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)
        }

    def json(self) -> Any:
        return json.loads(self.body)


async def exchange(server: Server, data: bytes, *, timeout: float = 5) -> Answer:
    """Send `data` on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        await _close(writer)
    if not raw:
        raise EOFError("closed without an answer")
    return Answer(raw)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


def get(path: str, *headers: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: test", *headers, "", ""]).encode()


async def test_an_answer_has_length_type_date_and_closes_the_connection(server: Server) -> None:
    answer = await exchange(server, get("/words/hello?a=1"))
    assert (answer.version, answer.status, answer.reason) == ("HTTP/1.1", 200, "OK")
    assert answer.headers["content-length"] == str(len(answer.body))
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.headers["connection"] == "close"
    assert answer.headers["date"].endswith(" GMT")
    assert answer.json() == {"word": "hello", "path": "/words/hello", "query": {"a": ["1"]}}


async def test_http_1_0_is_served_without_a_host_but_http_1_1_needs_one(server: Server) -> None:
    assert (await exchange(server, b"GET /words/old HTTP/1.0\r\n\r\n")).status == 200
    answer = await exchange(server, b"GET /words/new HTTP/1.1\r\n\r\n")
    assert answer.status == 400
    assert answer.json()["message"] == "an HTTP/1.1 request needs a Host header"


async def test_the_path_is_percent_decoded_segment_by_segment_and_the_query_parsed(
    server: Server,
) -> None:
    answer = await exchange(server, get("/words/h%C3%A9llo%2Fx?a=1&a=%C3%A9&b=&c=x+y"))
    assert answer.status == 200
    assert answer.json() == {
        "word": "héllo/x",
        "path": "/words/héllo/x",
        "query": {"a": ["1", "é"], "b": [""], "c": ["x y"]},
    }
    assert (await exchange(server, get("/w%6Frds/ok"))).json()["word"] == "ok"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/words/%FF", "the path is not UTF-8 once percent-decoded"),
        ("/words/x?a=%FF", "malformed query"),
        ("/words/x?" + "&".join(f"k{i}=v" for i in range(101)), "malformed query"),
    ],
)
async def test_a_path_or_query_that_does_not_decode_is_a_400(
    server: Server, target: str, message: str
) -> None:
    answer = await exchange(server, get(target))
    assert answer.status == 400
    assert message in answer.json()["message"]


@pytest.mark.parametrize(
    "line",
    [
        b"GET\r\n",
        b"GET /words/x\r\n",
        b"GET /words/x HTTP/1.1 extra\r\n",
        b"GET  /words/x HTTP/1.1\r\n",
        b"G(T /words/x HTTP/1.1\r\n",
        b"GET words/x HTTP/1.1\r\n",
        b"GET http://test/words/x HTTP/1.1\r\n",
        b"GET /words/x#frag HTTP/1.1\r\n",
        b"GET /words/\x01 HTTP/1.1\r\n",
        b"GET /words/\xc3\xa9 HTTP/1.1\r\n",
        b"GET /words/x HTTX/1.1\r\n",
        b"GET /words/x http/1.1\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n",  # a TLS hello
    ],
)
async def test_a_malformed_request_line_is_a_400(server: Server, line: bytes) -> None:
    answer = await exchange(server, line + b"Host: test\r\n\r\n")
    assert answer.status == 400
    assert answer.headers["connection"] == "close"


async def test_an_unknown_http_version_is_a_505(server: Server) -> None:
    assert (await exchange(server, b"GET /words/x HTTP/2.0\r\nHost: t\r\n\r\n")).status == 505


async def test_one_empty_line_before_the_request_is_ignored(server: Server) -> None:
    assert (await exchange(server, b"\r\n" + get("/words/x"))).status == 200


async def test_bare_newlines_end_lines_too(server: Server) -> None:
    assert (await exchange(server, b"GET /words/x HTTP/1.1\nHost: t\n\n")).status == 200


@pytest.mark.parametrize(
    "header",
    [
        "Host2 test",  # no colon
        "X-Name : v",  # whitespace before the colon
        " folded",  # obsolete line folding
        "X-Bad\x01: v",
        "X-Bad: a\x00b",
        "Host: again",
        "Content-Length: 1\r\nContent-Length: 1",
        "Content-Length: abc",
        "Content-Length: -1",
    ],
)
async def test_a_malformed_header_is_a_400(server: Server, header: str) -> None:
    answer = await exchange(server, get("/words/x", header))
    assert answer.status == 400


async def test_repeated_headers_are_joined(app: EchoApp, server: Server) -> None:
    seen: list[str] = []

    async def headers(request: Request) -> Response:
        seen.append(request.headers["x-tag"])
        return json_response({})

    app.router.add("GET", "/headers", headers)
    assert (await exchange(server, get("/headers", "X-Tag: a", "x-tag: b"))).status == 200
    assert seen == ["a, b"]


async def test_a_request_line_over_the_limit_is_a_414(server: Server) -> None:
    assert (await exchange(server, get("/words/" + "x" * 1000))).status == 200
    answer = await exchange(server, get("/words/" + "x" * 1100))
    assert answer.status == 414
    assert answer.json()["message"] == "the request line is longer than 1024 bytes"


async def test_a_request_line_without_end_is_a_414(server: Server) -> None:
    answer = await exchange(server, b"GET /" + b"x" * 50_000)
    assert answer.status == 414


async def test_too_many_headers_are_a_431(server: Server) -> None:
    assert (await exchange(server, get("/words/x", *[f"X-{i}: v" for i in range(7)]))).status == 200
    answer = await exchange(server, get("/words/x", *[f"X-{i}: v" for i in range(8)]))
    assert answer.status == 431
    assert answer.json()["message"] == "more than 8 headers"


async def test_headers_over_the_byte_limit_are_a_431(server: Server) -> None:
    answer = await exchange(server, get("/words/x", "X-A: " + "a" * 1020, "X-B: " + "b" * 1020))
    assert answer.status == 431
    assert answer.json()["message"] == "the headers are larger than 2048 bytes"
    answer = await exchange(server, get("/words/x", "X-Long: " + "v" * 100_000))
    assert answer.status == 431


async def test_a_body_up_to_the_limit_is_read_and_one_over_it_is_a_413(
    app: EchoApp, server: Server
) -> None:
    body = bytes(range(256)) * 16  # 4096 bytes, the limit
    head = f"PUT /body HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    answer = await exchange(server, head + body)
    assert (answer.status, answer.json()) == (200, {"length": 4096})
    assert app.body == body
    big = b"x" * 200_000  # sent in full: the 413 must still reach the client (no reset)
    head = f"PUT /body HTTP/1.1\r\nHost: t\r\nContent-Length: {len(big)}\r\n\r\n".encode()
    answer = await exchange(server, head + big)
    assert answer.status == 413
    assert answer.json()["message"] == "body is larger than 4096 bytes"
    assert app.body == body


async def test_a_huge_content_length_is_a_413(server: Server) -> None:
    answer = await exchange(server, get("/words/x", "Content-Length: " + "9" * 500))
    assert answer.status == 413


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (["Transfer-Encoding: chunked"], 411),
        (["Transfer-Encoding: gzip, chunked"], 501),
        (["Transfer-Encoding: chunked", "Content-Length: 5"], 400),
    ],
)
async def test_transfer_codings_are_refused(
    app: EchoApp, server: Server, headers: list[str], status: int
) -> None:
    head = "\r\n".join(["PUT /body HTTP/1.1", "Host: t", *headers, "", ""]).encode()
    answer = await exchange(server, head + b"5\r\nhello\r\n0\r\n\r\n")
    assert answer.status == status
    assert app.body == b""


async def test_transfer_encoding_in_http_1_0_is_a_400(server: Server) -> None:
    request = b"PUT /body HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert (await exchange(server, request)).status == 400


async def test_expect_100_continue_gets_an_interim_answer(app: EchoApp, server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            b"PUT /body HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"ok")
        answer = Answer(await asyncio.wait_for(reader.read(), 5))
    finally:
        await _close(writer)
    assert answer.status == 200
    assert app.body == b"ok"
    assert (await exchange(server, get("/words/x", "Expect: magic"))).status == 417


async def test_unknown_paths_are_a_404_and_wrong_methods_a_405_with_allow(server: Server) -> None:
    assert (await exchange(server, get("/nope"))).status == 404
    assert (await exchange(server, get("/words/"))).status == 404  # {word} needs a segment
    assert (await exchange(server, get("/words/x/"))).status == 404
    answer = await exchange(server, b"POST /body HTTP/1.1\r\nHost: t\r\n\r\n")
    assert answer.status == 405
    assert answer.headers["allow"] == "GET, PUT"
    answer = await exchange(server, b"HEAD /words/x HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (answer.status, answer.headers["allow"]) == (405, "GET")
    assert answer.body == b""  # an answer to HEAD has no body, only its length
    assert int(answer.headers["content-length"]) > 0


async def test_a_failing_handler_is_a_500_and_the_server_keeps_serving(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    answer = await exchange(server, get("/boom"))
    assert answer.status == 500
    assert b"handler bug" not in answer.body
    assert any(r.getMessage() == "request failed" and r.exc_info for r in caplog.records)
    assert (await exchange(server, get("/words/x"))).status == 200


async def test_a_slow_client_times_out_while_the_server_keeps_answering_others(
    server: Server,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /words/slow HTTP/1.1\r\nHost: t\r\n")  # and never the end of the head
        started = time.monotonic()
        assert (await exchange(server, get("/words/fast"))).status == 200
        answer = Answer(await asyncio.wait_for(reader.read(), 5))
        assert answer.status == 408
        assert 0.4 < time.monotonic() - started < 3
    finally:
        await _close(writer)


async def test_a_body_that_never_arrives_in_full_times_out(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"PUT /body HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        answer = Answer(await asyncio.wait_for(reader.read(), 5))
        assert answer.status == 408
    finally:
        await _close(writer)


async def test_requests_are_served_concurrently(app: EchoApp, server: Server) -> None:
    app.everyone_waits = 20
    requests = [asyncio.create_task(exchange(server, get("/wait"))) for _ in range(20)]
    await asyncio.wait_for(app.all_in.wait(), 5)  # all 20 handlers run at the same time
    app.release.set()
    answers = await asyncio.gather(*requests)
    assert [a.status for a in answers] == [200] * 20


async def test_clients_that_go_away_mid_request_do_not_hurt_the_server(
    app: EchoApp, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    for partial in (
        b"",
        b"GET /words/x HT",
        b"GET /words/x HTTP/1.1\r\nHost: t\r\n",
        b"PUT /body HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n01234",
    ):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(partial)
        await writer.drain()
        await _close(writer)
    app.everyone_waits = 1
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(get("/wait"))
    await writer.drain()
    await asyncio.wait_for(app.all_in.wait(), 5)
    writer.transport.abort()  # gone while its handler runs
    app.release.set()
    while app.finished < 1:
        await asyncio.sleep(0.01)
    assert (await exchange(server, get("/words/still-here"))).status == 200
    assert app.body == b""
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_stop_lets_a_request_in_progress_finish(app: EchoApp) -> None:
    server = Server(app, host="127.0.0.1", port=0, shutdown_timeout=5, name="test-http")
    await server.start()
    app.everyone_waits = 1
    request = asyncio.create_task(exchange(server, get("/wait")))
    await asyncio.wait_for(app.all_in.wait(), 5)
    stopping = asyncio.create_task(server.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done()  # waits for the request
    app.release.set()
    answer = await request
    assert (answer.status, answer.json()) == (200, {"waited": True})
    await asyncio.wait_for(stopping, 2)


async def test_stop_drops_a_request_that_outlives_the_grace_period(app: EchoApp) -> None:
    server = Server(app, host="127.0.0.1", port=0, shutdown_timeout=0.3, name="test-http")
    await server.start()
    app.everyone_waits = 1
    request = asyncio.create_task(exchange(server, get("/wait")))
    await asyncio.wait_for(app.all_in.wait(), 5)
    started = time.monotonic()
    await server.stop()
    assert 0.25 < time.monotonic() - started < 2
    with pytest.raises((ConnectionError, EOFError)):  # reset, or closed without an answer
        await request
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("test-http-")]


async def test_stop_does_not_wait_for_connections_without_a_request(app: EchoApp) -> None:
    server = Server(app, host="127.0.0.1", port=0, shutdown_timeout=5, name="test-http")
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /words/x HTTP/1.1\r\n")  # half a head
    await writer.drain()
    await asyncio.sleep(0.1)
    assert [t for t in asyncio.all_tasks() if t.get_name() == "test-http-connection-1"]
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 1
    assert await asyncio.wait_for(reader.read(), 5) == b""
    await _close(writer)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("test-http-")]
    with pytest.raises(RuntimeError, match="not listening"):
        _ = server.port


async def test_access_lines_are_logged_at_debug_with_fields(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.core.httpserve")
    await exchange(server, get("/words/x%20y"))
    (line,) = [r for r in caplog.records if r.getMessage() == "request served"]
    assert line.levelno == logging.DEBUG
    fields = line.__dict__
    assert (fields["method"], fields["path"], fields["status"]) == ("GET", "/words/x y", 200)
    assert fields["bytes"] > 0
    assert fields["peer"].startswith("127.0.0.1:")
