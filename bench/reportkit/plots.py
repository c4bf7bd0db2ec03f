"""The report's PNG figures, drawn with matplotlib from the results the bench scripts wrote.

One function per figure; each takes the result dicts as the scripts wrote them and a path, and
returns nothing. Latencies are drawn as CDFs on a log axis: the interesting part of a latency
distribution is its tail, and the polling model sits two to three decades right of push.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: never a display, also on a server without one

import matplotlib.pyplot as plt
from matplotlib import ticker

Json = dict[str, Any]
DPI = 110
PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def _cdf(axis: Any, samples_ms: Sequence[float], label: str, colour: str) -> None:
    """A step CDF of raw samples."""
    ordered = sorted(samples_ms)
    count = len(ordered)
    fractions = [(index + 1) / count for index in range(count)]
    axis.step(ordered, fractions, where="post", label=f"{label} (n={count})", color=colour)


def _percentile_cdf(
    axis: Any, points_ms: Sequence[float], label: str, colour: str, style: str = "-"
) -> None:
    """A CDF from 101 percentile points (p0 … p100), as the fleet bench stores them."""
    fractions = [step / (len(points_ms) - 1) for step in range(len(points_ms))]
    axis.plot(points_ms, fractions, style, label=label, color=colour)


def _latency_axis(axis: Any, title: str) -> None:
    axis.set_xscale("log")
    # Plain numbers (5, 10, 200, 3000) read faster than powers of ten.
    axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.xaxis.set_minor_formatter(ticker.NullFormatter())
    axis.set_xlabel("latency, ms (log scale)")
    axis.set_ylabel("fraction of samples")
    axis.set_ylim(0, 1.02)
    axis.set_title(title, fontsize="medium")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize="small", loc="lower right")


def _save(figure: Any, path: Path, caption: str) -> None:
    figure.suptitle(caption, fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def rest_latency(results: Sequence[Json], path: Path, caption: str) -> None:
    """cloud_rest: one CDF panel per operation, one line per database."""
    operations = (
        ("list", "GET /v1/nodes?pageSize=50"),
        ("label", "PUT /v1/nodes/{name} (label change)"),
        ("fleet_app", "POST /v1/apps matching every node"),
    )
    figure, axes = plt.subplots(1, len(operations), figsize=(15, 4.4))
    for axis, (key, title) in zip(axes, operations, strict=True):
        for index, result in enumerate(results):
            samples = [seconds * 1000 for seconds in result[key]]
            _cdf(axis, samples, f"{result['db']}, {result['nodes']} nodes", PALETTE[index])
        if key == "list":
            axis.axvline(50, color="grey", linestyle=":", label="p99 target 50 ms")
        if key == "fleet_app":
            axis.axvline(3000, color="grey", linestyle=":", label="target 3 s")
        _latency_axis(axis, title)
    _save(figure, path, caption)


def fleet_ingest(results: Json, path: Path, caption: str) -> None:
    """fleet: report → accepted CDFs per phase, and the accepted rate of each phase."""
    figure, (latency, rates) = plt.subplots(1, 2, figsize=(13, 4.4))
    styles = ("-", "--", ":", "-.")
    for number, run in enumerate(results["runs"]):
        phases = [(f"{item['nodes']} nodes", item) for item in run["ingest"]]
        if run.get("saturation"):
            phases.append(("saturated", run["saturation"]))
        for index, (name, item) in enumerate(phases):
            points = item["latency_ms"].get("percentiles")
            if points:
                # Colour: the phase; line style: the replica count.
                label = f"{name}, {run['replicas']}r"
                colour, style = PALETTE[index % len(PALETTE)], styles[number % len(styles)]
                _percentile_cdf(latency, points, label, colour, style)
    latency.axvline(500, color="grey", linestyle=":", label="p99 target 500 ms")
    _latency_axis(latency, "report → update/accepted")

    labels: list[str] = []
    values: list[float] = []
    colours: list[str] = []
    for run in results["runs"]:
        shade = PALETTE[(run["replicas"] - 1) % len(PALETTE)]
        for item in run["ingest"]:
            labels.append(f"{item['nodes']}\n@{item['interval_s']:g}s\n{run['replicas']}r")
            values.append(item["achieved_per_s"])
            colours.append(shade)
        if run.get("saturation"):
            labels.append(f"saturated\n{run['replicas']}r")
            values.append(run["saturation"]["achieved_per_s"])
            colours.append(shade)
    positions = list(range(len(values)))
    bars = rates.bar(positions, values, color=colours)
    rates.bar_label(bars, fmt="%.0f", fontsize="small")
    rates.set_xticks(positions, labels, fontsize="small")
    rates.set_ylabel("reports accepted per second")
    rates.set_title("ingest rate per phase (colour: replica count)", fontsize="medium")
    rates.grid(True, axis="y", alpha=0.3)
    _save(figure, path, caption)


def fleet_delta(results: Json, path: Path, caption: str) -> None:
    """fleet: REST change → delta at every matched node, one CDF per replica count."""
    figure, axis = plt.subplots(1, 1, figsize=(7.5, 4.4))
    for index, run in enumerate(results["runs"]):
        delta = run.get("delta") or {}
        points = delta.get("latency_ms", {}).get("percentiles")
        if points:
            label = f"{run['replicas']} replica(s), {delta['nodes']} nodes"
            _percentile_cdf(axis, points, label, PALETTE[index])
    axis.axvline(2000, color="grey", linestyle=":", label="p99 target 2 s")
    _latency_axis(axis, "POST/PUT/DELETE /v1/apps → shadow/update/delta at each node")
    _save(figure, path, caption)


def deploy_latency(push_vs_poll: Json | None, agent: Json | None, path: Path, caption: str) -> None:
    """Desired → running: push against polling (CDF), and deploy time by app count."""
    panels = int(push_vs_poll is not None) + int(agent is not None)
    figure, axes = plt.subplots(1, max(panels, 1), figsize=(6.8 * max(panels, 1), 4.4))
    axes = list(axes) if panels > 1 else [axes]
    if push_vs_poll is not None:
        axis = axes.pop(0)
        for index, model in enumerate(push_vs_poll["models"]):
            samples = [sample["running_ms"] for sample in model["samples"]]
            _cdf(axis, samples, f"{model['model']}", PALETTE[index])
        axis.axvline(300, color="grey", linestyle=":", label="p50 target 300 ms")
        axis.axvline(1000, color="black", linestyle=":", label="p99 target 1 s")
        _latency_axis(axis, "POST /v1/apps → process running on the node")
    if agent is not None:
        axis = axes.pop(0)
        sizes = [str(item["apps"]) for item in agent["latency"]]
        p50 = [item["from_put_ms"]["p50"] for item in agent["latency"]]
        p90 = [item["from_put_ms"]["p90"] for item in agent["latency"]]
        positions = list(range(len(sizes)))
        width = 0.38
        low = axis.bar([p - width / 2 for p in positions], p50, width, label="p50")
        high = axis.bar([p + width / 2 for p in positions], p90, width, label="p90")
        axis.bar_label(low, fmt="%.0f", fontsize="small")
        axis.bar_label(high, fmt="%.0f", fontsize="small")
        axis.set_xticks(positions, [f"{size} app(s)" for size in sizes])
        axis.set_ylabel("ms")
        axis.set_title("one desired change with N apps → all running", fontsize="medium")
        axis.grid(True, axis="y", alpha=0.3)
        axis.legend(fontsize="small")
    _save(figure, path, caption)


def agent_rss(agent: Json, path: Path, caption: str, target_mb: float) -> None:
    """The agent's RSS in each idle state, and what each import adds in a fresh interpreter."""
    figure, (states, imports) = plt.subplots(1, 2, figsize=(14, 4.6))
    memory = agent["memory"]
    names = list(memory)
    rss = [memory[name]["rss_mb"] for name in names]
    uss = [memory[name]["uss_mb"] or 0.0 for name in names]
    positions = list(range(len(names)))
    width = 0.38
    bars = states.bar([p - width / 2 for p in positions], rss, width, label="RSS")
    states.bar_label(bars, fmt="%.1f", fontsize="small")
    bars = states.bar([p + width / 2 for p in positions], uss, width, label="USS")
    states.bar_label(bars, fmt="%.1f", fontsize="small")
    states.axhline(target_mb, color="grey", linestyle=":", label=f"target {target_mb:g} MB")
    states.set_xticks(positions, [name.replace("_", " ") for name in names], fontsize="small")
    states.set_ylabel("MB")
    states.set_title("baetyl-core idle (its apps not counted)", fontsize="medium")
    states.grid(True, axis="y", alpha=0.3)
    states.legend(fontsize="small")

    steps = agent["imports"]
    labels = ["interpreter", "libraries"] + [step["module"] for step in steps["steps"]]
    added = [steps["python_mb"], steps["libraries_mb"] - steps["python_mb"]]
    added += [step["added_mb"] for step in steps["steps"]]
    bottom = 0.0
    colours = [plt.get_cmap("tab20")(index / 20) for index in range(20)]
    for index, (label, value) in enumerate(zip(labels, added, strict=True)):
        colour = colours[index % len(colours)]
        imports.barh(0, value, left=bottom, color=colour, label=f"{label} +{value:.1f}")
        bottom += value
    imports.axvline(target_mb, color="grey", linestyle=":")
    imports.set_yticks([])
    imports.set_xlabel("RSS MB of a fresh interpreter importing these in turn")
    imports.set_title("where the memory goes", fontsize="medium")
    imports.legend(fontsize="x-small", ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    _save(figure, path, caption)


def kube_latency(result: Json, path: Path, caption: str) -> None:
    """Median (bar) and p90 (tick) of PUT → applied and PUT → ready, by apps per change."""
    figure, axis = plt.subplots(figsize=(8, 4.2))
    sizes = result["latency"]
    positions = list(range(len(sizes)))
    width = 0.38
    for offset, key, label, colour in (
        (-width / 2, "applied_ms", "objects applied", PALETTE[0]),
        (width / 2, "ready_ms", "pods ready", PALETTE[1]),
    ):
        medians = [size[key]["p50"] for size in sizes]
        bars = axis.bar([p + offset for p in positions], medians, width, label=label, color=colour)
        axis.bar_label(bars, fmt="%.0f", fontsize="small")
        axis.scatter(
            [p + offset for p in positions],
            [size[key]["p90"] for size in sizes],
            marker="_",
            s=300,
            color="black",
        )
    axis.set_xticks(positions, [f"{size['apps']} app(s)" for size in sizes])
    axis.set_yscale("log")  # 25 ms and 30 s on one axis
    axis.set_ylabel("ms after the PUT (bar: median, tick: p90; log)")
    axis.set_title("a desired change on a kube node", fontsize="medium")
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend(fontsize="small")
    _save(figure, path, caption)


def function_proxy(result: Json, path: Path, caption: str) -> None:
    """Requests per second, direct and proxied, for each instance count and caller count."""
    figure, (rate, latency) = plt.subplots(1, 2, figsize=(10, 4.2))
    groups = sorted({(c["instances"], c["clients"]) for c in result["cases"]})
    positions = list(range(len(groups)))
    width = 0.38
    for offset, path_name, colour in (
        (-width / 2, "direct", PALETTE[0]),
        (width / 2, "proxy", PALETTE[1]),
    ):
        by_group = {
            (c["instances"], c["clients"]): c for c in result["cases"] if c["path"] == path_name
        }
        xs = [p + offset for p in positions]
        bars = rate.bar(
            xs, [by_group[g]["rps"] for g in groups], width, label=path_name, color=colour
        )
        rate.bar_label(bars, fmt="%.0f", fontsize="small")
        latency.bar(
            xs, [by_group[g]["p50_ms"] for g in groups], width, label=path_name, color=colour
        )
        latency.scatter(
            xs, [by_group[g]["p99_ms"] for g in groups], marker="_", s=300, color="black"
        )
    labels = [f"{i} inst., {c} caller{'s' if c > 1 else ''}" for i, c in groups]
    for axis in (rate, latency):
        axis.set_xticks(positions, labels, fontsize="small")
        axis.grid(True, axis="y", alpha=0.3)
        axis.legend(fontsize="small")
    rate.set_ylabel("requests per second")
    rate.set_title("throughput", fontsize="medium")
    latency.set_ylabel("ms (bar: median, tick: p99)")
    latency.set_title("latency", fontsize="medium")
    _save(figure, path, caption)
