"""`/v1/nodes/{name}/core/configs` through a real server: Baetyl's ranges and defaults, the
agent settings written into the node's desired `core`, and what may not be changed."""

from __future__ import annotations

from typing import Any

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
    ("an upgrade", core(version="v2.0.0"), 400, "upgrading agents is not offered"),
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
