"""`/v1/nodes/{name}/core/configs` through a real server: Baetyl's ranges and defaults, the
agent settings written into the node's desired `core`, and what may not be changed."""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp
import pytest

from agent.contracts.version import VERSION
from tests.cloud.api.node_helpers import node, report
from tests.harness.cloud import CloudServer

PATH = "/v1/nodes/edge-1/core/configs"


def core(**extra: Any) -> dict[str, Any]:
    return {"frequency": 20, "apiport": 30050, **extra}


async def desired_core(cloud: CloudServer) -> Any:
    shadow = await cloud.ok("GET", "/v1/nodes/edge-1/shadow")
    return shadow["state"]["desired"].get("core"), shadow["version"]


async def test_core_configs_are_kept_and_the_agent_settings_sent_to_the_node(
    cloud: CloudServer,
) -> None:
    await node(cloud, "edge-1")
    assert await cloud.ok("GET", PATH) == {
        "version": VERSION, "frequency": 20, "apiport": 30050, "agentport": 30080,
        "logLevel": "info", "byteUnit": "KB", "speedLimit": 0,
    }  # fmt: skip
    assert (await desired_core(cloud))[0] is None
    # Baetyl's own body (its test's), but for the agent version.
    baetyls = {"version": VERSION, "frequency": 20, "apiport": 30050, "agentport": 30080,
               "logLevel": "debug"}  # fmt: skip
    answer = await cloud.ok("PUT", PATH, baetyls)
    assert answer["logLevel"] == "debug"
    written, version = await desired_core(cloud)
    assert written == {"frequency": 20, "logLevel": "debug"}
    assert cloud.desired_changes[-1]  # the node is told at once
    # The same again changes nothing; a new frequency is sent.
    await cloud.ok("PUT", PATH, baetyls)
    assert (await desired_core(cloud))[1] == version
    await cloud.ok("PUT", PATH, core(frequency=5, byteUnit="MB", speedLimit=100))
    assert (await desired_core(cloud))[0] == {"frequency": 5, "logLevel": "info"}
    assert await cloud.ok("GET", PATH) == {
        "version": VERSION, "frequency": 5, "apiport": 30050, "agentport": 30080,
        "logLevel": "info", "byteUnit": "MB", "speedLimit": 100,
    }  # fmt: skip
    # Once the node reports its agent version, that is the version shown and accepted.
    await report("edge-1", {"core": {"version": "9.9.9", "python": "3.11", "backend": "native"}})
    assert (await cloud.ok("GET", PATH))["version"] == "9.9.9"
    await cloud.ok("PUT", PATH, core(version="9.9.9"))


BAD: list[tuple[str, Any, int, str]] = [
    ("no frequency", {"apiport": 30050}, 400, "frequency"),
    ("no apiport", {"frequency": 20}, 400, "apiport"),
    ("frequency 0", core(frequency=0), 400, "frequency"),
    ("frequency 301", core(frequency=301), 400, "frequency"),
    ("apiport 80", core(apiport=80), 400, "apiport"),
    ("agentport 70000", core(agentport=70000), 400, "agentport"),
    ("loud", core(logLevel="loud"), 400, "logLevel"),
    ("typo", core(logLevl="info"), 400, "did you mean 'logLevel'"),
    ("a version with no wheel", core(version="v2.0.0"), 400, "serves no wheel of v2.0.0"),
    ("not an object", [core()], 400, "object"),
]


@pytest.mark.parametrize(
    ("body", "status", "fragment"), [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
async def test_bad_core_configs_are_refused_and_change_nothing(
    cloud: CloudServer, body: Any, status: int, fragment: str
) -> None:
    await node(cloud, "edge-1")
    await cloud.ok("PUT", PATH, core(frequency=7))
    before = await cloud.ok("GET", PATH), await desired_core(cloud)
    answer = await cloud.call("PUT", PATH, body)
    assert answer.status == status, answer.body
    assert fragment in answer.body["message"]
    assert (await cloud.ok("GET", PATH), await desired_core(cloud)) == before


async def test_another_tenant_and_an_unknown_node_find_nothing(cloud: CloudServer) -> None:
    await node(cloud, "edge-1")
    other = await cloud.token(namespace="tenant-b")
    for method, body in (("GET", None), ("PUT", core())):
        answer = await cloud.call(method, PATH, body, token=other)
        assert answer.status == 404, answer.body
        answer = await cloud.call(method, "/v1/nodes/nobody/core/configs", body)
        assert answer.status == 404, answer.body
    assert (await desired_core(cloud))[0] is None


async def test_a_version_the_cloud_serves_is_sent_with_its_wheel_and_shown_in_versions(
    cloud: CloudServer,
) -> None:
    await node(cloud, "edge-1")
    dist = cloud.data_dir / "dist"
    dist.mkdir(exist_ok=True)
    wheels = {v: dist / f"baetyl_py-{v}-py3-none-any.whl" for v in ("0.9.0", "9.0.0")}
    for version, path in wheels.items():
        path.write_bytes(f"wheel {version}".encode() * 1000)
    await report("edge-1", {"core": {"version": "1.0.0", "python": "3.11", "backend": "native"}})
    versions = "/v1/nodes/edge-1/core/versions"
    assert await cloud.ok("GET", versions) == {
        "versions": ["1.0.0", "9.0.0"], "current": "1.0.0", "wanted": "1.0.0", "previous": "",
        "latest": "9.0.0", "available": ["0.9.0", "9.0.0"],
    }  # fmt: skip

    await cloud.ok("PUT", PATH, core(version="9.0.0"))
    written, _ = await desired_core(cloud)
    wheel = written["wheel"]
    assert written["version"] == "9.0.0"
    assert wheel["url"] == f"{cloud.url}/v1/init/dist/{wheels['9.0.0'].name}"
    assert wheel["sha256"] == hashlib.sha256(wheels["9.0.0"].read_bytes()).hexdigest()
    assert wheel["size"] == wheels["9.0.0"].stat().st_size
    assert (await cloud.ok("GET", PATH))["version"] == "9.0.0"  # what is wanted, as Baetyl shows
    assert (await cloud.ok("GET", versions))["wanted"] == "9.0.0"
    # The URL needs no credentials (a node downloads it), and serves exactly those bytes.
    async with aiohttp.ClientSession() as session, session.get(wheel["url"]) as answer:
        assert answer.status == 200
        assert hashlib.sha256(await answer.read()).hexdigest() == wheel["sha256"]

    # Putting back the version that runs cancels the upgrade: nothing about versions is sent.
    await cloud.ok("PUT", PATH, core(version="1.0.0"))
    assert (await desired_core(cloud))[0] == {"frequency": 20, "logLevel": "info"}

    # The node reports a finished upgrade: previous, current and latest as Baetyl lists them.
    upgrade = {
        "version": "9.0.0",
        "state": "done",
        "previous": "1.0.0",
        "time": "2026-01-01T00:00:00Z",
    }
    await report(
        "edge-1",
        {"core": {"version": "9.0.0", "python": "3.11", "backend": "native", "upgrade": upgrade}},
    )
    shown = await cloud.ok("GET", versions)
    assert shown["versions"] == ["1.0.0", "9.0.0"]
    assert (shown["current"], shown["previous"], shown["latest"]) == ("9.0.0", "1.0.0", "")
    assert shown["upgrade"] == {**upgrade, "message": ""}
    other = await cloud.token(namespace="tenant-b")
    assert (await cloud.call("GET", versions, token=other)).status == 404
