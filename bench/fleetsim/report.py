"""Turning a fleet run's results into target checks and Markdown tables (plots: reportkit)."""

from __future__ import annotations

from typing import Any

from reportkit import sections

Result = dict[str, Any]

INGEST_P99_MS = 500.0
DELTA_P99_MS = 2000.0
SCALE_RATIO = 1.6
HELD_FRACTION = 0.98
"""A fleet is held when this share of the offered reports is answered in the window."""


def checks(results: Result) -> list[Result]:
    """Each target of issue 4 with the measured figure and whether it was met."""
    found: list[Result] = []
    for run in results["runs"]:
        largest = run["ingest"][-1]
        sent = largest["sent"] + largest["skipped"]
        held = sent > 0 and largest["accepted"] >= HELD_FRACTION * sent
        p99 = largest["latency_ms"].get("p99", float("inf"))
        found.append(
            {
                "target": f"{largest['nodes']} nodes at {largest['interval_s']:g} s held, "
                f"ingest p99 < {INGEST_P99_MS:g} ms ({run['replicas']} replica(s))",
                "measured": f"{largest['achieved_per_s']}/{largest['offered_per_s']} reports/s, "
                f"p99 {p99} ms",
                "met": held and p99 < INGEST_P99_MS,
            }
        )
        delta = run.get("delta")
        if delta is not None:
            p99 = delta["latency_ms"].get("p99", float("inf"))
            found.append(
                {
                    "target": f"REST → delta at all {delta['nodes']} nodes, p99 < "
                    f"{DELTA_P99_MS:g} ms ({run['replicas']} replica(s))",
                    "measured": f"p99 {p99} ms, {delta['missing']} missing",
                    "met": delta["missing"] == 0 and p99 < DELTA_P99_MS,
                }
            )
    ratio = scale_ratio(results)
    if ratio is not None:
        found.append(
            {
                "target": f"2 replicas ≥ {SCALE_RATIO}x the saturated ingest rate of 1",
                "measured": f"{ratio:.2f}x",
                "met": ratio >= SCALE_RATIO,
            }
        )
    return found


def scale_ratio(results: Result) -> float | None:
    """Saturated reports/s with two replicas over one, when both were measured."""
    rates = {
        run["replicas"]: run["saturation"]["achieved_per_s"]
        for run in results["runs"]
        if run.get("saturation")
    }
    if 1 in rates and 2 in rates and rates[1] > 0:
        return float(rates[2]) / float(rates[1])
    return None


def markdown(results: Result) -> str:
    """Tables of ingest, saturation and delta figures, then the target checks."""
    lines = [
        "| replicas | phase | nodes | offered /s | achieved /s | p50 ms | p99 ms | lost | "
        "rejected | skipped | CPU cores: cloud / broker / PG / sim / other / machine |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in results["runs"]:
        phases = [("ingest", item) for item in run["ingest"]]
        if run.get("saturation"):
            phases.append(("saturation", run["saturation"]))
        for name, item in phases:
            latency = item["latency_ms"]
            lines.append(
                f"| {run['replicas']} | {name} | {item['nodes']} | "
                f"{item.get('offered_per_s', '—')} | {item['achieved_per_s']} | "
                f"{latency.get('p50', '—')} | {latency.get('p99', '—')} | {item['lost']} | "
                f"{sum(item['rejected'].values())} | {item['skipped']} | "
                f"{cpu_split(item['cpu_cores'])} |"
            )
    lines += [
        "",
        "| replicas | REST → delta | nodes | delivered | p50 ms | p99 ms | max ms | REST call ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in results["runs"]:
        delta = run.get("delta")
        if delta is None:
            continue
        for item in delta["rounds"]:
            lines.append(
                f"| {run['replicas']} | {item['op']} via {item['replica']} | {delta['nodes']} | "
                f"{item['delivered']} | {item['p50_ms']} | {item['p99_ms']} | {item['max_ms']} | "
                f"{item['rest_ms']} |"
            )
        overall = delta["latency_ms"]
        lines.append(
            f"| {run['replicas']} | **all rounds** | {delta['nodes']} | "
            f"{overall.get('count', 0)} | {overall.get('p50')} | {overall.get('p99')} | "
            f"{overall.get('max')} | |"
        )
    lines += ["", *sections.checks_table(results["checks"])]
    return "\n".join(lines)


def cpu_split(usage: dict[str, float]) -> str:
    """`cloud / broker / postgres / simulator / other / machine` cores, clouds added up."""
    cloud = sum(value for group, value in usage.items() if group.startswith("cloud"))
    return " / ".join(
        f"{value:.2f}"
        for value in (
            cloud,
            usage.get("broker", 0.0),
            usage.get("postgres", 0.0),
            usage.get("simulator", 0.0) + usage.get("controller", 0.0),
            usage.get("other", 0.0),
            usage.get("machine", 0.0),
        )
    )
