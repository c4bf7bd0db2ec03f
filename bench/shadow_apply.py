"""Benchmark of agent.contracts.shadow: the cost of one report merged into a realistic shadow.

Every report a node sends goes through `apply_update` in the cloud, so its cost bounds how many
reports one cloud replica can absorb.
Run: `.venv/bin/python bench/shadow_apply.py [--rounds N] [--out F.json]`.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance import provenance  # noqa: E402

from agent.contracts import shadow  # noqa: E402


def realistic_reported(apps: int) -> dict[str, Any]:
    """A reported section shaped like a busy node's: app stats, node info and node stats."""
    return {
        "apps": {f"app-{i}": f"v{i}" for i in range(apps)},
        "appstats": {
            f"app-{i}": {
                "name": f"app-{i}",
                "version": f"v{i}",
                "status": "Running",
                "instances": {
                    f"app-{i}-web-0": {
                        "name": f"app-{i}-web-0",
                        "status": "Running",
                        "pid": 1000 + i,
                        "restarts": 0,
                        "usage": {"cpu": "12m", "memory": "31Mi"},
                    }
                },
            }
            for i in range(apps)
        },
        "node": {"edge-1": {"hostname": "edge-1", "arch": "arm64", "os": "linux"}},
        "nodestats": {"edge-1": {"ready": True, "usage": {"cpu": "250m", "memory": "512Mi"}}},
    }


def time_it(fn: Any, rounds: int) -> float:
    """Median seconds of `rounds` calls."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=500, help="timed calls per case (default 500)"
    )
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="write the results as JSON")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    origin = provenance()
    rows = []
    print(f"{'apps':>5} {'section bytes':>14} {'full report µs':>15} {'1-app patch µs':>15}")
    for apps in (1, 10, 50, 100):
        reported = realistic_reported(apps)
        doc = shadow.apply_update(
            shadow.new_document(0.0), "reported", reported, version=None, now=1.0
        )
        doc = shadow.apply_update(
            doc, "desired", {"apps": dict(reported["apps"])}, version=None, now=1.0
        )
        size = len(json.dumps(doc["state"]["reported"], separators=(",", ":")))
        patch = {"appstats": {"app-0": {"status": "Failed", "cause": "exit 1"}}}
        update = functools.partial(shadow.apply_update, doc, "reported", version=None, now=2.0)
        full = time_it(functools.partial(update, reported), args.rounds)
        small = time_it(functools.partial(update, patch), args.rounds)
        print(f"{apps:>5} {size:>14} {full * 1e6:>15.1f} {small * 1e6:>15.1f}")
        rows.append({"apps": apps, "bytes": size, "full_us": full * 1e6, "patch_us": small * 1e6})
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result = {"provenance": origin, "rounds": args.rounds, "rows": rows}
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
