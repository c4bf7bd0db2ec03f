"""Baetyl's core configs through a real cloud and a real agent (issue 16): `frequency` and
`logLevel` set over REST reach the running agent through its shadow and take effect without a
restart, and the node reports them back, which closes the delta."""

from __future__ import annotations

import json
import time

import aiohttp

from tests.e2e.conftest import LIMIT, AgentFactory, Cloud, Json, eventually
from tests.e2e.test_scenarios import wait_ready
from tools.kit.rest import Rest

ONLINE = 1
CHANGED = "agent settings changed"


def log_lines(text: str) -> list[Json]:
    """The agent's JSON log lines (anything else on its output left out)."""
    lines: list[Json] = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


async def put_core(cloud: Cloud, node: str, body: Json) -> Json:
    async with aiohttp.ClientSession() as session:
        answer: Json = await Rest(session, cloud.url, cloud.token).ok(
            "PUT", f"/v1/nodes/{node}/core/configs", body
        )
        return answer


async def reported_core(cloud: Cloud, node: str, **expected: object) -> Json:
    """The node's reported `core` once it holds `expected`, with no `core` left in the delta."""

    async def check() -> Json | None:
        shadow = await cloud.rest(f"/v1/nodes/{node}/shadow")
        state = shadow["state"]
        core: Json = state.get("reported", {}).get("core", {})
        done = all(core.get(key) == value for key, value in expected.items())
        return core if done and "core" not in state.get("delta", {}) else None

    return await eventually(check, limit=LIMIT, what=f"{node} reporting core {expected}")


async def test_frequency_and_log_level_reach_the_running_agent(
    edge_cloud: Cloud, edge_agents: AgentFactory
) -> None:
    cloud = edge_cloud
    await cloud.ctl("node", "create", "edge-1")
    agent = await edge_agents("edge-1")
    await wait_ready(cloud, "edge-1", ONLINE)
    assert agent.process is not None
    pid = agent.process.pid
    before = await cloud.rest("/v1/nodes/edge-1/core/configs")
    assert (before["frequency"], before["logLevel"]) == (20, "info")
    assert before["version"]  # the agent's, as it reported it

    body = {"frequency": 3, "apiport": 30050, "logLevel": "debug"}
    answer = await put_core(cloud, "edge-1", body)
    assert (answer["frequency"], answer["logLevel"], answer["agentport"]) == (3, "debug", 30080)
    await reported_core(cloud, "edge-1", frequency=3, logLevel="debug")
    assert agent.process.pid == pid, "the agent took the settings without a restart"
    lines = log_lines(agent.log())
    (changed,) = [i for i, line in enumerate(lines) if line.get("message") == CHANGED]
    assert lines[changed]["report_interval"] == 3

    # Debug lines flow from the change on (the agent was started at info).
    async def debugging() -> bool:
        return any(line.get("level") == "debug" for line in log_lines(agent.log())[changed:])

    await eventually(debugging, limit=LIMIT, what="a debug line in the agent's log")
    # Reports now come every 3 s: two periodic reports are at least ~3 s apart.
    health = await agent.health()
    assert health is not None
    count = health["cloud"]["reports"]
    started = time.monotonic()

    async def two_more() -> bool:
        now = await agent.health()
        return now is not None and now["cloud"]["reports"] >= count + 2

    await eventually(two_more, limit=LIMIT, what="two more reports")
    assert time.monotonic() - started >= 2.5

    # Back to the agent's own settings' values; the node says so.
    await put_core(cloud, "edge-1", {"frequency": 1, "apiport": 30050, "logLevel": "info"})
    await reported_core(cloud, "edge-1", frequency=1, logLevel="info")
    assert agent.process.pid == pid
    assert agent.process.returncode is None
