"""`python -m function_proxy.runtime` as a real process: how handlers are called and answered,
what a failing handler does to the runtime (nothing), and what it refuses to start with."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.function_proxy.kit import Running, call, free_port, runtime, write_code


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Running]:
    config = write_code(tmp_path)
    async with runtime(config, free_port(), tmp_path / "runtime.log", "--concurrency", "2") as r:
        yield r


async def test_handlers_get_the_event_and_context_and_their_results_are_encoded(
    served: Running,
) -> None:
    async with aiohttp.ClientSession() as session:
        status, body, headers = await call(
            session,
            "POST",
            f"{served.url}/echo",
            b'{"a": [1, 2]}',
            **{"X-Baetyl-Invoke-Id": "inv-1"},
        )
        assert status == 200
        answer = json.loads(body)
        assert answer["event"] == {"a": [1, 2]}
        assert answer["context"] == {
            "serviceName": "fn",
            "functionName": "echo",
            "invokeId": "inv-1",
        }
        assert headers["X-Baetyl-Invoke-Id"] == "inv-1"
        # Not JSON: the bytes as they came; Baetyl's `invokeid` header is read too.
        _, body, _ = await call(session, "PUT", f"{served.url}/echo", b"\xff\x00", invokeid="old")
        answer = json.loads(body)
        assert answer["event"] == {"bytes": "ff00"}
        assert answer["context"]["invokeId"] == "old"
        # No body: None; no invoke id: one is made and answered.
        _, body, headers = await call(session, "GET", f"{served.url}/echo")
        answer = json.loads(body)
        assert answer["event"] is None
        assert answer["context"]["invokeId"] == headers["X-Baetyl-Invoke-Id"]
        assert len(headers["X-Baetyl-Invoke-Id"]) == 32
        # `/` is the first function of the config.
        _, body, _ = await call(session, "DELETE", f"{served.url}/", b"7")
        assert json.loads(body)["context"]["functionName"] == "echo"
        assert json.loads(body)["event"] == 7
        # An async handler is awaited; bytes answered as they are; None as an empty body.
        status, body, _ = await call(session, "POST", f"{served.url}/later", b"0.01")
        assert (status, json.loads(body)) == (200, {"slept": 0.01, "function": "later"})
        status, body, headers = await call(session, "POST", f"{served.url}/raw")
        assert (status, body) == (200, b"\x00\x01raw")
        assert headers["Content-Type"] == "application/octet-stream"
        status, body, _ = await call(session, "POST", f"{served.url}/nothing")
        assert (status, body) == (200, b"")


async def test_a_failing_handler_answers_500_and_the_runtime_stays_up(served: Running) -> None:
    async with aiohttp.ClientSession() as session:
        status, body, _ = await call(session, "POST", f"{served.url}/fail", b'"x"')
        assert status == 500
        assert json.loads(body) == {"errCode": "ErrFunction", "message": "ValueError: no good: x"}
        status, body, _ = await call(session, "POST", f"{served.url}/missing")
        assert status == 404
        assert json.loads(body)["errCode"] == "ErrFunctionNotFound"
        status, _, _ = await call(session, "POST", f"{served.url}/echo", b"1")
        assert status == 200
    assert served.process.returncode is None


async def test_plain_handlers_run_in_threads_up_to_the_concurrency_limit(served: Running) -> None:
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(
            *(call(session, "POST", f"{served.url}/busy") for _ in range(6)),
            # An async function answers while the threads are busy.
            call(session, "POST", f"{served.url}/later", b"0"),
        )
        assert [status for status, _, _ in answers] == [200] * 7
        _, body, _ = await call(session, "POST", f"{served.url}/peak")
        assert json.loads(body) == 2  # --concurrency 2: never more at once, and as many


BROKEN_IMPORT = "raise RuntimeError('cannot start')\n"


def listed(*functions: dict[str, str]) -> str:
    return json.dumps({"functions": list(functions)})


F = {"name": "f", "codedir": "code"}


@pytest.mark.parametrize(
    ("handlers", "functions", "config_text", "expected"),
    [
        ("def f(e, c):\n    return 1\n", ["g"], None, "index has no callable g"),
        (BROKEN_IMPORT, ["f"], None, "importing"),
        (None, None, listed({**F, "handler": "nodot"}), "module.function"),
        (None, None, listed({**F, "handler": "nothere.f"}), "no module nothere"),
        (None, None, listed({**F, "handler": "index.f", "codedir": "gone"}), "does not exist"),
        (None, None, listed({**F, "handler": "index.f", "name": "../x"}), "name must be"),
        (None, None, listed(), "no functions listed"),
        (None, None, "functions: [", "cannot read the function config"),
        (None, None, listed({**F, "handler": "a.f"}, {**F, "handler": "a.g"}), "repeat"),
    ],
)
async def test_a_config_or_handler_that_cannot_load_stops_the_runtime_with_a_clear_error(
    tmp_path: Path,
    handlers: str | None,
    functions: list[str] | None,
    config_text: str | None,
    expected: str,
) -> None:
    config = write_code(tmp_path, handlers or "def f(e, c):\n    return 1\n", functions or ["f"])
    if config_text is not None:
        config.write_text(config_text, encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "function_proxy.runtime", "--config", str(config),
        "--port", str(free_port()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert expected in err.decode()
    assert "Traceback" not in err.decode()


async def test_without_a_config_or_port_it_says_what_to_give(tmp_path: Path) -> None:
    for args, expected in (
        ((), "no function config"),
        (("--config", str(tmp_path / "f.yml")), "no port"),
    ):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "function_proxy.runtime", *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 2
        assert expected in err.decode()
