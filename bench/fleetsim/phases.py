"""The measured phases of a fleet run, for one replica count.

Per replica count: connect the nodes stage by stage while they report every `interval` seconds,
measure a steady window at each stage, time REST → delta at the stage that holds the delta nodes,
then stop the periodic reports and saturate the cloud with a bounded number of reports in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fleetsim import api, meter
from fleetsim.cpu import CpuAccount, cores
from fleetsim.services import Cloud
from fleetsim.workers import WorkerPool

DELTA_APP = "fleet-delta"
PROGRESS_EVERY = 10.0

Result = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """Sizes and timings of a run (fleet.py fills it from the command line)."""

    stages: tuple[int, ...]
    """Connected node counts measured in turn, ascending (e.g. 1,000 then 10,000)."""
    replicas: tuple[int, ...]
    """Replica counts measured in turn."""
    interval: float
    """Seconds between two reports of one node."""
    warmup: float
    """Seconds of reporting after the last connection before a window opens."""
    duration: float
    """Length of each steady-state window."""
    grace: float
    """How long answers to a window's last reports are awaited."""
    delta_nodes: int
    """Nodes matched by the delta app."""
    delta_rounds: int
    """Timed app changes: a create, updates, and a delete last (with two rounds or more)."""
    delta_timeout: float
    """How long a round waits for every matched node's delta."""
    saturation: float
    """Length of the saturation window; 0 skips it."""
    inflight: int
    """Reports outstanding during saturation, over all workers."""
    workers: int
    """Simulator processes."""
    connect_concurrency: int
    """TLS handshakes in progress per worker."""
    keepalive: int
    """MQTT keepalive of the simulated nodes."""


@dataclass
class Bench:
    """Everything the phases drive."""

    plan: Plan
    pool: WorkerPool
    cloud: Cloud
    api: api.Api
    cpu: CpuAccount
    say: Callable[[str], None]
    connected: int = 0


async def run_replica_count(bench: Bench, replicas: int, nids: list[str]) -> Result:
    """Every phase for one replica count; the nodes are disconnected at the end."""
    plan = bench.plan
    result: Result = {"replicas": replicas, "connect": [], "ingest": []}
    await bench.pool.all("reports", interval=plan.interval)
    for stage in plan.stages:
        result["connect"].append(await connect(bench, nids[bench.connected : stage]))
        result["ingest"].append(await steady(bench, replicas))
        if plan.delta_rounds and "delta" not in result and stage >= plan.delta_nodes:
            result["delta"] = await deltas(bench, replicas)
    await bench.pool.all("reports", interval=None)
    if plan.saturation > 0:
        await asyncio.sleep(min(plan.interval, 2.0))  # let the last periodic answers arrive
        result["saturation"] = await saturate(bench, replicas)
    result["workers"] = await bench.pool.all("status")
    await bench.pool.all("disconnect")
    bench.connected = 0
    return result


async def connect(bench: Bench, nids: list[str]) -> Result:
    """Connect more nodes; each subscribes and reads its shadow before counting as connected."""
    bench.say(f"connecting {len(nids)} nodes ({bench.connected} connected)")
    args = [
        {"nids": part, "concurrency": bench.plan.connect_concurrency}
        for part in bench.pool.deal(nids)
    ]
    before = bench.cpu.sample()
    started = time.monotonic()
    answers = await bench.pool.each("connect", args)
    seconds = time.monotonic() - started
    failed = sum(answer["failed"] for answer in answers)
    if failed:
        errors = [error for answer in answers for error in answer["errors"]]
        raise RuntimeError(f"{failed} nodes could not connect, e.g. {errors[:3]}")
    bench.connected += len(nids)
    bench.say(f"{bench.connected} nodes connected ({seconds:.1f} s)")
    return {
        "nodes": len(nids),
        "seconds": round(seconds, 2),
        "per_s": round(len(nids) / max(seconds, 1e-9), 1),
        "cpu_cores": cores(before, bench.cpu.sample()),
    }


async def steady(bench: Bench, replicas: int) -> Result:
    """Reports every `interval` from every connected node: one measured window."""
    plan = bench.plan
    start = time.monotonic() + plan.warmup
    end = start + plan.duration
    label = f"ingest, {bench.connected} nodes, {replicas} replica(s)"
    parts, usage = await _window(
        bench, label, start, end, bench.pool.all("measure", start=start, end=end, grace=plan.grace)
    )
    merged = meter.merge(parts)
    offered = bench.connected / plan.interval
    bench.say(
        f"{label}: {merged['achieved_per_s']} reports/s of {offered:.1f} offered, "
        f"p50 {merged['latency_ms'].get('p50')} ms, p99 {merged['latency_ms'].get('p99')} ms, "
        f"lost {merged['lost']}, rejected {sum(merged['rejected'].values())}"
    )
    return {
        "nodes": bench.connected,
        "interval_s": plan.interval,
        "offered_per_s": round(offered, 1),
        **merged,
        "cpu_cores": usage,
    }


async def saturate(bench: Bench, replicas: int) -> Result:
    """As many reports as the cloud takes, `inflight` outstanding at a time, one per node."""
    plan = bench.plan
    start = time.monotonic() + min(plan.interval, 2.0)  # the pipeline fills before the window
    end = start + plan.saturation
    shares = [
        plan.inflight // plan.workers + (i < plan.inflight % plan.workers)
        for i in range(plan.workers)
    ]
    label = f"saturation, {bench.connected} nodes, {replicas} replica(s)"
    calls = bench.pool.each(
        "saturate",
        [{"start": start, "end": end, "inflight": share, "grace": plan.grace} for share in shares],
    )
    parts, usage = await _window(bench, label, start, end, calls)
    merged = meter.merge(parts)
    bench.say(
        f"{label}: {merged['achieved_per_s']} reports/s, p50 {merged['latency_ms'].get('p50')} ms,"
        f" p99 {merged['latency_ms'].get('p99')} ms, rejected {sum(merged['rejected'].values())}"
    )
    return {"nodes": bench.connected, "inflight": plan.inflight, **merged, "cpu_cores": usage}


async def _window(
    bench: Bench, label: str, start: float, end: float, calls: Awaitable[T]
) -> tuple[T, dict[str, float]]:
    """Run the workers' window `calls`, sampling CPU at the window's edges, telling progress."""
    task = asyncio.ensure_future(calls)
    try:
        await _sleep_until(start, task)
        before = bench.cpu.sample()
        while time.monotonic() < end and not task.done():
            await _sleep_until(min(end, time.monotonic() + PROGRESS_EVERY), task)
            bench.say(f"{label}: {time.monotonic() - start:.0f}/{end - start:.0f} s")
        usage = cores(before, bench.cpu.sample())
        return await task, usage
    finally:
        task.cancel()


async def _sleep_until(moment: float, task: asyncio.Future[Any]) -> None:
    """Sleep until `moment`, waking early (with its error) if `task` ends first."""
    await asyncio.wait([task], timeout=max(0.0, moment - time.monotonic()))
    if task.done() and task.exception() is not None:
        task.result()


async def deltas(bench: Bench, replicas: int) -> Result:
    """Time app changes (create, updates, delete) from the REST call to every matched node."""
    plan = bench.plan
    rounds: list[Result] = []
    samples: list[float] = []
    version: str | None = None
    before = bench.cpu.sample()
    for generation in range(plan.delta_rounds):
        replica = bench.cloud.replicas[generation % len(bench.cloud.replicas)]
        op = _delta_op(generation, plan.delta_rounds)
        # Contents (hence versions) never repeat across replica counts: a node's stale report
        # of an old version must not make a new app look already applied.
        content = replicas * 1000 + generation
        outcome, version = await _delta_round(bench, replica.url, op, content, version)
        outcome["replica"] = replica.name
        samples.extend(outcome.pop("latencies_ms"))
        rounds.append(outcome)
        bench.say(
            f"delta {op} via {replica.name}: {outcome['delivered']}/{plan.delta_nodes} nodes, "
            f"p50 {outcome['p50_ms']} ms, p99 {outcome['p99_ms']} ms (REST {outcome['rest_ms']} ms)"
        )
        await asyncio.sleep(min(2.0, plan.interval / 2))  # nodes settle; reports go on
    if version is not None:  # fewer than two rounds: the app is still there
        await bench.api.call(bench.cloud.replicas[0].url, "DELETE", f"/v1/apps/{DELTA_APP}")
    return {
        "nodes": plan.delta_nodes,
        "replicas": replicas,
        "rounds": rounds,
        "latency_ms": meter.summary(samples),
        "missing": sum(r["missing"] for r in rounds),
        "cpu_cores": cores(before, bench.cpu.sample()),
    }


def _delta_op(generation: int, rounds: int) -> str:
    """The first round creates the app, the last of two or more deletes it, others update it."""
    if generation == 0:
        return "create"
    return "delete" if generation == rounds - 1 else "update"


async def _delta_round(
    bench: Bench, base: str, op: str, content: int, old: str | None
) -> tuple[Result, str | None]:
    """One app change; returns its figures and the app's version afterwards (None: deleted)."""
    plan = bench.plan
    await bench.pool.all("expect", app=DELTA_APP, old=old, gone=op == "delete")
    path = "/v1/apps" if op == "create" else f"/v1/apps/{DELTA_APP}"
    method = {"create": "POST", "update": "PUT", "delete": "DELETE"}[op]
    body = None if op == "delete" else api.delta_app(DELTA_APP, content)
    started = time.monotonic()
    answer = await bench.api.call(base, method, path, body)
    rest = time.monotonic() - started
    deadline = started + plan.delta_timeout
    while time.monotonic() < deadline:
        counts = await bench.pool.all("arrivals", times=False)
        if sum(count["count"] for count in counts) >= plan.delta_nodes:
            break
        await asyncio.sleep(0.1)
    parts = await bench.pool.all("arrivals", times=True)
    latencies = sorted(round((t - started) * 1000, 2) for part in parts for t in part["times"])
    stats = meter.summary(latencies)
    return {
        "op": op,
        "rest_ms": round(rest * 1000, 1),
        "delivered": len(latencies),
        "missing": plan.delta_nodes - len(latencies),
        "p50_ms": stats.get("p50"),
        "p99_ms": stats.get("p99"),
        "max_ms": stats.get("max"),
        "latencies_ms": latencies,
    }, None if op == "delete" else str(answer["version"])
