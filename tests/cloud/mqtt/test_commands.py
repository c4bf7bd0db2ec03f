"""`GET /v1/nodes/{n}/apps/{app}/logs`: a REST call answered by the node over `cmd/request`.

The node side is a test agent on the real broker that reads `cmd/request` and answers on
`cmd/response` the way baetyl-core will; the cloud is real and bridged to the same broker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.contracts.topics import Channel
from cloud.settings import MqttSettings
from tests.cloud.ctl.conftest import Ctl
from tests.cloud.mqtt.conftest import Agent, AgentFactory, make_node, native_app, running_cloud
from tests.harness.cloud import CloudServer, start_cloud

COMMAND_TIMEOUT = 1.5
Answer = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


@pytest.fixture
async def cloud(
    tmp_path: Path, cloud_db_url: str | None, mqtt_settings: MqttSettings
) -> AsyncIterator[CloudServer]:
    """A bridged cloud that waits COMMAND_TIMEOUT seconds for node answers."""
    async with running_cloud(
        tmp_path / "cloud", cloud_db_url, mqtt_settings, command_timeout=COMMAND_TIMEOUT
    ) as server:
        yield server


async def _online_node_with_app(cloud: CloudServer, node: Agent, app: str) -> str:
    """Deploy `app` to the agent's node and mark it online; returns the node name."""
    name = node.nid.split(".", 1)[1]
    await cloud.ok("POST", "/v1/apps", native_app(app, f"baetyl-node-name={name}"))
    await node.publish(Channel.PRESENCE, {"online": True, "timestamp": time.time()})
    async with asyncio.timeout(10):
        while (await cloud.ok("GET", f"/v1/nodes/{name}"))["ready"] != 1:
            await asyncio.sleep(0.05)
    return name


async def _serve_commands(node: Agent, answer: Answer) -> None:
    """Answer every command the node receives with what `answer` returns (None: stay silent)."""
    while True:
        request = await node.next(Channel.CMD_REQUEST, timeout=3600)
        response = await answer(request)
        if response is not None:
            await node.publish(
                Channel.CMD_RESPONSE, {"clientToken": request["clientToken"], **response}
            )


async def _with_answers(node: Agent, answer: Answer) -> asyncio.Task[None]:
    return asyncio.create_task(_serve_commands(node, answer), name=f"answer-{node.nid}")


async def test_logs_come_from_the_node_with_the_query_passed_on(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    seen: list[dict[str, Any]] = []

    async def logs(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        args = request["args"]
        lines = [f"line {n} of {args['app']}" for n in range(args.get("tailLines", 3))]
        return {"ok": True, "result": "\n".join(lines) + "\n"}

    nid = await make_node(cloud, {"site": "a"})
    async with agent(nid) as node:
        name = await _online_node_with_app(cloud, node, "web")
        answering = await _with_answers(node, logs)
        try:
            got = await cloud.call(
                "GET", f"/v1/nodes/{name}/apps/web/logs?tailLines=2&sinceSeconds=60"
            )
            plain = await cloud.call("GET", f"/v1/nodes/{name}/apps/web/logs")
        finally:
            answering.cancel()
    assert got.status == 200, got.body
    assert got.body == "line 0 of web\nline 1 of web\n"
    assert got.headers["Content-Type"].startswith("text/plain")
    assert plain.status == 200
    assert plain.body.count("\n") == 3
    assert [r["cmd"] for r in seen] == ["logs", "logs"]
    assert seen[0]["args"] == {"app": "web", "tailLines": 2, "sinceSeconds": 60}
    assert seen[1]["args"] == {"app": "web"}
    assert seen[0]["clientToken"] != seen[1]["clientToken"]


async def test_a_node_that_does_not_answer_gives_504_in_time(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    async def silent(_request: dict[str, Any]) -> None:
        return None

    nid = await make_node(cloud)
    async with agent(nid) as node:
        name = await _online_node_with_app(cloud, node, "web")
        answering = await _with_answers(node, silent)
        try:
            started = time.monotonic()
            got = await cloud.call("GET", f"/v1/nodes/{name}/apps/web/logs")
            took = time.monotonic() - started
        finally:
            answering.cancel()
    assert got.status == 504, got.body
    assert got.body["code"] == "ErrNodeTimeout"
    assert COMMAND_TIMEOUT <= took < COMMAND_TIMEOUT + 3


async def test_a_failed_command_gives_502_with_the_node_s_reason(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    async def failing(_request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": False, "error": "no log file for web yet"}

    nid = await make_node(cloud)
    async with agent(nid) as node:
        name = await _online_node_with_app(cloud, node, "web")
        answering = await _with_answers(node, failing)
        try:
            got = await cloud.call("GET", f"/v1/nodes/{name}/apps/web/logs")
        finally:
            answering.cancel()
    assert got.status == 502
    assert "no log file for web yet" in got.body["message"]


async def test_an_offline_node_gives_409_at_once(cloud: CloudServer, agent: AgentFactory) -> None:
    nid = await make_node(cloud)
    name = nid.split(".", 1)[1]
    await cloud.ok("POST", "/v1/apps", native_app("web", f"baetyl-node-name={name}"))
    started = time.monotonic()
    never = await cloud.call("GET", f"/v1/nodes/{name}/apps/web/logs")
    assert never.status == 409
    assert never.body["code"] == "ErrNodeOffline"
    assert time.monotonic() - started < COMMAND_TIMEOUT
    async with agent(nid) as node:
        await _online_node_with_app(cloud, node, "web2")
        await node.publish(Channel.PRESENCE, {"online": False})
        async with asyncio.timeout(10):
            while (await cloud.ok("GET", f"/v1/nodes/{name}"))["ready"] != 2:
                await asyncio.sleep(0.05)
        gone = await cloud.call("GET", f"/v1/nodes/{name}/apps/web/logs")
    assert gone.status == 409


async def test_an_answer_from_another_node_is_not_taken(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    nid = await make_node(cloud)
    other = await make_node(cloud)
    async with agent(nid) as node, agent(other) as intruder:
        name = await _online_node_with_app(cloud, node, "web")

        async def late_but_true(request: dict[str, Any]) -> dict[str, Any]:
            # Another node learns the token and answers first: the cloud must ignore it.
            forged = {"clientToken": request["clientToken"], "ok": True, "result": "forged\n"}
            await intruder.publish(Channel.CMD_RESPONSE, forged)
            await asyncio.sleep(0.3)
            return {"ok": True, "result": "genuine\n"}

        answering = await _with_answers(node, late_but_true)
        try:
            got = await cloud.call("GET", f"/v1/nodes/{name}/apps/web/logs")
        finally:
            answering.cancel()
    assert got.status == 200
    assert got.body == "genuine\n"


async def test_bad_answers_are_dropped_and_the_bridge_keeps_serving(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    nid = await make_node(cloud)
    async with agent(nid) as node:
        name = await _online_node_with_app(cloud, node, "web")

        async def garbage_first(request: dict[str, Any]) -> dict[str, Any]:
            token = request["clientToken"]
            for bad in (b"{", b"[]", b'{"clientToken": 5, "ok": true}', b'{"ok": false}'):
                await node.publish(Channel.CMD_RESPONSE, bad)
            await node.publish(Channel.CMD_RESPONSE, {"clientToken": token, "ok": False})
            return {"ok": True, "result": "fine\n"}

        answering = await _with_answers(node, garbage_first)
        try:
            got = await cloud.call("GET", f"/v1/nodes/{name}/apps/web/logs")
        finally:
            answering.cancel()
        assert got.status == 200
        assert got.body == "fine\n"
        # The bridge still answers requests afterwards.
        _, answer = await node.ask(
            Channel.SHADOW_GET, {"clientToken": "after"}, (Channel.SHADOW_GET_ACCEPTED,)
        )
        assert answer["clientToken"] == "after"


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/v1/nodes/{name}/apps/web/logs?tailLines=0", 400, "tailLines"),
        ("/v1/nodes/{name}/apps/web/logs?tailLines=many", 400, "tailLines"),
        ("/v1/nodes/{name}/apps/web/logs?sinceSeconds=-5", 400, "sinceSeconds"),
        ("/v1/nodes/{name}/apps/web/logs?tailLines=10001", 400, "tailLines"),
        ("/v1/nodes/{name}/apps/web/logs?color=red", 400, "color"),
        ("/v1/nodes/{name}/apps/nothere/logs", 404, "nothere"),
        ("/v1/nodes/nosuchnode/apps/web/logs", 404, "nosuchnode"),
    ],
)
async def test_bad_log_requests_get_a_clear_error(
    cloud: CloudServer, path: str, status: int, fragment: str
) -> None:
    nid = await make_node(cloud)
    name = nid.split(".", 1)[1]
    await cloud.ok("POST", "/v1/apps", native_app("web", f"baetyl-node-name={name}"))
    got = await cloud.call("GET", path.format(name=name))
    assert got.status == status, got.body
    assert fragment in got.body["message"]


async def test_a_rest_only_cloud_says_it_cannot_reach_nodes(
    tmp_path: Path, cloud_db_url: str | None
) -> None:
    runner, server = await start_cloud(tmp_path / "rest", cloud_db_url)
    try:
        name = (await make_node(server)).split(".", 1)[1]
        await server.ok("POST", "/v1/apps", native_app("web", f"baetyl-node-name={name}"))
        got = await server.call("GET", f"/v1/nodes/{name}/apps/web/logs")
    finally:
        await server.session.close()
        await runner.cleanup()
    assert got.status == 503
    assert "--no-mqtt" in got.body["message"]


async def test_baetylctl_node_logs_prints_the_node_s_text(
    cloud: CloudServer, agent: AgentFactory, tmp_path: Path
) -> None:
    async def logs(request: dict[str, Any]) -> dict[str, Any]:
        args = request["args"]
        return {
            "ok": True,
            "result": f"tail={args.get('tailLines')} since={args.get('sinceSeconds')}\n",
        }

    home = tmp_path / "home"
    home.mkdir()
    ctl = Ctl(home, {"BAETYL_URL": cloud.url, "BAETYL_TOKEN": cloud.admin_token})
    nid = await make_node(cloud)
    async with agent(nid) as node:
        name = await _online_node_with_app(cloud, node, "web")
        answering = await _with_answers(node, logs)
        try:
            table = await ctl.ok("node", "logs", name, "web", "--tail", "7", "--since", "30")
            as_json = await ctl.ok("-o", "json", "node", "logs", name, "web")
            missing = await ctl("node", "logs", name, "nothere")
            bad = await ctl("node", "logs", name, "web", "--tail", "0")
        finally:
            answering.cancel()
    assert table.out == "tail=7 since=30\n"
    assert as_json.json() == {"node": name, "app": "web", "logs": "tail=None since=None\n"}
    assert missing.code == 1
    assert "nothere" in missing.err
    assert bad.code == 2
    assert "--tail" in bad.err
