"""Scenarios end to end, as an operator lives them: `baetyl-cloud serve` with its managed broker,
`baetyl-core` agents and their apps as processes, every change made with `baetylctl`.

The label-matching and config-rollout examples are applied as their READMEs say, and every
`baetylctl` command a test runs on them must appear verbatim in that README. Latencies are printed
(`pytest -s` shows them), never asserted.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.agent.core.agent_kit import SLEEPER
from tests.e2e.conftest import LIMIT, ROOT, Agent, AgentFactory, Cloud, Json, eventually

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(90)]

EXAMPLES = ROOT / "examples"
NEVER, ONLINE, OFFLINE = 0, 1, 2  # the node view's `ready`
LINK_UP = '"cloud link up"'  # logged by the agent on every connect


def sleeper_app(directory: Path, name: str, selector: str, *, replica: int = 1) -> Path:
    """An app file for `baetylctl app apply -f`: `replica` idle Python processes."""
    path = directory / f"{name}.yaml"
    app = {
        "name": name,
        "mode": "native",
        "selector": selector,
        "replica": replica,
        "services": [{"name": "main", "command": [sys.executable, "-c", SLEEPER]}],
    }
    path.write_text(yaml.safe_dump(app))
    return path


async def reported_app(cloud: Cloud, node: str, app: str) -> Json | None:
    """The app's stats in the node's last accepted report, if any."""
    shadow = await cloud.rest(f"/v1/nodes/{node}/shadow")
    stats: Json | None = shadow["state"]["reported"].get("appstats", {}).get(app)
    return stats


async def wait_running(
    cloud: Cloud, node: str, app: str, version: str, *, timeout: float = 30.0
) -> Json:
    """The app's stats once the node reports it Running at `version`."""

    async def check() -> Json | None:
        stats = await reported_app(cloud, node, app)
        if stats and stats["version"] == version and stats["status"] == "Running":
            return stats
        return None

    return await eventually(
        check,
        limit=timeout,
        what=f"{app} {version} Running on {node}",
        detail=lambda: reported_app(cloud, node, app),
    )


async def wait_unreported(cloud: Cloud, node: str, app: str) -> None:
    """Until the node's report no longer lists the app."""

    async def check() -> bool:
        return await reported_app(cloud, node, app) is None

    await eventually(check, limit=LIMIT, what=f"{app} gone from the report of {node}")


async def wait_processes(agent: Agent, app: str, count: int) -> set[int]:
    """The pids of the app's processes on the agent's node once there are `count` of them."""

    async def check() -> tuple[set[int]] | None:
        pids = agent.app_pids(app)
        return (pids,) if len(pids) == count else None  # a tuple: truthy even when empty

    (pids,) = await eventually(check, limit=LIMIT, what=f"{count} {app} processes on {agent.name}")
    return pids


async def wait_ready(cloud: Cloud, node: str, value: int) -> None:
    """Until the cloud computes the node's `ready` as `value`."""

    async def check() -> bool:
        ready: int = (await cloud.rest(f"/v1/nodes/{node}"))["ready"]
        return ready == value

    await eventually(check, limit=LIMIT, what=f"{node} ready={value}")


async def wait_logs(cloud: Cloud, node: str, app: str, text: str) -> str:
    """`baetylctl node logs NODE APP` once its output holds `text`."""

    async def check() -> str | None:
        logs = await cloud.ctl("node", "logs", node, app)
        return logs if text in logs else None

    return await eventually(check, limit=LIMIT, what=f"{text!r} in the log of {app} on {node}")


async def wait_reports(agent: Agent, beyond: int) -> Json:
    """The agent's /health once it is connected and the cloud accepted more than `beyond`
    reports since the agent started."""

    async def check() -> Json | None:
        health = await agent.health()
        if health and health["cloud"]["connected"] and health["cloud"]["reports"] > beyond:
            return health
        return None

    return await eventually(
        check, limit=LIMIT, what=f"more than {beyond} reports accepted from {agent.name}"
    )


def pids_of(stats: Json) -> set[int]:
    return {instance["pid"] for instance in stats["instances"].values()}


def restarts_of(stats: Json) -> dict[str, int]:
    return {name: instance["restarts"] for name, instance in stats["instances"].items()}


def assert_commands_documented(cloud: Cloud, example: str) -> None:
    """Every baetylctl command the test ran is written, exactly, in the example's README."""
    readme = (EXAMPLES / example / "README.md").read_text(encoding="utf-8")
    missing = [command for command in cloud.commands if command not in readme]
    assert not missing, f"examples/{example}/README.md lacks {missing}"


async def node_with_app(
    cloud: Cloud, start_agent: AgentFactory, directory: Path
) -> tuple[Agent, Json, Json]:
    """Node edge-1 online, running two instances of app `ticker`: (agent, app, reported stats)."""
    await cloud.ctl("node", "create", "edge-1", "-l", "role=worker")
    agent = await start_agent("edge-1")
    app_file = sleeper_app(directory, "ticker", "role=worker", replica=2)
    app = await cloud.ctl_yaml("app", "apply", "-f", str(app_file))
    stats = await wait_running(cloud, "edge-1", "ticker", app["version"])
    assert len(pids_of(stats)) == 2
    assert pids_of(stats) == agent.app_pids("ticker")
    return agent, app, stats


async def test_a_node_comes_online_runs_a_new_app_and_stops_it_when_the_app_is_deleted(
    edge_cloud: Cloud, edge_agents: AgentFactory, tmp_path: Path
) -> None:
    cloud = edge_cloud
    await cloud.ctl("node", "create", "edge-1", "-l", "role=worker")
    assert (await cloud.ctl_yaml("node", "get", "edge-1"))["ready"] == NEVER
    agent = await edge_agents("edge-1")
    await wait_ready(cloud, "edge-1", ONLINE)
    (row,) = [line.split() for line in (await cloud.ctl("node", "list")).splitlines()[1:]]
    assert row[:2] == ["edge-1", "online"]

    app_file = sleeper_app(tmp_path, "ticker", "role=worker", replica=2)
    began = time.monotonic()
    app = await cloud.ctl_yaml("app", "apply", "-f", str(app_file))
    applied = time.monotonic()
    pids = await wait_processes(agent, "ticker", 2)
    spawned = time.monotonic()
    stats = await wait_running(cloud, "edge-1", "ticker", app["version"])
    reported = time.monotonic()
    print(
        f"\napp create -> running: baetylctl app apply returned {applied - began:.3f} s, "
        f"processes started {spawned - began:.3f} s, reported Running {reported - began:.3f} s"
    )
    assert pids_of(stats) == pids
    view = await cloud.ctl_yaml("node", "get", "edge-1")
    assert view["desire"]["apps"] == [{"name": "ticker", "version": app["version"]}]
    processes = [psutil.Process(pid) for pid in pids]

    await cloud.ctl("app", "delete", "ticker")
    await wait_processes(agent, "ticker", 0)
    assert not any(process.is_running() for process in processes)
    await wait_unreported(cloud, "edge-1", "ticker")
    assert (await cloud.ctl_yaml("node", "get", "edge-1"))["desire"]["apps"] == []


async def test_relabelling_a_node_moves_the_label_matching_app_to_the_other_node(
    edge_cloud: Cloud, edge_agents: AgentFactory
) -> None:
    cloud = edge_cloud
    await cloud.ctl("node", "create", "edge-1", "-l", "stage=active")
    await cloud.ctl("node", "create", "edge-2", "-l", "stage=standby")
    one, two = await edge_agents("edge-1"), await edge_agents("edge-2")
    await cloud.ctl("app", "apply", "-f", "examples/label-matching/app.yaml")
    app = await cloud.ctl_yaml("app", "get", "follower")
    await wait_running(cloud, "edge-1", "follower", app["version"])
    first = one.app_pids("follower")
    assert len(first) == 1
    assert not two.app_pids("follower")
    await wait_logs(cloud, "edge-1", "follower", "follower started on node edge-1")

    # Make before break: edge-2 takes the label first, then edge-1 gives it up.
    await cloud.ctl("node", "label", "edge-2", "stage=active")
    await wait_running(cloud, "edge-2", "follower", app["version"])
    assert one.app_pids("follower") == first, "edge-1 keeps the app while it matches"
    await cloud.ctl("node", "label", "edge-1", "stage=standby")
    await wait_processes(one, "follower", 0)
    await wait_unreported(cloud, "edge-1", "follower")

    assert len(two.app_pids("follower")) == 1
    edge_1 = await cloud.ctl_yaml("node", "get", "edge-1")
    edge_2 = await cloud.ctl_yaml("node", "get", "edge-2")
    assert edge_1["labels"]["stage"] == "standby"
    assert edge_1["desire"]["apps"] == []
    assert edge_2["desire"]["apps"] == [{"name": "follower", "version": app["version"]}]
    await wait_logs(cloud, "edge-2", "follower", "follower started on node edge-2")
    assert_commands_documented(cloud, "label-matching")


async def test_a_new_config_version_rolls_out_and_the_new_instance_reads_it(
    edge_cloud: Cloud, edge_agents: AgentFactory
) -> None:
    cloud = edge_cloud
    await cloud.ctl("node", "create", "edge-1", "-l", "example=config-rollout")
    agent = await edge_agents("edge-1")
    await cloud.ctl("config", "apply", "-f", "examples/config-rollout/config.yaml")
    await cloud.ctl("app", "apply", "-f", "examples/config-rollout/app.yaml")
    first = await cloud.ctl_yaml("app", "get", "greeter")
    await wait_running(cloud, "edge-1", "greeter", first["version"])
    (old,) = [psutil.Process(pid) for pid in agent.app_pids("greeter")]
    await wait_logs(
        cloud,
        "edge-1",
        "greeter",
        f"greeter {first['version']} read: hello from the first version of the greeting config",
    )

    began = time.monotonic()
    said = await cloud.ctl("config", "apply", "-f", "examples/config-rollout/config-updated.yaml")
    assert said.strip() == "config/greeting configured"
    config = await cloud.ctl_yaml("config", "get", "greeting")
    second = await cloud.ctl_yaml("app", "get", "greeter")
    assert second["version"] != first["version"], "a new config version makes a new app version"
    assert second["volumes"][0]["config"]["version"] == config["version"]
    stats = await wait_running(cloud, "edge-1", "greeter", second["version"])
    print(f"\nconfig apply -> new app version reported Running: {time.monotonic() - began:.3f} s")
    (pid,) = pids_of(stats)
    assert agent.app_pids("greeter") == {pid}
    assert not old.is_running(), "the old instance is replaced, not kept"
    instance_dir = Path(psutil.Process(pid).environ()["BAETYL_INSTANCE_DIR"])
    mounted = (instance_dir / "conf" / "greeting.txt").read_text(encoding="utf-8")
    assert mounted == "hello from the updated greeting config"
    await wait_logs(
        cloud,
        "edge-1",
        "greeter",
        f"greeter {second['version']} read: hello from the updated greeting config",
    )
    view = await cloud.ctl_yaml("node", "get", "edge-1")
    assert view["desire"]["apps"] == [{"name": "greeter", "version": second["version"]}]
    assert_commands_documented(cloud, "config-rollout")


async def test_after_a_cloud_restart_agents_reconnect_and_no_app_restarts(
    edge_cloud: Cloud, edge_agents: AgentFactory, tmp_path: Path
) -> None:
    cloud = edge_cloud
    agent, app, stats = await node_with_app(cloud, edge_agents, tmp_path)
    assert agent.process is not None
    agent_pid = agent.process.pid
    connects = agent.log().count(LINK_UP)

    assert await cloud.stop() == 0, cloud.log()[-3000:]
    assert cloud.broker() is None, "the managed broker stops with the cloud"

    async def link_down() -> Json | None:
        health = await agent.health()
        return health if health and not health["cloud"]["connected"] else None

    down = await eventually(link_down, limit=LIMIT, what="the agent seeing its link drop")
    began = time.monotonic()
    await cloud.start()
    await wait_reports(agent, down["cloud"]["reports"])
    print(f"\ncloud restart -> a report accepted again: {time.monotonic() - began:.3f} s")
    assert agent.log().count(LINK_UP) > connects, "the agent connected again"
    assert agent.process is not None
    assert agent.process.pid == agent_pid
    await wait_ready(cloud, "edge-1", ONLINE)
    after = await wait_running(cloud, "edge-1", "ticker", app["version"])
    assert pids_of(after) == pids_of(stats) == agent.app_pids("ticker")
    assert restarts_of(after) == restarts_of(stats)


async def test_a_change_made_while_the_broker_restarts_reaches_the_node(
    edge_cloud: Cloud, edge_agents: AgentFactory, tmp_path: Path
) -> None:
    cloud = edge_cloud
    agent, _, stats = await node_with_app(cloud, edge_agents, tmp_path)
    connects = agent.log().count(LINK_UP)
    broker = cloud.broker()
    assert broker is not None

    broker.kill()
    began = time.monotonic()
    # The REST API does not need the broker: the change is stored, and the node gets it once
    # the cloud's supervisor has restarted the broker and the agent has connected again.
    late_file = sleeper_app(tmp_path, "late", "role=worker")
    late = await cloud.ctl_yaml("app", "apply", "-f", str(late_file))
    await wait_running(cloud, "edge-1", "late", late["version"], timeout=60)
    print(f"\nbroker killed -> the change running on the node: {time.monotonic() - began:.3f} s")
    restarted = cloud.broker()
    assert restarted is not None
    assert restarted.pid != broker.pid, "the cloud restarted its broker"
    assert agent.log().count(LINK_UP) > connects, "the agent connected again"
    assert len(agent.app_pids("late")) == 1
    assert agent.app_pids("ticker") == pids_of(stats), "running apps are left alone"


async def test_a_killed_agent_leaves_its_apps_running_and_adopts_them_again(
    edge_cloud: Cloud, edge_agents: AgentFactory, tmp_path: Path
) -> None:
    cloud = edge_cloud
    agent, app, stats = await node_with_app(cloud, edge_agents, tmp_path)
    pids = pids_of(stats)

    assert await agent.kill(signal.SIGKILL) == -signal.SIGKILL
    # The broker publishes the dead agent's will; by then its apps must still run.
    await wait_ready(cloud, "edge-1", OFFLINE)
    assert agent.app_pids("ticker") == pids, "apps outlive the agent"

    began = time.monotonic()
    await agent.start()
    # Three reports after the start the engine has reconciled at least once: a duplicate
    # start would show by then.
    await wait_reports(agent, 2)
    after = await wait_running(cloud, "edge-1", "ticker", app["version"])
    print(f"\nagent restart -> apps re-adopted and reported: {time.monotonic() - began:.3f} s")
    assert pids_of(after) == pids, "the same processes, adopted"
    assert agent.app_pids("ticker") == pids, "nothing started twice"
    await wait_ready(cloud, "edge-1", ONLINE)
