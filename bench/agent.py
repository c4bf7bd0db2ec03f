"""Benchmark of the edge agent (issue 5): idle memory and CPU of `baetyl-core`, deploy latency.

Starts a real `baetyl-cloud serve` with its managed Mosquitto, issues a node certificate from the
cloud's CA and runs a real `baetyl-core` process against them; apps are native `sleep infinity`
processes. Measures
  - RSS, USS and PSS of the agent process alone (not its apps), idle with 0 and with
    `--idle-apps` running apps, and idle again after the latency rounds; then of a second agent
    with the local API off; beside the RSS of a fresh interpreter importing the same libraries,
    then the agent's modules one after another;
  - "delta → all processes running" for each of `--sizes` apps: one node label change makes one
    desired change carrying every app, timed from the REST call and from the agent's
    "desired state changed" log line to its last "instance started" line;
  - the agent's CPU over `--cpu-window` seconds, idle with `--idle-apps` apps running;
  - which packages the agent imported (kubernetes_asyncio must not be one), read from the
    `-X importtime` lines the agent writes with PYTHONPROFILEIMPORTTIME=1.
Run: `.venv/bin/python bench/agent.py [--out F.json]`, or `--quick` for a smoke run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import itertools
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before bench/: this file's own name shadows the agent package

from edgekit import (  # noqa: E402
    NODE,
    Agent,
    AgentLog,
    BenchError,
    BenchFlags,
    Json,
    Progress,
    Reaper,
    Rest,
    agent_process,
    all_running,
    app_processes,
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

MB = 1024 * 1024
RSS_TARGET_MB = 50.0
CPU_TARGET_PERCENT = 1.0
APP_MARKER = "BAETYL_INSTANCE_DIR"
LIBRARIES = ("asyncio", "ssl", "aiomqtt", "pydantic", "psutil", "yaml")
"""What the agent cannot run without: a fresh interpreter importing these is the floor (the
issue's list also named aiohttp; the agent's local API no longer uses it)."""
AGENT_STEPS = (
    "pydantic.main",
    "agent.contracts.resources",
    "agent.contracts.messages",
    "agent.core.config",
    "agent.core.native",
    "agent.core.engine.engine",
    "agent.core.sync.shadow_sync",
    "agent.core.api",
    "agent.core.app",
)
"""Imported one after the other after LIBRARIES: what each adds to the RSS."""
_IMPORT_STEPS = """
import importlib, json, sys
def rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
steps = [["python", rss()]]
for name in sys.argv[1:]:
    importlib.import_module(name)
    steps.append([name, rss()])
print(json.dumps(steps))
"""


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes and durations of one run."""

    idle_apps: int = 20
    """Apps running during the second memory sample and the CPU window."""
    sizes: tuple[int, ...] = (1, 50)
    """App counts of the deploy latency rounds."""
    rounds: int = 10
    """Deploy (and removal) rounds per size."""
    settle: float = 10.0
    """Seconds the agent is left alone before its memory is sampled."""
    samples: int = 5
    """Memory samples, one a second; the median is reported."""
    cpu_window: float = 60.0
    """Seconds of the idle CPU window."""
    timeout: float = 120.0
    """Seconds one deploy or removal round may take before the run fails."""

    def problem(self) -> str | None:
        """What makes the plan impossible to run, if anything."""
        if self.idle_apps < 1 or self.rounds < 1 or self.samples < 1:
            return "--idle-apps, --rounds and --samples must be at least 1"
        return None


FULL = Plan()
QUICK = Plan(idle_apps=3, sizes=(1, 5), rounds=2, settle=2.0, samples=2, cpu_window=3.0, timeout=60)


async def deploy(agent: Agent, rest: Rest, apps: list[str], label: str, plan: Plan) -> Json:
    """Label the node so that `apps` land on it; times until every app's process runs."""
    wanted = set(apps)
    mark = len(agent.log.since(0))
    put = time.time()
    await rest.set_labels({label: "on"})
    answered = time.time()

    def done() -> tuple[float, float] | None:
        desired: float | None = None
        started: dict[str, float] = {}
        for record in agent.log.since(mark):
            message = record.get("message")
            if message == "desired state changed" and desired is None:
                desired = record_time(record)
            elif message == "instance started" and record.get("app") in wanted:
                started.setdefault(str(record["app"]), record_time(record))
            elif message in {"app not deployed", "instance could not start"}:
                raise BenchError(f"the agent failed an app: {record}")
        if desired is None or len(started) < len(wanted):
            return None
        return desired, max(started.values())

    desired, running = await eventually(done, limit=plan.timeout, what=f"{len(apps)} apps running")
    await eventually(
        lambda: all_running(agent.pid, wanted), limit=10, what="the app processes to exist"
    )
    return {
        "apps": len(apps),
        "put_ms": (answered - put) * 1000,
        "desired_after_put_ms": (desired - put) * 1000,
        "from_put_ms": (running - put) * 1000,
        "from_desired_ms": (running - desired) * 1000,
    }


async def remove(agent: Agent, rest: Rest, apps: list[str], plan: Plan) -> float:
    """Take the node's labels away; ms until every app was removed and its process is gone."""
    wanted = set(apps)
    mark = len(agent.log.since(0))
    put = time.time()
    await rest.set_labels({})

    def done() -> float | None:
        removed = [
            record_time(record)
            for record in agent.log.since(mark)
            if record.get("message") == "removed an app" and record.get("app") in wanted
        ]
        if len(removed) < len(wanted) or wanted & set(app_processes(agent.pid)):
            return None
        return max(removed)

    gone = await eventually(done, limit=plan.timeout, what=f"{len(apps)} apps removed")
    return (gone - put) * 1000


async def import_costs() -> Json:
    """RSS of a fresh interpreter importing LIBRARIES, then each of AGENT_STEPS, in MB."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _IMPORT_STEPS,
        *LIBRARIES,
        *AGENT_STEPS,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise BenchError("the import measurement failed")
    steps: list[tuple[str, int]] = [(str(name), int(rss)) for name, rss in json.loads(out)]
    by_name = dict(steps)
    baseline = by_name[LIBRARIES[-1]]
    deltas = [
        {"module": name, "added_mb": (rss - previous) / MB, "rss_mb": rss / MB}
        for (_, previous), (name, rss) in itertools.pairwise(steps[len(LIBRARIES) :])
    ]
    return {
        "python_mb": by_name["python"] / MB,
        "libraries": list(LIBRARIES),
        "libraries_mb": baseline / MB,
        "agent_modules_mb": steps[-1][1] / MB,
        "steps": deltas,
    }


async def idle_phases(agent: Agent, rest: Rest, plan: Plan, progress: Progress) -> Json:
    """Memory idle with 0 apps, then memory and CPU idle with `plan.idle_apps` apps."""
    progress.say(f"idle with 0 apps: settling {plan.settle:.0f} s, then sampling memory")
    await asyncio.sleep(plan.settle)
    idle_0 = await sample_memory(agent.pid, plan.samples)
    names = [f"idle-{index:02d}" for index in range(plan.idle_apps)]
    await rest.create_apps(names, "bench-idle")
    deployed = await deploy(agent, rest, names, "bench-idle", plan)
    progress.say(
        f"{plan.idle_apps} apps running after {deployed['from_put_ms']:.0f} ms; "
        f"settling {plan.settle:.0f} s, then memory and {plan.cpu_window:.0f} s of CPU"
    )
    await asyncio.sleep(plan.settle)
    idle_n = await sample_memory(agent.pid, plan.samples)
    cpu = await measure_cpu(agent.pid, plan.cpu_window)
    cpu["apps"] = sum(app_processes(agent.pid).values())
    await remove(agent, rest, names, plan)
    return {"idle_0": idle_0, f"idle_{plan.idle_apps}": idle_n, "cpu": cpu}


async def latency_rounds(
    agent: Agent, rest: Rest, size: int, plan: Plan, progress: Progress
) -> Json:
    """`plan.rounds` times: `size` apps deployed by one label change, then removed by another."""
    names = [f"lat{size}-{index:02d}" for index in range(size)]
    label = f"bench-lat{size}"
    await rest.create_apps(names, label)
    rounds, removals = [], []
    for attempt in range(plan.rounds):
        rounds.append(await deploy(agent, rest, names, label, plan))
        removals.append(await remove(agent, rest, names, plan))
        progress.say(
            f"{size} app(s), round {attempt + 1}/{plan.rounds}: running "
            f"{rounds[-1]['from_put_ms']:.0f} ms after the PUT "
            f"({rounds[-1]['from_desired_ms']:.0f} ms after the desired change), "
            f"removed in {removals[-1]:.0f} ms"
        )
    figures = {
        key: percentiles([r[key] for r in rounds])
        for key in ("from_put_ms", "from_desired_ms", "put_ms", "desired_after_put_ms")
    }
    return {"apps": size, "rounds": rounds, **figures, "removal_ms": percentiles(removals)}


def imported_packages(log: AgentLog) -> Json:
    """What the agent imported, by top-level package."""
    log.poll()
    packages = sorted(top for top in {name.split(".")[0] for name in log.imported} if _exists(top))
    return {
        "modules": len(log.imported),
        "packages": packages,
        "kubernetes_asyncio": "kubernetes_asyncio" in packages,
        "cryptography": "cryptography" in packages,
        "aiohttp": "aiohttp" in packages,
    }


async def run(plan: Plan, work: Path, reaper: Reaper, progress: Progress) -> Json:
    """Every phase in order; returns the results."""
    progress.say("import cost in a fresh interpreter")
    imports = await import_costs()
    progress.say("starting the cloud and its broker")
    async with cloud_with_rest(work, reaper) as (cloud, rest):
        await rest.call("POST", "/v1/nodes", {"name": NODE, "labels": {}})
        progress.say("starting baetyl-core")
        config = write_core_config(work / "agent", cloud, api=True)
        async with agent_process(config, reaper, trace_imports=True) as agent:
            idle = await idle_phases(agent, rest, plan, progress)
            latency = [
                await latency_rounds(agent, rest, size, plan, progress) for size in plan.sizes
            ]
            progress.say("idle with 0 apps again: memory after the rounds")
            await asyncio.sleep(plan.settle)
            after = await sample_memory(agent.pid, plan.samples)
            agent_imports = imported_packages(agent.log)

        progress.say("baetyl-core again with the local API off: memory idle with 0 apps")
        config = write_core_config(work / "agent-api-off", cloud, api=False)
        async with agent_process(config, reaper, trace_imports=True) as agent:
            await asyncio.sleep(plan.settle)
            api_off = await sample_memory(agent.pid, plan.samples)
            api_off_imports = imported_packages(agent.log)

    cpu = idle.pop("cpu")
    memory = {**idle, "after_rounds": after, "idle_0_api_off": api_off}
    return {
        "provenance": provenance(),
        "load_average_end": os.getloadavg(),  # at the start: in the provenance
        "plan": dataclasses.asdict(plan),
        "workdir": str(work),
        "imports": imports,
        "agent_imports": agent_imports,
        "agent_imports_api_off": api_off_imports,
        "memory": memory,
        "cpu": cpu,
        "latency": latency,
        "checks": checks(plan, memory, cpu, agent_imports["packages"]),
    }


def checks(plan: Plan, memory: Json, cpu: Json, packages: list[str]) -> list[Json]:
    """Each target of issue 5 with what was measured."""
    rows = [
        {
            "target": f"idle RSS with {apps} <= {RSS_TARGET_MB:.0f} MB",
            "measured": f"{memory[key]['rss_mb']:.1f} MB",
            "met": memory[key]["rss_mb"] <= RSS_TARGET_MB,
        }
        for apps, key in (
            ("0 apps", "idle_0"),
            (f"{plan.idle_apps} apps", f"idle_{plan.idle_apps}"),
            ("0 apps, local API off", "idle_0_api_off"),
        )
    ]
    rows.append(
        {
            "target": f"idle CPU with {plan.idle_apps} apps < {CPU_TARGET_PERCENT:.0f} % of a core",
            "measured": f"{cpu['percent_one_core']:.2f} %",
            "met": cpu["percent_one_core"] < CPU_TARGET_PERCENT,
        }
    )
    rows.append(
        {
            "target": "kubernetes_asyncio not imported (native mode)",
            "measured": "imported" if "kubernetes_asyncio" in packages else "not imported",
            "met": "kubernetes_asyncio" not in packages,
        }
    )
    return rows


def summary(result: Json) -> str:
    """The tables docs/benchmarks.md shows, as Markdown."""
    return sections.agent(result, image=None)


def _exists(module: str) -> bool:
    """Whether a top-level module can be imported here (importtime lists failed attempts too)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


FLAGS = BenchFlags(
    FULL,
    QUICK,
    "few apps and short windows (a smoke run)",
    (
        ("--idle-apps", int, "apps running for the second memory sample and CPU (20)"),
        ("--sizes", counts, "app counts of the deploy latency rounds (1,50)"),
        ("--rounds", int, "deploy/remove rounds per size (10)"),
        ("--settle", float, "seconds left idle before memory is sampled (10)"),
        ("--samples", int, "memory samples, one a second (5)"),
        ("--cpu-window", float, "seconds of the idle CPU window (60)"),
    ),
)


if __name__ == "__main__":  # run, print the summary, write the JSON; clean up whatever happens
    sys.exit(bench_cli("bench/agent.py", __doc__, FLAGS, run, summary))
