"""A function app end to end, as a user deploys it (examples/function-hello): its code in a
configuration, the app through `baetylctl`, the node's agent running the Python runtime, a call
through the real `baetyl-function`, and a new version of the code rolled out."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp

from agent.core.sysapps import FUNCTION_PROXY
from tests.e2e.conftest import Agent, AgentFactory, Cloud, Json
from tests.e2e.test_scenarios import assert_commands_documented, pids_of, wait_running
from tests.function_proxy.kit import call
from tools.kit.rest import Rest
from tools.kit.waiting import eventually


async def test_a_function_app_deployed_through_rest_answers_through_the_proxy(
    edge_cloud: Cloud, edge_agents: AgentFactory, tmp_path: Path
) -> None:
    cloud = edge_cloud
    await cloud.ctl("node", "create", "edge-1", "-l", "example=function-hello")
    agent = await edge_agents("edge-1")
    await cloud.ctl("config", "apply", "-f", "examples/function-hello/config.yaml")
    await cloud.ctl("app", "apply", "-f", "examples/function-hello/app.yaml")
    first = await cloud.ctl_yaml("app", "get", "hello")
    # The user's view stays what they wrote: no command, no generated volume.
    assert first["services"][0].get("command", []) == []
    assert first.get("volumes", []) == []
    await wait_running(cloud, "edge-1", "hello", first["version"])
    # The agent runs baetyl-function itself while a function app is wanted.
    url = f"http://127.0.0.1:{agent.function_port}"

    async with aiohttp.ClientSession() as session:

        async def greeting(expected: str) -> dict[str, Any] | None:
            status, body, _ = await call(
                session, "POST", f"{url}/hello/greet", b'{"name": "edge"}',
                **{"X-Baetyl-Invoke-Id": "e2e-1"},
            )  # fmt: skip
            if status != 200:
                return None
            answer: dict[str, Any] = json.loads(body)
            return answer if answer["greeting"] == expected else None

        answer = await eventually(
            lambda: greeting("hello, edge"), limit=30, what="the function answering"
        )
        assert (answer["function"], answer["invokeId"]) == ("greet", "e2e-1")

        # Callers keep calling through the rollout (replica 2): no call may fail.
        statuses: list[int] = []
        bodies: list[str] = []
        greetings: set[str] = set()
        done = asyncio.Event()

        async def caller() -> None:
            while not done.is_set():
                status, body, _ = await call(
                    session, "POST", f"{url}/hello/greet", b'{"name": "edge"}'
                )
                statuses.append(status)
                if status != 200:
                    bodies.append(body.decode(errors="replace")[:300])
                if status == 200:
                    greetings.add(json.loads(body)["greeting"])

        callers = [asyncio.create_task(caller(), name=f"caller-{i}") for i in range(4)]
        try:
            await cloud.ctl("config", "apply", "-f", "examples/function-hello/config-updated.yaml")
            second = await cloud.ctl_yaml("app", "get", "hello")
            assert second["version"] != first["version"], "new code makes a new app version"
            await wait_running(cloud, "edge-1", "hello", second["version"])
            await eventually(
                lambda: greeting("good day, edge"), limit=30, what="the new code answering"
            )
            count = len(statuses)
            await eventually(lambda: len(statuses) > count + 20, limit=10, what="calls after it")
        finally:
            done.set()
            await asyncio.gather(*callers)
        failed = [status for status in statuses if status != 200]
        assert failed == [], (
            f"{len(failed)} of {len(statuses)} calls failed during the rollout: {bodies[:3]}"
        )
        assert greetings == {"hello, edge", "good day, edge"}
    assert_commands_documented(cloud, "function-hello")


async def pipeline_running(cloud: Cloud, edge_agents: AgentFactory) -> Agent:
    """examples/function-pipeline deployed as its README says, running on node edge-1."""
    await cloud.ctl("node", "create", "edge-1", "-l", "example=function-pipeline")
    agent = await edge_agents("edge-1")
    await cloud.ctl("config", "push-code", "pipeline-code", "examples/function-pipeline/code")
    await cloud.ctl("app", "apply", "-f", "examples/function-pipeline/app.yaml")
    app = await cloud.rest("/v1/apps/pipeline")
    await wait_running(cloud, "edge-1", "pipeline", app["version"])
    return agent


async def test_a_function_calls_another_through_the_proxy_with_one_invoke_id(
    edge_cloud: Cloud, edge_agents: AgentFactory, tmp_path: Path
) -> None:
    cloud = edge_cloud
    agent = await pipeline_running(cloud, edge_agents)
    url = f"http://127.0.0.1:{agent.function_port}"  # the proxy the agent runs
    async with aiohttp.ClientSession() as session:
        reading = b'{"sensor": " t-1 ", "celsius": 21.5}'

        async def ingested() -> dict[str, Any] | None:
            status, body, _ = await call(
                session, "POST", f"{url}/pipeline/ingest", reading,
                **{"X-Baetyl-Invoke-Id": "reading-1"},
            )  # fmt: skip
            return json.loads(body) if status == 200 else None

        answer = await eventually(ingested, limit=30, what="the pipeline answering")
        assert answer == {
            "stored": {
                "sensor": "t-1",
                "celsius": 21.5,
                "fahrenheit": 70.7,
                "invokeId": "reading-1",
            },
            "by": "ingest",
        }
        _, text, _ = await call(session, "GET", f"{url}/metrics")
        assert 'baetyl_function_calls_total{app="pipeline"}' in text.decode()
    assert_commands_documented(cloud, "function-pipeline")


async def reported_sysapp(cloud: Cloud, node: str, app: str) -> Json | None:
    """A system app's stats in the node's last accepted report, if any."""
    shadow = await cloud.rest(f"/v1/nodes/{node}/shadow")
    stats: Json | None = shadow["state"]["reported"].get("sysappstats", {}).get(app)
    return stats


async def proxy_running(cloud: Cloud, *, not_pid: int | None = None) -> Json:
    """baetyl-function's stats once it runs (with a pid other than `not_pid`)."""

    async def check() -> Json | None:
        stats = await reported_sysapp(cloud, "edge-1", FUNCTION_PROXY)
        if stats is None or stats["status"] != "Running":
            return None
        return stats if not_pid is None or not_pid not in pids_of(stats) else None

    return await eventually(
        check,
        limit=30,
        what="baetyl-function running",
        detail=lambda: reported_sysapp(cloud, "edge-1", FUNCTION_PROXY),
    )


async def test_the_agent_runs_the_function_proxy_while_function_apps_exist(
    edge_cloud: Cloud, edge_agents: AgentFactory
) -> None:
    cloud = edge_cloud
    agent = await pipeline_running(cloud, edge_agents)
    stats = await proxy_running(cloud)
    shadow = await cloud.rest("/v1/nodes/edge-1/shadow")
    assert FUNCTION_PROXY in shadow["state"]["reported"]["sysapps"]
    assert FUNCTION_PROXY not in shadow["state"]["reported"]["apps"]
    [pid] = pids_of(stats)
    url = f"http://127.0.0.1:{agent.function_port}/pipeline/enrich"
    async with aiohttp.ClientSession() as session:

        async def answers() -> bool:
            status, _, _ = await call(session, "POST", url, b'{"celsius": 0}')
            return status == 200

        await eventually(answers, limit=30, what="the proxy answering")
        # Killed: restarted by the backend like any app.
        os.kill(pid, signal.SIGKILL)
        restarted = await proxy_running(cloud, not_pid=pid)
        [pid] = pids_of(restarted)
        await eventually(answers, limit=30, what="the restarted proxy answering")
        # The agent restarts: the proxy is adopted, not started again.
        assert await agent.kill(signal.SIGTERM) == 0
        await agent.start()
        adopted = await proxy_running(cloud)
        assert pids_of(adopted) == {pid}
        assert await answers()
        # The last function app goes: so does the proxy.
        await cloud.ctl("app", "delete", "pipeline")

        async def proxy_gone() -> bool:
            return await reported_sysapp(cloud, "edge-1", FUNCTION_PROXY) is None

        await eventually(proxy_gone, limit=30, what="baetyl-function removed")
        await eventually(
            lambda: not agent.app_pids(FUNCTION_PROXY), limit=15, what="its process gone"
        )


async def test_a_node_whose_sys_apps_list_the_proxy_runs_it_without_function_apps(
    edge_cloud: Cloud, edge_agents: AgentFactory
) -> None:
    cloud = edge_cloud
    body = {"name": "edge-1", "sysApps": ["baetyl-function"]}
    async with aiohttp.ClientSession() as session:
        await Rest(session, cloud.url, cloud.token).ok("POST", "/v1/nodes", body)
    agent = await edge_agents("edge-1")
    stats = await proxy_running(cloud)
    assert stats["version"] == "builtin"  # the desired version: no delta is left for it

    async def settled() -> bool:
        shadow = await cloud.rest("/v1/nodes/edge-1/shadow")
        state = shadow["state"]
        return state["reported"].get("sysapps", {}).get(
            FUNCTION_PROXY
        ) == "builtin" and "sysapps" not in state.get("delta", {})

    await eventually(settled, limit=30, what="reported as desired, no delta")
    url = f"http://127.0.0.1:{agent.function_port}/nothing-here"
    async with aiohttp.ClientSession() as session:
        status, answer, _ = await call(session, "GET", url)  # Running: it listens (readiness)
        assert status == 404
        assert b"ErrAppNotFound" in answer
        await Rest(session, cloud.url, cloud.token).ok("PUT", "/v1/nodes/edge-1", {"sysApps": []})

    async def proxy_gone() -> bool:
        return await reported_sysapp(cloud, "edge-1", FUNCTION_PROXY) is None

    await eventually(proxy_gone, limit=30, what="baetyl-function removed")
