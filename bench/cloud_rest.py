"""Benchmark of the cloud REST API at fleet scale: 10,000 nodes and 200 apps with selectors.

Starts a real `baetyl-cloud serve` process (SQLite, or PostgreSQL from a throwaway cluster), seeds
it through the REST API, then reports p50/p99 of
  - `GET /v1/nodes?pageSize=50` (pages spread over the fleet),
  - creating an app whose selector matches every node (one transaction writes 10,000 shadows),
  - a node label change (the node's apps are re-matched).
Run: `.venv/bin/python bench/cloud_rest.py --db sqlite|postgres [--nodes N] [--apps N]
[--out F.json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance import provenance  # noqa: E402

from tests.harness.common import free_port, wait_for_port  # noqa: E402
from tests.harness.postgres import PostgresCluster  # noqa: E402

ZONES = 10
TIERS = 3


def node_labels(index: int) -> dict[str, str]:
    """Labels of node `index`: every node is in fleet main, zones and tiers spread evenly."""
    return {"fleet": "main", "zone": f"z{index % ZONES}", "tier": str(index % TIERS)}


def app_selector(index: int) -> str:
    """A mix of selector shapes, each matching a slice of the fleet."""
    shapes = [
        f"zone=z{index % ZONES}",
        f"zone in (z{index % ZONES},z{(index + 1) % ZONES}),tier!={index % TIERS}",
        f"tier={index % TIERS},fleet",
        f"zone notin (z{index % ZONES}),tier={(index + 1) % TIERS}",
    ]
    return shapes[index % len(shapes)]


def app_spec(name: str, selector: str) -> dict[str, Any]:
    """A small native app."""
    return {
        "name": name,
        "mode": "native",
        "selector": selector,
        "services": [{"name": "main", "command": ["sleep", "infinity"]}],
    }


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


@contextlib.asynccontextmanager
async def cloud_process(db: str) -> AsyncIterator[tuple[str, str]]:
    """A `baetyl-cloud serve` process; yields (url, admin token)."""
    cluster = PostgresCluster() if db == "postgres" else None
    with tempfile.TemporaryDirectory(prefix="baetyl-bench-") as tmp:
        data_dir = Path(tmp) / "cloud"
        port = free_port()
        command = [
            str(Path(sys.executable).parent / "baetyl-cloud"),
            "--log-level",
            "warning",
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
            "--no-mqtt",
        ]
        if cluster is not None:
            command += ["--db", cluster.create_database("bench")]
        process = await asyncio.create_subprocess_exec(*command)
        try:
            await asyncio.to_thread(wait_for_port, "127.0.0.1", port, timeout=60)
            token = (data_dir / "admin.token").read_text(encoding="ascii").strip()
            yield f"http://127.0.0.1:{port}", token
        finally:
            process.terminate()
            await process.wait()
            if cluster is not None:
                cluster.stop()


async def timed(call: Callable[[], Awaitable[None]]) -> float:
    """Seconds one call took."""
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def run(db: str, nodes: int, apps: int, rounds: int) -> dict[str, Any]:
    """Seed, measure, and return the figures."""
    origin = provenance()
    async with (
        cloud_process(db) as (url, token),
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
    ):

        async def call(method: str, path: str, body: Any = None) -> Any:
            async with session.request(method, url + path, json=body) as response:
                payload = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"{method} {path}: {response.status} {payload}")
                return payload

        started = time.perf_counter()
        for index in range(apps):
            await call("POST", "/v1/apps", app_spec(f"app-{index:03d}", app_selector(index)))
        semaphore = asyncio.Semaphore(8)

        async def add_node(index: int) -> None:
            async with semaphore:
                await call(
                    "POST", "/v1/nodes", {"name": f"node-{index:05d}", "labels": node_labels(index)}
                )

        for start in range(0, nodes, 1000):
            await asyncio.gather(*(add_node(i) for i in range(start, min(nodes, start + 1000))))
            print(
                f"  seeded {min(nodes, start + 1000)}/{nodes} nodes "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
        seed_seconds = time.perf_counter() - started

        rng = random.Random(1)
        pages = max(1, nodes // 50)
        list_times = [
            await timed(
                lambda: call("GET", f"/v1/nodes?pageSize=50&pageNo={rng.randrange(pages) + 1}")
            )
            for _ in range(rounds * 20)
        ]
        fleet_app_times = []
        for attempt in range(rounds):
            name = f"fleet-{attempt}"
            fleet_app_times.append(
                await timed(
                    lambda name=name: call("POST", "/v1/apps", app_spec(name, "fleet=main"))
                )
            )
        label_times = []
        for _ in range(rounds * 10):
            index = rng.randrange(nodes)
            labels = node_labels(index) | {"zone": f"z{rng.randrange(ZONES)}"}
            body = {"name": f"node-{index:05d}", "labels": labels}
            label_times.append(
                await timed(lambda body=body: call("PUT", f"/v1/nodes/{body['name']}", body))
            )
        return {
            "provenance": origin,
            "db": db,
            "nodes": nodes,
            "apps": apps,
            "seed_s": seed_seconds,
            "list": list_times,
            "fleet_app": fleet_app_times,
            "label": label_times,
        }


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """p50 and p99 in ms of each operation, for the report."""
    return {
        key: {
            "count": len(result[key]),
            "p50": statistics.median(result[key]) * 1000,
            "p99": percentile(result[key], 0.99) * 1000,
        }
        for key in ("list", "fleet_app", "label")
    }


def report(result: dict[str, Any]) -> None:
    """Print one result as a Markdown table row block."""
    print(
        f"\n{result['db']}: {result['nodes']} nodes, {result['apps']} apps "
        f"(seeded through the API in {result['seed_s']:.0f} s)"
    )
    print("| operation | n | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for key, label in (
        ("list", "GET /v1/nodes?pageSize=50"),
        ("fleet_app", f"POST /v1/apps matching all {result['nodes']} nodes"),
        ("label", "PUT /v1/nodes/{name} (label change)"),
    ):
        samples = result[key]
        print(
            f"| {label} | {len(samples)} | {statistics.median(samples) * 1000:.1f} | "
            f"{percentile(samples, 0.99) * 1000:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument(
        "--rounds", type=int, default=5, help="fleet-app creations (lists x20, labels x10)"
    )
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="write the results as JSON")
    args = parser.parse_args()
    if min(args.nodes, args.apps, args.rounds) < 1:
        parser.error("--nodes, --apps and --rounds must be at least 1")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    result = asyncio.run(run(args.db, args.nodes, args.apps, args.rounds))
    result["summary_ms"] = summary(result)
    report(result)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
