"""`baetyl-function` as a real process in front of real runtimes: routing from the native
backend's registry file, round-robin, retries on connection failure only, deadlines, errors in
Baetyl's shape, the invoke id, the body limit and the metrics."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.function_proxy.kit import Running, call, free_port, proxy, runtime, write_code
from tools.kit.waiting import eventually

APP = "hello"


@dataclass
class Setup:
    """A proxy and the two runtime instances of app `hello` its registry lists."""

    proxy: Running
    runtimes: list[Running]
    registry: Path

    def url(self, path: str) -> str:
        return f"{self.proxy.url}{path}"

    def publish(self, registry: dict[str, dict[str, list[str]]]) -> None:
        """Rewrite the registry as the native backend does (a new file, renamed into place)."""
        staged = self.registry.with_suffix(".tmp")
        staged.write_text(json.dumps(registry), encoding="utf-8")
        staged.replace(self.registry)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    config = write_code(tmp_path)
    registry = tmp_path / "run" / "services.json"
    registry.parent.mkdir()
    async with AsyncExitStack() as stack:
        runtimes = [
            await stack.enter_async_context(
                runtime(config, free_port(), tmp_path / f"runtime-{i}.log")
            )
            for i in range(2)
        ]
        registry.write_text(
            json.dumps({APP: {"fn": [f"127.0.0.1:{r.port}" for r in runtimes]}}),
            encoding="utf-8",
        )
        running = await stack.enter_async_context(
            proxy(registry, free_port(), tmp_path / "proxy.log", "--timeout", "2",
                  "--max-body", "10000")
        )  # fmt: skip
        yield Setup(running, runtimes, registry)


async def pids(session: aiohttp.ClientSession, setup: Setup, calls: int) -> Counter[int]:
    seen: Counter[int] = Counter()
    for _ in range(calls):
        status, body, _ = await call(session, "POST", setup.url(f"/{APP}/echo"), b"{}")
        assert status == 200, body
        seen[json.loads(body)["pid"]] += 1
    return seen


async def test_calls_are_routed_round_robin_with_the_invoke_id_passed_through(
    setup: Setup,
) -> None:
    async with aiohttp.ClientSession() as session:
        seen = await pids(session, setup, 6)
        assert seen == {r.process.pid: 3 for r in setup.runtimes}
        status, body, headers = await call(
            session, "POST", setup.url(f"/{APP}/echo"), b'{"k": 1}', **{"X-Baetyl-Invoke-Id": "i-9"}
        )
        answer = json.loads(body)
        assert (status, answer["event"], answer["context"]["invokeId"]) == (200, {"k": 1}, "i-9")
        assert headers["X-Baetyl-Invoke-Id"] == "i-9"
        _, body, headers = await call(session, "GET", setup.url(f"/{APP}/echo"), invokeid="old")
        assert json.loads(body)["context"]["invokeId"] == "old" == headers["X-Baetyl-Invoke-Id"]
        _, body, headers = await call(session, "GET", setup.url(f"/{APP}"))
        made = headers["X-Baetyl-Invoke-Id"]
        assert json.loads(body)["context"] == {
            "serviceName": "fn", "functionName": "echo", "invokeId": made
        }  # fmt: skip
        # Bytes and their type come back as the runtime answered them.
        status, body, headers = await call(session, "POST", setup.url(f"/{APP}/raw"))
        assert (status, body) == (200, b"\x00\x01raw")
        assert headers["Content-Type"] == "application/octet-stream"


async def test_errors_have_baetyls_shape(setup: Setup) -> None:
    async with aiohttp.ClientSession() as session:
        cases = [
            ("/nobody/echo", b"", 404, "ErrAppNotFound"),
            (f"/{APP}/missing", b"", 404, "ErrFunctionNotFound"),  # the runtime's own answer
            (f"/{APP}/fail", b'"x"', 502, "ErrRuntime"),
            (f"/{APP}/later", b"5", 504, "ErrTimeout"),
            (f"/{APP}/echo", b"x" * 10001, 413, "ErrTooLarge"),
        ]
        for path, body, status, code in cases:
            got, answer, headers = await call(session, "POST", setup.url(path), body)
            assert (got, json.loads(answer)["errCode"]) == (status, code), (path, answer)
            assert headers["X-Baetyl-Invoke-Id"]
        _, answer, _ = await call(session, "POST", setup.url(f"/{APP}/fail"), b'"x"')
        assert json.loads(answer)["message"] == "hello: ValueError: no good: x"
        # The index, when the backend writes one, answers for unknown functions itself.
        (setup.registry.parent / "functions.json").write_text(
            json.dumps({APP: {"echo": "fn"}}), encoding="utf-8"
        )

        async def indexed() -> bool:
            got, answer, _ = await call(session, "POST", setup.url(f"/{APP}/raw"))
            return got == 404 and json.loads(answer)["message"].startswith("app 'hello' has no")

        await eventually(indexed, limit=10, what="the function index read")
        status, _, _ = await call(session, "POST", setup.url(f"/{APP}/echo"), b"1")
        assert status == 200


async def test_a_dead_instance_is_skipped_and_all_dead_is_a_502(setup: Setup) -> None:
    first, second = setup.runtimes
    first.process.kill()
    await first.process.wait()
    async with aiohttp.ClientSession() as session:
        # Never reached, the dead one passes the call on: every call answers, from the other.
        assert await pids(session, setup, 4) == {second.process.pid: 4}
        second.process.kill()
        await second.process.wait()
        status, body, _ = await call(session, "POST", setup.url(f"/{APP}/echo"))
        assert status == 502
        assert "no runtime instance answered" in json.loads(body)["message"]


async def test_registry_changes_are_followed_and_metrics_count_calls(
    setup: Setup, tmp_path: Path
) -> None:
    only = setup.runtimes[1]
    async with aiohttp.ClientSession() as session:
        setup.publish({"other": {"fn": [f"127.0.0.1:{only.port}"]}})

        async def moved() -> bool:
            got, _, _ = await call(session, "POST", setup.url("/other/echo"), b"1")
            return got == 200

        await eventually(moved, limit=10, what="the new registry read")
        status, _, _ = await call(session, "POST", setup.url(f"/{APP}/echo"))
        assert status == 404
        status, text, headers = await call(session, "GET", setup.url("/metrics"))
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain")
        metrics = text.decode()
        assert 'baetyl_function_calls_total{app="other"}' in metrics
        # Calls to apps that do not exist share one series: invented names cannot grow it.
        unknown = 'baetyl_function_calls_total{app="(unknown)"}'
        before = sample(metrics, unknown)
        assert before >= 1  # the call to `hello` above (and any before the registry was read)
        for invented in ("x1", "x2", "x3"):
            await call(session, "POST", setup.url(f"/{invented}/f"))
        _, text, _ = await call(session, "GET", setup.url("/metrics"))
        assert 'app="x1"' not in text.decode()
        assert 'app="hello"' not in text.decode()
        assert sample(text.decode(), unknown) == before + 3
        # An error the runtime answered (an unknown function) is counted by its status.
        await call(session, "POST", setup.url("/other/missing"))
        _, text, _ = await call(session, "GET", setup.url("/metrics"))
        assert sample(text.decode(), 'baetyl_function_errors_total{app="other",code="404"}') == 1
        assert 'baetyl_function_latency_seconds_count{app="other"}' in metrics
        # The histogram agrees with the counter, and its buckets only grow.
        text = (await call(session, "GET", setup.url("/metrics")))[1].decode()
        calls = sample(text, 'baetyl_function_calls_total{app="other"}')
        assert sample(text, 'baetyl_function_latency_seconds_count{app="other"}') == calls
        buckets = [
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith('baetyl_function_latency_seconds_bucket{app="other"')
        ]
        assert buckets == sorted(buckets)
        assert buckets[-1] == calls
        assert 0 < sample(text, 'baetyl_function_latency_seconds_sum{app="other"}') < calls * 2


def sample(metrics: str, series: str) -> float:
    """The value of one series in Prometheus' text format."""
    (line,) = [line for line in metrics.splitlines() if line.startswith(series + " ")]
    return float(line.split()[-1])


async def test_bad_options_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    binary = Path(sys.executable).parent / "baetyl-function"
    for args, expected in (
        ((), "--registry"),
        (("--registry", "r.json", "--listen", "nowhere"), "expected HOST:PORT"),
        (("--registry", "r.json", "--timeout", "0"), "above 0"),
        (("--registry", "r.json", "--max-body", "x"), "expected a number"),
    ):
        process = await asyncio.create_subprocess_exec(
            binary, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 2
        assert expected in err.decode()


async def test_only_this_machine_can_call_the_proxy(setup: Setup) -> None:
    """It listens on loopback: the node's network address refuses the connection, so nothing
    off the node reaches the functions through it (nor the runtimes, also on loopback)."""
    from tools.kube.host import node_ip  # noqa: PLC0415 - the machine's network address

    address = node_ip()
    for port in (setup.proxy.port, setup.runtimes[0].port):
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(address, port)
