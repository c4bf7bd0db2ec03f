"""The Kubernetes backend on the local node (tools/kube): how fast a desired change becomes
applied objects and ready pods, and what the agent costs in kube mode.

A real cloud (`baetyl-cloud serve` and its Mosquitto), a real `baetyl-core` with
`engine.backend: kube`, and the local Kubernetes of tools/kube (control plane on 127.0.0.1, one
real node running busybox containers). Each round labels the node so that N container apps land
on it (one desired change), then takes the label away:
  - applied: from the label PUT to the agent's last "applied an app" (every object accepted by
    the API server, from the agent's JSON log);
  - ready: from the PUT until every app's Deployment reports its pod available (the API server
    is asked every 50 ms, so figures carry up to that much more);
  - removed: from the label removal until no app's Deployment is left.
Then 20 apps run while the agent's memory (RSS, USS, PSS) and CPU are sampled idle.
It starts and stops its own cluster; another local cluster must not run.
Run: `.venv/bin/python bench/kube.py [--quick] [--out F.json]`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekit import (  # noqa: E402
    NODE,
    Agent,
    BenchError,
    BenchFlags,
    Json,
    Progress,
    Reaper,
    Rest,
    agent_process,
    bench_cli,
    cloud_with_rest,
    counts,
    eventually,
    measure_cpu,
    percentiles,
    record_time,
    sample_memory,
    write_core_config,
)
from provenance import provenance  # noqa: E402
from reportkit import sections  # noqa: E402

from agent.core.kube.client import KubeApi  # noqa: E402
from tools.kube.cluster import PORT_BASE, Cluster, missing_parts  # noqa: E402
from tools.kube.images import BUSYBOX_IMAGE  # noqa: E402
from tools.kube.layout import NODE_NAME, ClusterLayout  # noqa: E402

RSS_TARGET_MB = 90.0
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
NAMESPACE = "baetyl-edge"


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes and durations of one run."""

    sizes: tuple[int, ...] = (1, 50)
    rounds: int = 5
    idle_apps: int = 20
    settle: float = 10.0
    samples: int = 5
    cpu_window: float = 60.0
    timeout: float = 300.0

    def problem(self) -> str | None:
        """What makes the plan impossible to run, if anything."""
        if self.rounds < 1 or self.idle_apps < 1 or self.samples < 1:
            return "--rounds, --idle-apps and --samples must be at least 1"
        if max(self.sizes) > 100:
            return "--sizes: the one local node runs at most 110 pods"
        return None


FULL = Plan()
QUICK = Plan(sizes=(1, 5), rounds=1, idle_apps=3, settle=2.0, samples=2, cpu_window=3.0)


async def create_apps(rest: Rest, names: list[str], label: str) -> None:
    """Container apps (busybox, sleeping) placed on nodes labelled `label=on`."""
    for name in names:
        body = {
            "name": name,
            "mode": "kube",
            "selector": f"{label}=on",
            "services": [
                {
                    "name": "main",
                    "image": BUSYBOX_IMAGE,
                    "command": SLEEP,
                    "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}},
                }
            ],
        }
        await rest.call("POST", "/v1/apps", body)


async def available(api: KubeApi, label: str) -> dict[str, bool]:
    """The bench apps' Deployments: name → whether its one pod is available."""
    found = await api.list("Deployment", NAMESPACE, selector="baetyl-managed=true")
    return {
        item["metadata"]["name"]: int(item.get("status", {}).get("availableReplicas", 0)) >= 1
        for item in found["items"]
        if item["metadata"]["name"].startswith(label)
    }


async def deploy(agent: Agent, rest: Rest, api: KubeApi, names: list[str], label: str) -> Json:
    """Label the node; ms until every app was applied, and until every pod is available."""
    wanted = set(names)
    mark = len(agent.log.since(0))
    put = time.time()
    await rest.set_labels({label: "on"})

    async def ready() -> float | None:
        seen = await available(api, label)
        return time.time() if wanted <= {n for n, ok in seen.items() if ok} else None

    finished = await eventually(ready, limit=FULL.timeout, poll=0.05, what="pods available")
    applied = {
        str(r["app"]): record_time(r)
        for r in agent.log.since(mark)
        if r.get("message") == "applied an app" and r.get("app") in wanted
    }
    failed = [r for r in agent.log.since(mark) if r.get("message") == "app not deployed"]
    if failed or len(applied) < len(wanted):
        raise BenchError(f"not every app was applied: {failed or sorted(wanted - set(applied))}")
    return {
        "apps": len(names),
        "applied_ms": (max(applied.values()) - put) * 1000,
        "ready_ms": (finished - put) * 1000,
    }


async def remove(rest: Rest, api: KubeApi, label: str) -> float:
    """Take the label away; ms until no Deployment of the apps is left."""
    put = time.time()
    await rest.set_labels({})

    async def gone() -> float | None:
        return time.time() if not await available(api, label) else None

    return (await eventually(gone, limit=FULL.timeout, poll=0.05, what="apps removed") - put) * 1000


async def pods_gone(api: KubeApi, label: str) -> None:
    """Wait until the removed apps' pods have terminated (the next round starts clean)."""

    async def check() -> bool:
        found = await api.list("Pod", NAMESPACE, selector="baetyl-managed=true")
        return not [p for p in found["items"] if p["metadata"]["name"].startswith(label)]

    await eventually(check, limit=FULL.timeout, poll=0.2, what="the pods to terminate")


async def rounds_of(
    size: int, agent: Agent, rest: Rest, api: KubeApi, plan: Plan, progress: Progress
) -> Json:
    """`plan.rounds` deploy and removal rounds of `size` apps."""
    label = f"k{size}x"
    names = [f"{label}-{index:02d}" for index in range(size)]
    await create_apps(rest, names, label)
    rounds, removals = [], []
    for attempt in range(plan.rounds):
        rounds.append(await deploy(agent, rest, api, names, label))
        removals.append(await remove(rest, api, label))
        await pods_gone(api, label)
        progress.say(
            f"{size} app(s), round {attempt + 1}/{plan.rounds}: applied "
            f"{rounds[-1]['applied_ms']:.0f} ms, ready {rounds[-1]['ready_ms']:.0f} ms, "
            f"removed {removals[-1]:.0f} ms after the PUT"
        )
    return {
        "apps": size,
        "rounds": rounds,
        "applied_ms": percentiles([r["applied_ms"] for r in rounds]),
        "ready_ms": percentiles([r["ready_ms"] for r in rounds]),
        "removal_ms": percentiles(removals),
    }


async def idle(agent: Agent, rest: Rest, api: KubeApi, plan: Plan, progress: Progress) -> Json:
    """Memory with 0 apps, then memory and CPU with `plan.idle_apps` apps running."""
    await asyncio.sleep(plan.settle)
    idle_0 = await sample_memory(agent.pid, plan.samples)
    label = "idle"
    names = [f"{label}-{index:02d}" for index in range(plan.idle_apps)]
    await create_apps(rest, names, label)
    deployed = await deploy(agent, rest, api, names, label)
    progress.say(
        f"{plan.idle_apps} apps ready after {deployed['ready_ms']:.0f} ms; settling "
        f"{plan.settle:.0f} s, then memory and {plan.cpu_window:.0f} s of CPU"
    )
    await asyncio.sleep(plan.settle)
    idle_n = await sample_memory(agent.pid, plan.samples)
    cpu = await measure_cpu(agent.pid, plan.cpu_window)
    await remove(rest, api, label)
    await pods_gone(api, label)
    return {"idle_0": idle_0, "idle_n": idle_n, "apps": plan.idle_apps, "cpu": cpu}


async def run(plan: Plan, work: Path, reaper: Reaper, progress: Progress) -> Json:
    """The cluster, the cloud, the agent; idle figures, then the rounds."""
    if missing := missing_parts():
        raise BenchError("the local Kubernetes cannot run here; missing: " + "; ".join(missing))
    cluster = Cluster(ClusterLayout(work / "kube"), progress)
    progress.say("starting the local Kubernetes")
    await cluster.up(port_base=PORT_BASE)
    try:
        api = await KubeApi.connect(cluster.layout.kubeconfig)
        version = (await api.version())["gitVersion"]
        try:
            async with cloud_with_rest(work, reaper) as (cloud, rest):
                await rest.call("POST", "/v1/nodes", {"name": NODE, "labels": {}})
                kube = {"kubeconfig": str(cluster.layout.kubeconfig), "node_name": NODE_NAME}
                config = write_core_config(
                    work / "agent",
                    cloud,
                    api=False,
                    sections={"engine": {"backend": "kube"}, "kube": kube},
                )
                progress.say("starting baetyl-core in kube mode")
                async with agent_process(config, reaper) as agent:
                    idle_figures = await idle(agent, rest, api, plan, progress)
                    latency = [
                        await rounds_of(size, agent, rest, api, plan, progress)
                        for size in plan.sizes
                    ]
        finally:
            await api.close()
    finally:
        progress.say("stopping the local Kubernetes")
        left = await asyncio.to_thread(cluster.down, purge=True)
        if left:
            raise BenchError(f"the local cluster left: {left}")
    return {
        "provenance": provenance(),
        "load_average_end": os.getloadavg(),
        "plan": dataclasses.asdict(plan),
        "kubernetes": version,
        "idle": idle_figures,
        "latency": latency,
        "checks": [
            {
                "target": f"agent RSS in kube mode with {plan.idle_apps} apps "
                f"<= {RSS_TARGET_MB:.0f} MB",
                "measured": f"{idle_figures['idle_n']['rss_mb']:.1f} MB",
                "met": idle_figures["idle_n"]["rss_mb"] <= RSS_TARGET_MB,
            }
        ],
    }


def summary(result: Json) -> str:
    """The section docs/benchmarks.md shows, as Markdown."""
    return sections.kube(result, image=None)


FLAGS = BenchFlags(
    FULL,
    QUICK,
    "few apps, one round and short windows (a smoke run)",
    (
        ("--sizes", counts, "app counts of the rounds (1,50)"),
        ("--rounds", int, "deploy/remove rounds per size (5)"),
        ("--idle-apps", int, "apps running while memory and CPU are sampled (20)"),
        ("--settle", float, "seconds left idle before memory is sampled (10)"),
        ("--samples", int, "memory samples, one a second (5)"),
        ("--cpu-window", float, "seconds of the idle CPU window (60)"),
    ),
)


if __name__ == "__main__":
    sys.exit(bench_cli("bench/kube.py", __doc__, FLAGS, run, summary))
