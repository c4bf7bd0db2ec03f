"""Turning a fleet run's results into target checks and Markdown tables (plots: reportkit)."""

from __future__ import annotations

from typing import Any

from reportkit import sections

Result = dict[str, Any]

INGEST_P99_MS = 500.0
DELTA_P99_MS = 500.0  # issue 13; it was 2 s before the delta path was reworked
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
    """Tables of ingest, saturation and delta figures, then the target checks (stdout)."""
    return "\n".join(
        [
            *sections.fleet_ingest_table(results),
            "",
            *sections.fleet_delta_table(results),
            "",
            *sections.checks_table(results["checks"]),
        ]
    )
