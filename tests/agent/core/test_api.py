"""The local API over real HTTP: Baetyl's routes and shapes, clear 4xx errors, graceful stop.

The HTTP layer itself (parsing, limits, timeouts) is tested in test_httpserve.py.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from agent.contracts.report import AppStats, AppStatus, InstanceStats, NodeInfo
from agent.core import node
from agent.core.api import ApiProviders, ApiServer, CloudState, create_api, serve_api
from agent.core.backend import NodeIdentity


class FixedApps:
    """A backend stand-in with two apps and fixed logs; it records what it was asked."""

    def __init__(self) -> None:
        self.stats = {
            "zeta": AppStats(name="zeta", version="2", status=AppStatus.PENDING),
            "alpha": AppStats(
                name="alpha",
                version="7",
                status=AppStatus.RUNNING,
                instances={
                    "alpha-main-0": InstanceStats(
                        name="alpha-main-0", service_name="main", status=AppStatus.RUNNING, pid=42
                    )
                },
            ),
        }
        self.log_calls: list[tuple[str, int | None, int | None]] = []
        self.fail_observe = False
        self.log_delay = 0.0

    def observe(self) -> dict[str, AppStats]:
        if self.fail_observe:
            raise RuntimeError("backend exploded")
        return dict(self.stats)

    async def logs(self, app: str, *, tail_lines: int | None, since_seconds: int | None) -> str:
        self.log_calls.append((app, tail_lines, since_seconds))
        await asyncio.sleep(self.log_delay)
        if app not in self.stats:
            raise KeyError(app)
        return f"{app} line 1\n{app} line 2 ünïcode\n"


class MemoryProperties:
    """Node properties held in memory, merged like the sync module will merge them."""

    def __init__(self) -> None:
        self.report: dict[str, str] = {"location": "hall-1"}
        self.desire: dict[str, str] = {"mode": "eco"}

    def current(self) -> dict[str, Any]:
        return {"report": dict(self.report), "desire": dict(self.desire)}

    async def update(self, patch: dict[str, str]) -> dict[str, Any]:
        self.report.update(patch)
        return dict(self.report)


class Client:
    """A real HTTP client bound to one running API server."""

    def __init__(self, session: aiohttp.ClientSession, server: ApiServer) -> None:
        self.session = session
        self.server = server

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.server.url + path) as response:
            return response.status, await _body(response)

    async def put(self, path: str, data: bytes) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        async with self.session.put(self.server.url + path, data=data, headers=headers) as response:
            return response.status, await _body(response)


async def _body(response: aiohttp.ClientResponse) -> Any:
    if response.content_type == "application/json":
        return await response.json()
    return await response.text()


@pytest.fixture
def apps() -> FixedApps:
    return FixedApps()


@pytest.fixture
def properties() -> MemoryProperties:
    return MemoryProperties()


class CloudLink:
    """The sync module's link state, set by the test."""

    def __init__(self) -> None:
        self.state = CloudState(connected=False, reports=0)

    def __call__(self) -> CloudState:
        return self.state


@pytest.fixture
def cloud_link() -> CloudLink:
    return CloudLink()


@pytest.fixture
def providers(
    apps: FixedApps, properties: MemoryProperties, cloud_link: CloudLink, tmp_path: Path
) -> ApiProviders:
    return ApiProviders(
        identity=NodeIdentity(namespace="default", name="edge-01"),
        apps=apps,
        properties=properties,
        stats=node.StatsCollector(tmp_path),
        core=node.core_info("native"),
        cloud=cloud_link,
    )


@pytest.fixture
async def server(providers: ApiProviders) -> AsyncIterator[ApiServer]:
    api = ApiServer(create_api(providers), host="127.0.0.1", port=0, shutdown_timeout=0.5)
    await api.start()
    try:
        yield api
    finally:
        await api.stop()


@pytest.fixture
async def client(server: ApiServer) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(session, server)


async def test_health_says_ok_and_who_is_running(client: Client) -> None:
    status, body = await client.get("/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["node"] == "default.edge-01"
    assert body["backend"] == "native"
    assert body["uptime"] >= 0
    assert body["cloud"] == {"connected": False, "reports": 0}


async def test_health_tells_whether_the_cloud_link_is_up_and_how_many_reports_went_through(
    client: Client, cloud_link: CloudLink
) -> None:
    cloud_link.state = CloudState(connected=True, reports=3)
    status, body = await client.get("/health")
    assert status == 200
    assert body["cloud"] == {"connected": True, "reports": 3}
    assert body["status"] == "ok"


async def test_node_stats_is_a_node_view_with_a_fresh_report(client: Client) -> None:
    status, body = await client.get("/node/stats")
    assert status == 200
    assert (body["namespace"], body["name"]) == ("default", "edge-01")
    report = body["report"]
    hostname = socket.gethostname()
    assert set(report) == {"time", "core", "node", "nodestats", "apps", "appstats"}
    assert report["time"].endswith("Z")
    assert report["core"]["backend"] == "native"
    info = NodeInfo.model_validate(report["node"][hostname])
    assert info.hostname == hostname
    assert "kernelVer" in report["node"][hostname]
    assert report["nodestats"][hostname]["ready"] is True
    stats = report["nodestats"][hostname]
    assert 0 <= float(stats["usage"]["cpu"]) <= int(stats["capacity"]["cpu"])  # cores, "0.25"
    assert 0 <= float(stats["percent"]["memory"]) <= 1  # a fraction, as Baetyl's view
    mounts = {"disk_" + p.mountpoint for p in psutil.disk_partitions(all=False)}
    assert mounts <= set(stats["usage"])  # one entry per real file system
    assert set(stats["netio"]) >= {"netBytesSent", "netBytesRecv"}
    assert report["apps"] == [{"name": "alpha", "version": "7"}, {"name": "zeta", "version": "2"}]
    assert [s["name"] for s in report["appstats"]] == ["alpha", "zeta"]
    assert report["appstats"][0]["instances"]["alpha-main-0"]["pid"] == 42


async def test_node_properties_show_report_and_desire(client: Client) -> None:
    assert await client.get("/node/properties") == (
        200,
        {"report": {"location": "hall-1"}, "desire": {"mode": "eco"}},
    )


async def test_putting_properties_merges_them_into_the_report(
    client: Client, properties: MemoryProperties
) -> None:
    status, body = await client.put("/node/properties", b'{"floor": "3", "location": "hall-2"}')
    assert (status, body) == (200, {"location": "hall-2", "floor": "3"})
    assert properties.report == {"location": "hall-2", "floor": "3"}
    _, current = await client.get("/node/properties")
    assert current["report"] == {"location": "hall-2", "floor": "3"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body must be a JSON object of string values"),
        (b"[1, 2]", "body must be a JSON object of string values"),
        (b'"text"', "body must be a JSON object of string values"),
        (b'{"a": 1, "b": "ok", "c": null}', "a: value must be a string (got 1); c: value must"),
        (b'{"": "x"}', "key '': must be 1-128 characters"),
        (b'{"' + b"k" * 129 + b'": "x"}', "must be 1-128 characters"),
        (b"\xff\xfe", "body must be a JSON object"),
    ],
)
async def test_bad_property_bodies_get_a_400_that_names_the_problem(
    client: Client, properties: MemoryProperties, body: bytes, message: str
) -> None:
    status, answer = await client.put("/node/properties", body)
    assert status == 400
    assert answer["code"] == "ErrRequestParamInvalid"
    assert message in answer["message"]
    assert properties.report == {"location": "hall-1"}  # nothing changed


async def test_an_oversized_body_is_refused(client: Client) -> None:
    body = b'{"k": "' + b"x" * (64 * 1024 - 9) + b'"}'  # 64 KiB exactly is still fine
    assert len(body) == 64 * 1024
    status, answer = await client.put("/node/properties", body)
    assert status == 200
    assert len(answer["k"]) == 64 * 1024 - 9
    status, answer = await client.put("/node/properties", b'{"k": "' + b"x" * 70_000 + b'"}')
    assert status == 413
    assert answer["code"] == "ErrRequestParamInvalid"


async def test_service_logs_come_as_text_with_the_query_passed_on(
    client: Client, apps: FixedApps
) -> None:
    async with client.session.get(
        client.server.url + "/services/alpha/log?tailLines=50&sinceSeconds=600"
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert await response.text() == "alpha line 1\nalpha line 2 ünïcode\n"
    assert await client.get("/services/zeta/log?tailLines=") == (
        200,
        "zeta line 1\nzeta line 2 ünïcode\n",
    )
    assert apps.log_calls == [("alpha", 50, 600), ("zeta", None, None)]


async def test_logs_of_an_unknown_app_are_a_404(client: Client) -> None:
    status, body = await client.get("/services/ghost/log")
    assert status == 404
    assert body == {
        "code": "ErrResourceNotFound",
        "message": "The (application) resource (ghost) is not found.",
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("tailLines=-1", "tailLines must be an integer from 1 to 10000"),
        ("tailLines=abc", "tailLines must be an integer"),
        ("tailLines=0", "tailLines must be an integer"),
        ("tailLines=10001", "tailLines must be an integer"),
        ("tailLines=1&tailLines=2", "tailLines is given more than once"),
        ("sinceSeconds=1.5", "sinceSeconds must be an integer from 1 to 2592000"),
        ("sinceSeconds=99999999999999999999", "sinceSeconds must be an integer"),
        ("tailLines=%EF%BC%95", "tailLines must be an integer"),  # a full-width digit 5
    ],
)
async def test_bad_log_queries_are_a_400(
    client: Client, apps: FixedApps, query: str, message: str
) -> None:
    status, body = await client.get(f"/services/alpha/log?{query}")
    assert status == 400
    assert body["code"] == "ErrRequestParamInvalid"
    assert message in body["message"]
    assert apps.log_calls == []


async def test_an_invalid_app_name_is_a_400(client: Client) -> None:
    status, body = await client.get("/services/Bad_Name/log")
    assert status == 400
    assert "application name 'Bad_Name'" in body["message"]


async def test_unknown_routes_and_methods_answer_in_the_error_shape(client: Client) -> None:
    assert await client.get("/nope") == (
        404,
        {"code": "ErrRequestMethodNotFound", "message": "Not Found"},
    )
    async with client.session.post(client.server.url + "/node/stats") as response:
        assert response.status == 405
        assert (await response.json())["code"] == "ErrRequestMethodNotFound"


async def test_wrong_methods_are_a_405_that_names_the_allowed_ones(client: Client) -> None:
    for method, path, allow in (
        ("POST", "/node/properties", "GET, PUT"),
        ("DELETE", "/services/alpha/log", "GET"),
        ("HEAD", "/health", "GET"),
    ):
        async with client.session.request(method, client.server.url + path) as response:
            assert response.status == 405
            assert response.headers["Allow"] == allow
            if method != "HEAD":
                assert await response.json() == {
                    "code": "ErrRequestMethodNotFound",
                    "message": "Method Not Allowed",
                }


async def test_the_app_name_in_the_path_is_percent_decoded(client: Client, apps: FixedApps) -> None:
    status, text = await client.get("/services/al%70ha/log")
    assert (status, text) == (200, "alpha line 1\nalpha line 2 ünïcode\n")
    status, body = await client.get("/services/al%2Fpha/log")  # one segment, not two
    assert status == 400
    assert "application name 'al/pha'" in body["message"]
    assert apps.log_calls == [("alpha", None, None)]


async def test_requests_the_http_layer_refuses_answer_in_the_error_shape(
    client: Client, properties: MemoryProperties
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"k": "v"}'

    url = client.server.url + "/node/properties"
    async with client.session.put(url, data=chunks()) as response:  # sent chunked
        assert response.status == 411
        assert (await response.json())["code"] == "ErrRequestParamInvalid"
    headers = {f"X-{i}": "v" for i in range(70)}
    async with client.session.get(client.server.url + "/health", headers=headers) as response:
        assert response.status == 431
        assert await response.json() == {
            "code": "ErrRequestParamInvalid",
            "message": "more than 64 headers",
        }
    assert properties.report == {"location": "hall-1"}


def test_importing_the_api_does_not_import_aiohttp() -> None:
    # aiohttp's server cost the agent ≈ 11 MB of RSS (docs/performance-notes.md, "Agent (issue 5)").
    code = "import sys, agent.core.app, agent.core.api; print(sorted(m for m in sys.modules"
    code += " if m.split('.')[0] in ('aiohttp', 'http.server')))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


async def test_a_failing_provider_is_a_500_and_the_server_keeps_serving(
    client: Client, apps: FixedApps, caplog: pytest.LogCaptureFixture
) -> None:
    apps.fail_observe = True
    status, body = await client.get("/node/stats")
    assert (status, body) == (
        500,
        {"code": "UnknownError", "message": "internal error; see the agent log"},
    )
    assert "backend exploded" not in str(body)
    assert any(record.getMessage() == "local API request failed" for record in caplog.records)
    assert (await client.get("/health"))[0] == 200


async def test_stop_drops_a_request_that_outlives_the_grace_period(
    providers: ApiProviders, apps: FixedApps
) -> None:
    apps.log_delay = 3600
    server = ApiServer(create_api(providers), host="127.0.0.1", port=0, shutdown_timeout=0.2)
    await server.start()
    url = server.url
    async with aiohttp.ClientSession() as session:
        hanging = asyncio.create_task(session.get(url + "/services/alpha/log"))
        while not apps.log_calls:
            await asyncio.sleep(0.01)
        await asyncio.wait_for(server.stop(), timeout=10)
        with pytest.raises(aiohttp.ClientError):
            await hanging
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(url + "/health")


async def test_a_port_in_use_fails_start_and_leaves_the_first_server_alone(
    providers: ApiProviders, server: ApiServer, client: Client
) -> None:
    second = ApiServer(create_api(providers), host="127.0.0.1", port=server.port)
    with pytest.raises(OSError, match="address already in use"):
        await second.start()
    await second.stop()
    assert (await client.get("/health"))[0] == 200
    with pytest.raises(RuntimeError, match="not listening"):
        _ = second.port


async def test_serve_api_runs_as_a_task_until_cancelled(providers: ApiProviders) -> None:
    started: asyncio.Future[ApiServer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_api(create_api(providers), host="127.0.0.1", port=0, started=started.set_result),
        name="local-api",
    )
    server = await asyncio.wait_for(started, timeout=10)
    url = server.url
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/health") as response:
            assert response.status == 200
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(url + "/health")


async def test_the_api_can_listen_on_ipv6_loopback(providers: ApiProviders) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    server = ApiServer(create_api(providers), host="::1", port=0)
    try:
        await server.start()
    except OSError as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc}")
    try:
        assert server.url.startswith("http://[::1]:")
        async with aiohttp.ClientSession() as session, session.get(server.url + "/health") as r:
            assert r.status == 200
    finally:
        await server.stop()
