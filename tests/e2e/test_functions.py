"""A function app end to end, as a user deploys it (examples/function-hello): its code in a
configuration, the app through `baetylctl`, the node's agent running the Python runtime, a call
through the real `baetyl-function`, and a new version of the code rolled out."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.conftest import AgentFactory, Cloud
from tests.e2e.test_scenarios import assert_commands_documented, wait_running
from tests.function_proxy.kit import call, free_port, proxy
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
    registry = agent.run_dir / "services.json"

    async with (
        proxy(registry, free_port(), tmp_path / "proxy.log") as running,
        aiohttp.ClientSession() as session,
    ):

        async def greeting(expected: str) -> dict[str, Any] | None:
            status, body, _ = await call(
                session, "POST", f"{running.url}/hello/greet", b'{"name": "edge"}',
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
                    session, "POST", f"{running.url}/hello/greet", b'{"name": "edge"}'
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


async def test_a_function_calls_another_through_the_proxy_with_one_invoke_id(
    edge_cloud: Cloud, edge_agents: AgentFactory, tmp_path: Path
) -> None:
    cloud = edge_cloud
    await cloud.ctl("node", "create", "edge-1", "-l", "example=function-pipeline")
    agent = await edge_agents("edge-1")
    await cloud.ctl("config", "push-code", "pipeline-code", "examples/function-pipeline/code")
    await cloud.ctl("app", "apply", "-f", "examples/function-pipeline/app.yaml")
    app = await cloud.rest("/v1/apps/pipeline")
    await wait_running(cloud, "edge-1", "pipeline", app["version"])
    registry = agent.run_dir / "services.json"
    port = agent.function_port  # where the agent told the functions the proxy serves
    async with (
        proxy(registry, port, tmp_path / "proxy.log") as running,
        aiohttp.ClientSession() as session,
    ):
        reading = b'{"sensor": " t-1 ", "celsius": 21.5}'

        async def ingested() -> dict[str, Any] | None:
            status, body, _ = await call(
                session, "POST", f"{running.url}/pipeline/ingest", reading,
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
        _, text, _ = await call(session, "GET", f"{running.url}/metrics")
        assert 'baetyl_function_calls_total{app="pipeline"}' in text.decode()
    assert_commands_documented(cloud, "function-pipeline")
