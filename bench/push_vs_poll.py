"""Benchmark: REST app create → its process running on the node, push against polling.

Baetyl v2's agent learns of a change only when it reports (every 20 s, the answer carries the
desired state) and its engine applies what it learnt on a tick (every 10 s): up to ~30 s from
a change in the cloud to a process on the node. Ours is pushed a delta at once and reconciles
at once. Both are measured here on the same code, cloud and machine, by configuring one real
`baetyl-core` each way:

  push  the defaults (`sync.mode: push`, `engine.mode: event`);
  poll  `sync.mode: poll`, `sync.report_interval: 20`, `engine.mode: tick`, `engine.interval: 10`
        (the agent ignores deltas, reads its shadow after each periodic report, and applies a
        new desired state only on its engine tick).

One `baetyl-cloud serve` with its managed Mosquitto serves both; each model has its own node and
agent, run one after the other. A sample is one `POST /v1/apps` of a native `sleep infinity`
app whose selector matches that node, timed from just before the request to the agent's
"instance started" log line for the app (and the process is then looked up in the process
table). Requests arrive at random gaps, so they fall at random phases of the polling cycle;
in poll mode several are in flight at once (the cycle is far longer than the gaps).
Run: `.venv/bin/python bench/push_vs_poll.py [--out F.json]`, or `--quick` for a smoke run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekit import (  # noqa: E402
    Agent,
    BenchError,
    BenchFlags,
    Cloud,
    Json,
    Progress,
    Reaper,
    Rest,
    agent_process,
    all_running,
    bench_cli,
    cloud_with_rest,
    eventually,
    percentiles,
    record_time,
    write_core_config,
)
from provenance import provenance  # noqa: E402
from reportkit import sections  # noqa: E402

TARGET_P50_MS = 300.0
TARGET_P99_MS = 1000.0
FAILED = {"app not deployed", "instance could not start"}


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes and timings of one run."""

    push_samples: int = 50
    """App creations timed against the push agent."""
    push_gap: float = 0.5
    """Mean seconds between two creations in push mode (uniform in [0, 2 * mean])."""
    poll_samples: int = 30
    """App creations timed against the polling agent."""
    poll_gap: float = 4.0
    """Mean seconds between two creations in poll mode."""
    report_interval: float = 20.0
    """The polling agent's report (and so poll) interval: Baetyl v2's default."""
    engine_interval: float = 10.0
    """The polling agent's engine tick: Baetyl v2's default."""
    seed: int = 1
    """Seeds the random gaps, so two runs send at the same offsets."""

    @property
    def timeout(self) -> float:
        """Seconds one sample may take before the run fails."""
        return 2 * (self.report_interval + self.engine_interval) + 30.0

    def problem(self) -> str | None:
        """What makes the plan impossible to run, if anything."""
        if self.push_samples < 1 or self.poll_samples < 1:
            return "--push-samples and --poll-samples must be at least 1"
        if (
            min(self.push_gap, self.poll_gap) < 0
            or min(self.report_interval, self.engine_interval) <= 0
        ):
            return "gaps must be >= 0 and intervals > 0"
        return None


FULL = Plan()
QUICK = Plan(
    push_samples=5, push_gap=0.2, poll_samples=4, poll_gap=0.5, report_interval=2.0,
    engine_interval=1.0,
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Model:
    """One way of running the agent: its node and the core.yml sections that make it so."""

    name: str
    samples: int
    gap: float
    sections: dict[str, Json]

    @property
    def node(self) -> str:
        """The node this model's agent runs as."""
        return f"{self.name}-edge"


def models(plan: Plan) -> list[Model]:
    """Push (the defaults) first, then polling with the plan's intervals."""
    poll = {
        "sync": {"mode": "poll", "report_interval": plan.report_interval},
        "engine": {"mode": "tick", "interval": plan.engine_interval},
    }
    return [
        Model("push", plan.push_samples, plan.push_gap, {}),
        Model("poll", plan.poll_samples, plan.poll_gap, poll),
    ]


async def create_app(rest: Rest, name: str, model: Model) -> float:
    """POST one native app placed on the model's node; the wall-clock time it was sent."""
    sleep = shutil.which("sleep") or "/bin/sleep"
    body = {
        "name": name,
        "mode": "native",
        "selector": f"model={model.name}",
        "services": [{"name": "main", "command": [sleep, "infinity"]}],
    }
    sent = time.time()
    await rest.call("POST", "/v1/apps", body)
    return sent


def started_at(agent: Agent, mark: int, wanted: set[str]) -> dict[str, Json]:
    """For each app of `wanted` the agent has started: when it adopted and when it started it.

    "adopted" is the first "desired state changed" line before the app's "instance started".
    """
    found: dict[str, Json] = {}
    adopted: list[float] = []
    for record in agent.log.since(mark):
        message = record.get("message")
        if message == "desired state changed":
            adopted.append(record_time(record))
        elif message == "instance started" and record.get("app") in wanted:
            at = record_time(record)
            found.setdefault(
                str(record["app"]), {"running": at, "adopted": adopted[-1] if adopted else at}
            )
        elif message in FAILED and record.get("app") in wanted:
            raise BenchError(f"the agent failed an app: {record}")
    return found


def _started(agent: Agent, mark: int, name: str) -> dict[str, Json] | None:
    return started_at(agent, mark, {name}) or None


async def measure(model: Model, agent: Agent, rest: Rest, plan: Plan, progress: Progress) -> Json:
    """Create `model.samples` apps at random gaps; each one's times, from the request on."""
    rng = random.Random(plan.seed)
    mark = len(agent.log.since(0))
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    names = [f"{model.name}-{index:03d}" for index in range(model.samples)]
    for index, name in enumerate(names):
        if index:
            await asyncio.sleep(rng.uniform(0.0, 2 * model.gap))
        sent[name] = await create_app(rest, name, model)
        answered[name] = time.time()
        if model.name == "push":
            # One at a time: each sample sees an idle agent.
            await eventually(
                functools.partial(_started, agent, mark, name),
                limit=plan.timeout,
                what=f"{name} running",
            )
        if (index + 1) % 10 == 0:
            progress.say(f"  {model.name}: {index + 1}/{model.samples} apps created")
    wanted = set(names)

    def every_app() -> dict[str, Json] | None:
        found = started_at(agent, mark, wanted)
        return found if len(found) == len(wanted) else None

    started = await eventually(every_app, limit=plan.timeout, what=f"{len(names)} apps running")
    await eventually(lambda: all_running(agent.pid, wanted), limit=10, what="the app processes")
    samples = [
        {
            "app": name,
            "rest_ms": (answered[name] - sent[name]) * 1000,
            "adopted_ms": (started[name]["adopted"] - sent[name]) * 1000,
            "running_ms": (started[name]["running"] - sent[name]) * 1000,
        }
        for name in names
    ]
    return {
        "model": model.name,
        "node": model.node,
        "core_yml": model.sections,
        "samples": samples,
        "running_ms": percentiles([s["running_ms"] for s in samples]),
        "adopted_ms": percentiles([s["adopted_ms"] for s in samples]),
        "rest_ms": percentiles([s["rest_ms"] for s in samples]),
    }


async def run_model(
    model: Model, cloud: Cloud, rest: Rest, work: Path, reaper: Reaper, progress: Progress,
    plan: Plan,
) -> Json:  # fmt: skip
    """One agent configured as `model`; its samples. The apps are removed afterwards."""
    await rest.call("POST", "/v1/nodes", {"name": model.node, "labels": {"model": model.name}})
    config = write_core_config(
        work / model.node, cloud, api=False, node=model.node, sections=model.sections
    )
    progress.say(f"{model.name}: starting baetyl-core as {model.node}, {model.samples} samples")
    async with agent_process(config, reaper) as agent:
        await asyncio.sleep(1.0)  # past the first read of the shadow and first report
        result = await measure(model, agent, rest, plan, progress)
    for sample in result["samples"]:
        await rest.call("DELETE", f"/v1/apps/{sample['app']}")
    figures = result["running_ms"]
    progress.say(
        f"{model.name}: REST create → running p50 {figures['p50']:.0f} ms, "
        f"p99 {figures['p99']:.0f} ms, max {figures['max']:.0f} ms"
    )
    return result


def expected_poll_ms(plan: Plan) -> Json:
    """What the polling timing should cost, in ms, for a change made at a random moment.

    The change waits for the next poll, uniform over the report interval. The engine's tick
    then comes at once or up to one engine interval later, depending on the two timers' phases.
    Both start with the agent (as Baetyl's tickers do) and the engine's drifts by its reconcile
    time per tick, so within a run of minutes its tick lands just after each poll: the wait is
    then the poll's alone ("aligned", polling's best case). With phases apart it is up to a poll
    plus a tick ("worst").
    """
    report, engine = plan.report_interval * 1000, plan.engine_interval * 1000
    return {
        "aligned_mean": report / 2,
        "aligned_max": report,
        "independent_mean": (report + engine) / 2,
        "worst": report + engine,
    }


def checks(results: list[Json]) -> list[Json]:
    """The issue's target for the push model, and the comparison with polling."""
    by_model = {result["model"]: result["running_ms"] for result in results}
    push, poll = by_model["push"], by_model["poll"]
    return [
        {
            "target": f"push: REST app create → process running p50 < {TARGET_P50_MS:.0f} ms",
            "measured": f"{push['p50']:.0f} ms",
            "met": push["p50"] < TARGET_P50_MS,
        },
        {
            "target": f"push: REST app create → process running p99 < {TARGET_P99_MS:.0f} ms",
            "measured": f"{push['p99']:.0f} ms",
            "met": push["p99"] < TARGET_P99_MS,
        },
        {
            "target": "push faster than polling at the median",
            "measured": f"{poll['p50'] / max(push['p50'], 0.001):.0f} times faster",
            "met": push["p50"] < poll["p50"],
        },
    ]


async def run(plan: Plan, work: Path, reaper: Reaper, progress: Progress) -> Json:
    """Both models in turn against one cloud; returns the results."""
    origin = provenance()
    progress.say("starting the cloud and its broker")
    async with cloud_with_rest(work, reaper) as (cloud, rest):
        results = [
            await run_model(model, cloud, rest, work, reaper, progress, plan)
            for model in models(plan)
        ]
    return {
        "provenance": origin,
        "plan": dataclasses.asdict(plan),
        "expected_poll_ms": expected_poll_ms(plan),
        "models": results,
        "checks": checks(results),
    }


def summary(result: Json) -> str:
    """The tables docs/benchmarks.md shows, as Markdown."""
    tables = [*sections.models_table(result), "", *sections.checks_table(result["checks"])]
    return "\n".join(tables)


FLAGS = BenchFlags(
    FULL,
    QUICK,
    "few samples and a 2 s + 1 s cycle (a smoke run)",
    (
        ("--push-samples", int, "app creations timed in push mode (50)"),
        ("--poll-samples", int, "app creations timed in poll mode (30)"),
        ("--push-gap", float, "mean seconds between creations in push mode (0.5)"),
        ("--poll-gap", float, "mean seconds between creations in poll mode (4)"),
        ("--report-interval", float, "the polling agent's report interval, s (20)"),
        ("--engine-interval", float, "the polling agent's engine tick, s (10)"),
        ("--seed", int, "seed of the random gaps (1)"),
    ),
)


if __name__ == "__main__":  # run, print the summary, write the JSON; clean up whatever happens
    sys.exit(bench_cli("bench/push_vs_poll.py", __doc__, FLAGS, run, summary))
