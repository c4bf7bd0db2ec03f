"""Fleet simulator benchmark (issue 4): thousands of MQTT nodes against real cloud replicas.

Starts a throwaway PostgreSQL, one Mosquitto (mutual TLS, the platform ACL) and `baetyl-cloud
serve` replicas on them, creates the nodes through the REST API, then connects them from a few
simulator processes — each node a real MQTT client with its own certificate — and measures, per
replica count:
  - report ingest at each fleet size (every node reports every `--interval` s with a random
    phase): reports/s achieved vs offered, `shadow/update` → `update/accepted` latency, losses;
  - REST → delta: creating, updating and deleting an app matching `--delta-nodes` nodes, from
    the request until the delta reached each of them;
  - the saturated ingest rate (a bounded number of reports in flight), for the replica ratio.
Run: `.venv/bin/python bench/fleet.py [--nodes 1000,10000] [--replicas 1,2] [--out F.json]
[--plot F.png]`, or `--quick` for a smoke run of a few seconds per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
# The repository first: bench/ holds scripts (bench/agent.py) named like the project's packages.
sys.path[:0] = [str(BENCH_DIR.parent), str(BENCH_DIR)]

from fleetsim import api, report, services  # noqa: E402
from fleetsim.cpu import CpuAccount, fixed, postmaster_and_children  # noqa: E402
from fleetsim.phases import Bench, Plan, run_replica_count  # noqa: E402
from fleetsim.pki import BenchPKI, ensure_pki  # noqa: E402
from fleetsim.workers import WorkerPool, worker_pool  # noqa: E402
from provenance import provenance  # noqa: E402

from tools.kit.progress import Progress as KitProgress  # noqa: E402

Result = dict[str, Any]
PROBE = f"{api.NAMESPACE}.fleet-probe"
"""The nid whose certificate proves the broker accepts mutual TLS before the run starts."""

FULL = Plan(
    stages=(1000, 10000),
    replicas=(1, 2),
    interval=20.0,
    warmup=20.0,
    duration=60.0,
    grace=10.0,
    delta_nodes=1000,
    delta_rounds=5,
    delta_timeout=30.0,
    saturation=30.0,
    inflight=256,
    workers=4,
    connect_concurrency=32,
    keepalive=60,
)
QUICK = dataclasses.replace(
    FULL,
    stages=(10, 20),
    interval=2.0,
    warmup=2.0,
    duration=4.0,
    grace=3.0,
    delta_nodes=10,
    delta_rounds=2,
    delta_timeout=10.0,
    saturation=3.0,
    inflight=8,
    workers=2,
    connect_concurrency=8,
    keepalive=30,
)
# Flags that override a field of the plan (flag destination: plan field).
FLAGS = {
    "nodes": "stages",
    "replicas": "replicas",
    "duration": "duration",
    "interval": "interval",
    "warmup": "warmup",
    "delta_nodes": "delta_nodes",
    "delta_rounds": "delta_rounds",
    "saturation": "saturation",
    "inflight": "inflight",
    "workers": "workers",
}


def counts(text: str) -> tuple[int, ...]:
    """A comma-separated list of positive counts, ascending."""
    try:
        values = tuple(sorted(int(part) for part in text.split(",") if part.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 1000,10000, got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive counts, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """Flags; sizes left unset come from the full or the --quick defaults."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog="Progress goes to stderr, the Markdown summary to stdout.",
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="tiny sizes and short phases (a smoke run)")
    add("--nodes", type=counts, help="connected fleet sizes measured in turn (1000,10000)")
    add("--replicas", type=counts, help="cloud replica counts measured in turn (1,2)")
    add("--duration", type=float, help="seconds of each steady-state window (60)")
    add("--interval", type=float, help="seconds between two reports of a node (20)")
    add("--warmup", type=float, help="seconds of reports before a window opens (one interval)")
    add("--delta-nodes", type=int, help="nodes matched by the timed app (1000)")
    add("--delta-rounds", type=int, help="timed app changes: create, updates, delete (5)")
    add("--saturation", type=float, help="seconds of the saturation window, 0 skips it (30)")
    add("--inflight", type=int, help="reports in flight during saturation, in total (256)")
    add("--workers", type=int, help="simulator processes (4)")
    add("--out", type=Path, metavar="FILE.json", help="write the results as JSON")
    add(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="draw the ingest figure here, REST → delta as FILE-delta.png",
    )
    add("--logs", type=Path, metavar="DIR", help="keep the broker's and replicas' logs here")
    add("--profile", type=Path, metavar="DIR", help="run replicas under cProfile, stats here")
    return parser


def make_plan(args: argparse.Namespace) -> Plan:
    """The full or quick plan with the flags given applied; the warmup follows the interval."""
    base = QUICK if args.quick else FULL
    chosen = {field: getattr(args, flag) for flag, field in FLAGS.items()}
    plan = dataclasses.replace(base, **{k: v for k, v in chosen.items() if v is not None})
    if args.warmup is None:
        plan = dataclasses.replace(plan, warmup=plan.interval)
    if plan.delta_nodes > plan.stages[-1]:
        raise SystemExit("--delta-nodes cannot exceed the largest --nodes stage")
    return plan


class Progress(KitProgress):
    """The kit's timed lines on stderr; worker connect counts folded into one line."""

    def __init__(self) -> None:
        super().__init__("fleet", clock=True)
        self.started = time.monotonic()
        self._connected: dict[int, int] = {}
        self._last = 0.0

    def worker_event(self, worker: int, event: Result) -> None:
        """A worker's progress: print the total at most every 2 s."""
        if "connected" not in event:
            return
        self._connected[worker] = event["connected"]
        if time.monotonic() - self._last > 2.0:
            self._last = time.monotonic()
            self.say(f"  … {sum(self._connected.values())} connected in this batch")

    def batch_done(self) -> None:
        """Reset the per-batch counts."""
        self._connected.clear()


async def start_replicas(
    cloud: services.Cloud, cpu: CpuAccount, count: int, say: Callable[[str], None]
) -> None:
    """Start `count` replicas one after the other; each one's CPU is counted from its start."""
    while len(cloud.replicas) < count:
        replica = await cloud.start(f"r{len(cloud.replicas) + 1}")
        cpu.add(f"cloud {replica.name}", fixed(replica.pid))
        say(f"replica {replica.name} up at {replica.url}")


async def run(plan: Plan, progress: Progress, options: argparse.Namespace) -> Result:
    """Every replica count in turn, each on a fresh database, broker and cloud.

    Fresh, so that the second count does not inherit the first one's table bloat, autovacuum
    work and retained sessions: the two must differ only in the number of replicas.
    """
    nids = [api.nid(index) for index in range(plan.stages[-1])]
    names = [f"r{n}" for n in range(1, max(plan.replicas) + 1)]
    progress.say(f"certificates for {len(nids)} nodes (cached)")
    pki = await asyncio.to_thread(ensure_pki, [*nids, PROBE], names, progress=progress.say)
    runs = []
    for count in plan.replicas:
        progress.say(f"--- {count} replica(s): fresh PostgreSQL, Mosquitto and cloud")
        runs.append(await run_fresh(plan, progress, options, pki=pki, nids=nids, replicas=count))
        progress.batch_done()
    return {"runs": runs}


async def run_fresh(
    plan: Plan,
    progress: Progress,
    options: argparse.Namespace,
    *,
    pki: BenchPKI,
    nids: list[str],
    replicas: int,
) -> Result:
    """Start the services, create the nodes, run the phases, stop everything."""
    say = progress.say
    cpu = CpuAccount()
    cpu.add("controller", fixed(os.getpid()))
    keep = None if options.logs is None else options.logs / f"{replicas}-replicas"
    profile = None if options.profile is None else options.profile / f"{replicas}-replicas"
    async with contextlib.AsyncExitStack() as stack:
        cluster, dsn = await stack.enter_async_context(services.postgres())
        cpu.add("postgres", postmaster_and_children(cluster.port))
        broker = await stack.enter_async_context(
            services.mosquitto(
                pki,
                replicas=[f"r{n}" for n in range(1, replicas + 1)],
                max_connections=len(nids) + 100,
                probe=PROBE,
                keep_logs=keep,
            )
        )
        cpu.add("broker", fixed(broker.pid))
        say(f"PostgreSQL on port {cluster.port}, Mosquitto on port {broker.port}")
        cloud = await stack.enter_async_context(
            services.cloud(db_url=dsn, broker=broker, pki=pki, keep_logs=keep, profile_dir=profile)
        )
        session = await stack.enter_async_context(aiohttp.ClientSession())
        pool: WorkerPool = await stack.enter_async_context(
            worker_pool(plan.workers, _worker_settings(plan, pki, broker), progress.worker_event)
        )
        cpu.add("simulator", lambda: pool.pids)
        await start_replicas(cloud, cpu, replicas, say)
        bench = Bench(plan, pool, cloud, api.Api(session, cloud.token), cpu, say)
        created = await api.create_nodes(
            bench.api,
            cloud.replicas[0].url,
            range(len(nids)),
            delta_nodes=plan.delta_nodes,
            progress=say,
        )
        return {**await run_replica_count(bench, replicas, nids), "create_nodes_s": round(created)}


def _worker_settings(plan: Plan, pki: BenchPKI, broker: services.Broker) -> Result:
    return {
        "host": broker.host,
        "port": broker.port,
        "ca_file": str(pki.ca_file),
        "cert_dir": str(pki.node_file("x").parent),
        "keepalive": plan.keepalive,
        "seed": 1,
    }


async def main_async(plan: Plan, progress: Progress, options: argparse.Namespace) -> Result:
    """`run` with SIGTERM treated like Ctrl-C: the main task is cancelled and cleans up."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run(plan, progress, options)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main() -> int:
    """Entry point: run, print the summary, write the JSON and the plot."""
    args = build_parser().parse_args()
    plan = make_plan(args)
    progress = Progress()
    origin = provenance()
    started = datetime.datetime.now(datetime.UTC)
    try:
        outcome = asyncio.run(main_async(plan, progress, args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        progress.say("interrupted; every process was stopped")
        return 130
    except (services.ServiceError, api.ApiError, RuntimeError, OSError) as exc:
        progress.say(f"failed: {exc}")
        return 1
    results: Result = {
        "provenance": origin,
        "command": origin["command"],
        "date": started.isoformat(timespec="seconds"),
        "machine": origin["machine"],
        "plan": dataclasses.asdict(plan),
        **outcome,
    }
    results["checks"] = report.checks(results)
    results["scale_ratio"] = report.scale_ratio(results)
    print(report.markdown(results))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    if args.plot is not None:
        # The report's figures: ingest at the path given, REST → delta beside it. Imported
        # here: matplotlib (the `dev` extra) is needed only with --plot.
        from reportkit import plots  # noqa: PLC0415

        caption = f"{origin['command']}\n{results['date']}, {origin['machine']['summary']}"
        plots.fleet_ingest(results, args.plot, caption)
        plots.fleet_delta(results, args.plot.with_name(f"{args.plot.stem}-delta.png"), caption)
    progress.say(f"done in {time.monotonic() - progress.started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
