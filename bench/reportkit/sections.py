"""The Markdown of docs/benchmarks.md, one function per benchmark, from its results file.

The prose here describes what each benchmark does and how to read it; every figure in the text
comes from the results, so the document stays true when `make bench` runs again on another
machine. Engineering history (what was changed to reach a figure) lives in
docs/performance-notes.md, which is written by hand and not regenerated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Json = dict[str, Any]

LIST_P99_MS = 50.0
FLEET_APP_MS = 3000.0
AGENT_RSS_MB = 50.0


def provenance_note(result: Json) -> str:
    """The command, the machine and the time of one result, under its table or figure."""
    origin = result.get("provenance") or {}
    machine = origin.get("machine") or {}
    load = origin.get("load_average") or []
    load_text = f"; load average {load[0]:.2f} at the start" if load else ""
    return (
        f"*Command:* `{origin.get('command', '?')}` · *measured* {origin.get('date', '?')} "
        f"on {machine.get('summary', 'an unknown machine')}{load_text} · *commit* "
        f"`{origin.get('revision', '?')}`"
    )


def _met(met: bool) -> str:
    return "yes" if met else "**no**"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}".replace(",", " ") if value >= 100 else f"{value:.1f}"


def checks_table(checks: Sequence[Json]) -> list[str]:
    """A `target | measured | met` table of a benchmark's checks, as lines."""
    lines = ["| target | measured | met |", "|---|---|---|"]
    lines += [f"| {c['target']} | {c['measured']} | {_met(c['met'])} |" for c in checks]
    return lines


def figure(path: str, alt: str) -> str:
    """A Markdown image line."""
    return f"![{alt}]({path})"


# -- targets ---------------------------------------------------------------------------------


def rest_checks(rest: Sequence[Json]) -> list[Json]:
    """The REST API targets (issue 3) from the cloud_rest results."""
    rows = []
    for result in rest:
        summary = result["summary_ms"]
        rows.append(
            {
                "target": f"`GET /v1/nodes?pageSize=50` p99 < {LIST_P99_MS:g} ms "
                f"({result['db']}, {result['nodes']} nodes)",
                "measured": f"{summary['list']['p99']:.1f} ms",
                "met": summary["list"]["p99"] < LIST_P99_MS,
            }
        )
        rows.append(
            {
                "target": f"`POST /v1/apps` matching all {result['nodes']} nodes < "
                f"{FLEET_APP_MS / 1000:g} s ({result['db']})",
                "measured": f"p99 {summary['fleet_app']['p99']:.0f} ms",
                "met": summary["fleet_app"]["p99"] < FLEET_APP_MS,
            }
        )
    return rows


def targets(results: dict[str, Any]) -> str:
    """Every target the benchmarks check, in one table, with where it is measured."""
    rows: list[tuple[str, Json]] = []
    if results.get("push_vs_poll"):
        rows += [("push_vs_poll", check) for check in results["push_vs_poll"]["checks"]]
    rows += [("cloud_rest", check) for check in rest_checks(results.get("cloud_rest", []))]
    if results.get("fleet"):
        rows += [("fleet", check) for check in results["fleet"]["checks"]]
    if results.get("agent"):
        rows += [("agent", check) for check in results["agent"]["checks"]]
    if results.get("node_venv"):
        rows += [("node_venv", check) for check in results["node_venv"]["checks"]]
    if results.get("kube"):
        rows += [("kube", check) for check in results["kube"]["checks"]]
    if results.get("function_proxy"):
        rows += [("function_proxy", check) for check in results["function_proxy"]["checks"]]
    if results.get("agent_upgrade"):
        rows += [("agent_upgrade", check) for check in results["agent_upgrade"]["checks"]]
    lines = ["| benchmark | target | measured | met |", "|---|---|---|---|"]
    lines += [
        f"| `bench/{name}.py` | {check['target']} | {check['measured']} | {_met(check['met'])} |"
        for name, check in rows
    ]
    return "\n".join(lines)


def machines(results: dict[str, Any]) -> str:
    """Which run each section comes from: date, commit, machine."""
    lines = ["| results file | measured | commit | machine |", "|---|---|---|---|"]
    for name, result in _each(results):
        origin = result.get("provenance") or {}
        lines.append(
            f"| `{name}` | {origin.get('date', '?')} | `{origin.get('revision', '?')}` | "
            f"{(origin.get('machine') or {}).get('summary', '?')} |"
        )
    return "\n".join(lines)


def _each(results: dict[str, Any]) -> list[tuple[str, Json]]:
    found: list[tuple[str, Json]] = []
    for key, value in results.items():
        if isinstance(value, list):
            found += [(f"{key}-{item['db']}.json", item) for item in value]
        elif value:
            found.append((f"{key}.json", value))
    return found


# -- push against polling --------------------------------------------------------------------


def models_table(result: Json) -> list[str]:
    """push_vs_poll: one row per model, REST create → running percentiles."""
    lines = [
        "| model | samples | REST call p50 ms | change seen by the agent p50 ms | "
        "running p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in result["models"]:
        running = model["running_ms"]
        lines.append(
            f"| {model['model']} | {running['count']} | {_ms(model['rest_ms']['p50'])} | "
            f"{_ms(model['adopted_ms']['p50'])} | **{_ms(running['p50'])}** | "
            f"{_ms(running['p90'])} | {_ms(running['p99'])} | {_ms(running['max'])} |"
        )
    return lines


def push_vs_poll(result: Json, image: str, agent: Json | None = None) -> str:
    """REST app create → process running, push model against Baetyl's polling timing.

    The figure's second panel, when `agent` results are given, is their deploy time by app
    count; its command is named under the figure too.
    """
    plan = result["plan"]
    expected = result["expected_poll_ms"]
    by_model = {model["model"]: model for model in result["models"]}
    lines = [
        "## Desired → running: push against polling (`bench/push_vs_poll.py`)",
        "",
        "The path a user waits on: `POST /v1/apps` with a selector that matches a node, until the "
        "app's process runs on that node. One real `baetyl-cloud serve` (SQLite, its managed "
        "Mosquitto) and one real `baetyl-core` per model, run one after the other on the same "
        "machine; the apps are native `sleep infinity` processes. A sample is timed from just "
        "before the request to the agent's `instance started` log line for that app, and the "
        "process is then looked up in the process table. Requests arrive at random gaps, so "
        "they fall at random phases of the polling cycle.",
        "",
        "- **push** (ours, the defaults): the cloud publishes a `shadow/update/delta` as soon "
        "as the request's transaction commits; the agent reads its shadow at once and its "
        "engine reconciles at once.",
        f"- **poll** (Baetyl v2's timing, our agent configured that way): `sync.mode: poll`, "
        f"`sync.report_interval: {plan['report_interval']:g}`, `engine.mode: tick`, "
        f"`engine.interval: {plan['engine_interval']:g}` — the agent ignores deltas, learns "
        "of a change only when it reads its shadow after a periodic report, and applies it "
        "only on its engine tick. Both timers start with the agent, as Baetyl's tickers do, "
        "and the engine's drifts only by its reconcile time per tick, so in a run of minutes "
        "its tick lands just after each poll: a change then waits for the next poll alone, "
        f"mean {expected['aligned_mean'] / 1000:g} s, at most "
        f"{expected['aligned_max'] / 1000:g} s — polling's best case, measured here. With the "
        "timers' phases apart (an agent up for hours) the mean is "
        f"{expected['independent_mean'] / 1000:g} s and the worst case "
        f"{expected['worst'] / 1000:g} s.",
        "",
        *models_table(result),
    ]
    lines += ["", *checks_table(result["checks"])]
    if "push" in by_model and "poll" in by_model:
        push, poll = by_model["push"]["running_ms"], by_model["poll"]["running_ms"]
        lines += [
            "",
            f"At the median the pushed change runs in {_ms(push['p50'])} ms against "
            f"{poll['p50'] / 1000:.1f} s polled ({poll['p50'] / max(push['p50'], 0.001):.0f} times "
            f"sooner); the slowest pushed sample took {_ms(push['max'])} ms, the slowest "
            f"polled one {poll['max'] / 1000:.1f} s. Polling costs its latency whatever the "
            "machine does; push costs one MQTT message per change, which the cloud sends "
            "anyway.",
        ]
    lines += ["", figure(image, "CDF of REST create → running, push vs poll"), ""]
    if agent is None:
        lines.append(provenance_note(result))
    else:
        lines += [
            "Left panel: " + provenance_note(result) + "  ",
            "Right panel (one desired change carrying N apps, from the agent benchmark below): "
            + provenance_note(agent),
        ]
    return "\n".join(lines)


# -- REST ------------------------------------------------------------------------------------


def cloud_rest(results: Sequence[Json], image: str) -> str:
    """The REST API at fleet scale, one column pair per database."""
    first = results[0]
    lines = [
        "## Cloud REST API at fleet scale (`bench/cloud_rest.py`)",
        "",
        f"A real `baetyl-cloud serve --no-mqtt` process, seeded through the REST API with "
        f"{first['apps']} apps (four selector shapes) and {first['nodes']:,} labelled nodes, "
        "then measured over HTTP from one client: list requests on random pages, creations of "
        f"an app whose selector matches all {first['nodes']:,} nodes (one transaction: every "
        "matched shadow rewritten and versioned, one index row each), and label changes of "
        "random nodes (the node's apps are re-matched). PostgreSQL is the test harness's "
        "throwaway cluster (fsync off).",
        "",
    ]
    header = "| operation |"
    rule = "|---|"
    for result in results:
        header += f" {result['db']} n | p50 ms | p99 ms |"
        rule += "---:|---:|---:|"
    lines += [header, rule]
    for key, label in (
        ("list", "`GET /v1/nodes?pageSize=50`"),
        ("fleet_app", "`POST /v1/apps` matching every node"),
        ("label", "`PUT /v1/nodes/{name}` (label change)"),
    ):
        row = f"| {label} |"
        for result in results:
            figures = result["summary_ms"][key]
            row += f" {figures['count']} | {_ms(figures['p50'])} | {_ms(figures['p99'])} |"
        lines.append(row)
    seeds = ", ".join(f"{r['seed_s']:.0f} s on {r['db']}" for r in results)
    lines += [
        "",
        f"Seeding took {seeds}. Node lists with a selector filter labels in memory "
        "(decision #30) and are not part of this table.",
        "",
        *checks_table(rest_checks(results)),
    ]
    lines += ["", figure(image, "CDFs of REST latency per operation and database"), ""]
    lines += [provenance_note(result) + "  " for result in results]
    return "\n".join(lines).rstrip()


# -- fleet -----------------------------------------------------------------------------------


def _cpu(usage: dict[str, float]) -> str:
    cloud = sum(value for group, value in usage.items() if group.startswith("cloud"))
    parts = (
        cloud,
        usage.get("broker", 0.0),
        usage.get("postgres", 0.0),
        usage.get("simulator", 0.0) + usage.get("controller", 0.0),
        usage.get("other", 0.0),
        usage.get("machine", 0.0),
    )
    return " / ".join(f"{value:.2f}" for value in parts)


def fleet_ingest_table(result: Json) -> list[str]:
    """The ingest and saturation rows of every run, one per phase."""
    plan = result["plan"]
    lines = [
        "| replicas | phase | offered /s | accepted /s | p50 ms | p99 ms | lost / rejected | "
        "CPU cores |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for run in result["runs"]:
        phases = [
            (f"{item['nodes']:,} nodes every {item['interval_s']:g} s", item)
            for item in run["ingest"]
        ]
        if run.get("saturation"):
            phases.append((f"saturated ({plan.get('inflight', '?')} in flight)", run["saturation"]))
        for name, item in phases:
            latency = item["latency_ms"]
            lines.append(
                f"| {run['replicas']} | {name} | {item.get('offered_per_s', '—')} | "
                f"{item['achieved_per_s']} | {_ms(latency.get('p50'))} | "
                f"{_ms(latency.get('p99'))} | {item['lost']} / {sum(item['rejected'].values())} "
                f"| {_cpu(item['cpu_cores'])} |"
            )
    return lines


def fleet_delta_table(result: Json) -> list[str]:
    """The REST change → delta rows of every run, one per round and one for all of them."""
    lines = [
        "| replicas | change (REST call to) | REST call ms | p50 ms | p99 ms | max ms | "
        "delivered |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        delta = run.get("delta")
        if not delta:
            continue
        for item in delta["rounds"]:
            lines.append(
                f"| {run['replicas']} | {item['op']} ({item['replica']}) | "
                f"{_ms(item['rest_ms'])} | {_ms(item['p50_ms'])} | {_ms(item['p99_ms'])} | "
                f"{_ms(item['max_ms'])} | {item['delivered']}/{delta['nodes']} |"
            )
        overall = delta["latency_ms"]
        lines.append(
            f"| {run['replicas']} | **all rounds** | | **{_ms(overall.get('p50'))}** | "
            f"**{_ms(overall.get('p99'))}** | {_ms(overall.get('max'))} | "
            f"{overall.get('count', 0)}/{delta['nodes'] * len(delta['rounds'])} |"
        )
    return lines


def fleet(result: Json, ingest_image: str, delta_image: str) -> str:
    """Fleet ingest and REST change → delta, per replica count."""
    plan = result["plan"]
    lines = [
        "## Fleet: report ingest (`bench/fleet.py`)",
        "",
        "Thousands of simulated nodes against real cloud replicas on one machine: a throwaway "
        "PostgreSQL 15, one Mosquitto configured by the project's renderer (mutual TLS, the "
        "platform ACL) and `baetyl-cloud serve` replicas in one share group. Each simulated "
        "node is a real MQTT client over TLS with its own client certificate; it reads its "
        f"shadow, then reports every {plan['interval']:g} s with a random phase (its whole "
        "reported section first, then usage updates) and applies the apps a delta names. "
        "Latency is from the PUBLISH to the `update/accepted` with the same `clientToken`. "
        "Saturation: the periodic reports stop and a fixed number of reports are kept in "
        "flight over the whole fleet. CPU is in cores: cloud / broker / PostgreSQL / "
        "simulator / other / the whole machine.",
        "",
        *fleet_ingest_table(result),
    ]
    ratio = result.get("scale_ratio")
    if ratio is not None:
        lines += ["", f"Saturated rate with two replicas over one: **{ratio:.2f}x**."]
        cores = ((result.get("provenance") or {}).get("machine") or {}).get("nproc", 0)
        if ratio < 1.6 and cores <= 2:
            lines[-1] += (
                f" On this {cores}-core machine the replicas, PostgreSQL, the broker and the "
                "simulator share the same cores, so a second replica cannot add a core's worth "
                "of work: see [performance notes](performance-notes.md#fleet)."
            )
    lines += ["", *checks_table([c for c in result["checks"] if "delta" not in c["target"]])]
    lines += [
        "",
        figure(ingest_image, "Report latency CDFs and accepted rates per phase"),
        "",
        provenance_note(result),
        "",
        "## Fleet: REST change → delta (`bench/fleet.py`)",
        "",
        f"While the fleet reports, {plan['delta_rounds']} timed app changes (create, updates, "
        f"delete; round-robin over the replicas' REST APIs) on an app matching "
        f"{plan['delta_nodes']:,} nodes, each timed from sending the request to the first "
        "`shadow/update/delta` showing the change at every matched node.",
        "",
        *fleet_delta_table(result),
    ]
    lines += ["", *checks_table([c for c in result["checks"] if "delta" in c["target"]])]
    lines += [
        "",
        figure(delta_image, "CDF of REST change to delta at every matched node"),
        "",
        provenance_note(result),
    ]
    return "\n".join(lines)


# -- agent -----------------------------------------------------------------------------------


def agent(result: Json, image: str | None) -> str:
    """The agent's footprint and deploy latency; without `image`, as `bench/agent.py` prints it."""
    plan = result["plan"]
    memory, cpu, imports = result["memory"], result["cpu"], result["imports"]
    lines = [
        "## Agent footprint and deploy time (`bench/agent.py`)",
        "",
        "A real `baetyl-cloud serve` with its managed Mosquitto and a real `baetyl-core` with "
        "the default `core.yml` (local API on); apps are native `sleep infinity` processes. "
        "Memory and CPU are the agent process's own (psutil; its apps not counted). Deploy "
        "time: one `PUT /v1/nodes/{name}` adds the label N apps select, so one desired change "
        "carries all of them, until the agent's last `instance started` line (then the "
        "processes are checked); each round is undone by removing the label.",
        "",
        "| agent process | RSS MB | USS MB | PSS MB |",
        "|---|---:|---:|---:|",
    ]
    for name, figures in memory.items():
        uss = "—" if figures["uss_mb"] is None else f"{figures['uss_mb']:.1f}"
        pss = "—" if figures["pss_mb"] is None else f"{figures['pss_mb']:.1f}"
        lines.append(f"| {name.replace('_', ' ')} | {figures['rss_mb']:.1f} | {uss} | {pss} |")
    lines += [
        "",
        f"Idle CPU: {cpu['cpu_s']:.2f} s over {cpu['window_s']:.0f} s with {cpu['apps']} app "
        f"processes = **{cpu['percent_one_core']:.2f} %** of one core. A fresh interpreter "
        f"takes {imports['python_mb']:.1f} MB, importing {', '.join(imports['libraries'])} "
        f"{imports['libraries_mb']:.1f} MB, and every agent module on top "
        f"{imports['agent_modules_mb']:.1f} MB: the agent's RSS is almost all imports.",
        "",
        "| then importing | adds MB | RSS MB |",
        "|---|---:|---:|",
        *(f"| {s['module']} | {s['added_mb']:.1f} | {s['rss_mb']:.1f} |" for s in imports["steps"]),
        "",
        "| apps in one desired change | rounds | PUT → all running p50 / p90 ms | "
        "desired seen → all running p50 / p90 ms | removal p50 / p90 ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size in result["latency"]:
        put, desired, removal = size["from_put_ms"], size["from_desired_ms"], size["removal_ms"]
        lines.append(
            f"| {size['apps']} | {put['count']} | {_ms(put['p50'])} / {_ms(put['p90'])} | "
            f"{_ms(desired['p50'])} / {_ms(desired['p90'])} | "
            f"{_ms(removal['p50'])} / {_ms(removal['p90'])} |"
        )
    lines += [
        "",
        "From `-X importtime`: "
        + _imported("the agent", result["agent_imports"])
        + " "
        + _imported("With the local API off it", result["agent_imports_api_off"])
        + f" Plan: {plan['idle_apps']} idle apps, sizes "
        f"{', '.join(str(s) for s in plan['sizes'])}, {plan['rounds']} rounds.",
        "",
        *checks_table(result["checks"]),
    ]
    if image is not None:
        lines += [
            "",
            figure(image, "Agent RSS per idle state and import cost"),
            "",
            provenance_note(result),
        ]
    return "\n".join(lines)


def _imported(who: str, found: Json) -> str:
    """What one agent process imported, read from its `-X importtime` lines."""
    return (
        f"{who} imported {found['modules']} modules from {len(found['packages'])} top-level "
        f"packages; kubernetes_asyncio "
        f"{'**was**' if found['kubernetes_asyncio'] else 'was not'} imported, aiohttp "
        f"{'was' if found['aiohttp'] else 'was not'}, cryptography "
        f"{'was' if found['cryptography'] else 'was not'}."
    )


# -- shadow ----------------------------------------------------------------------------------


def shadow_apply(result: Json) -> str:
    """The CPU cost of merging one report into a shadow."""
    lines = [
        "## Shadow update cost (`bench/shadow_apply.py`)",
        "",
        "What one report costs the cloud in `agent.contracts.shadow.apply_update`, on a "
        "reported section shaped like a busy node's (apps, app stats, node info and stats). "
        '"Full report" merges the whole section again (as after an agent restart); "1-app '
        f"patch\" changes one app's status (the usual report). Medians of {result['rounds']} "
        "calls.",
        "",
        "| apps | section bytes | full report µs | 1-app patch µs |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {row['apps']} | {row['bytes']:,} | {row['full_us']:.1f} | {row['patch_us']:.1f} |"
        for row in result["rows"]
    ]
    lines += ["", provenance_note(result)]
    return "\n".join(lines)


# -- node virtualenv -------------------------------------------------------------------------


def node_venv(result: Json) -> str:
    """A node's virtualenv: its size without extras (native) and with every extra."""
    variants = result["variants"]
    native = variants[0]
    lines = [
        "## A node's virtualenv (`bench/node_venv.py`)",
        "",
        "What a node installs: the wheel the cloud serves, into a fresh virtualenv, as the "
        "install script does (`python -m venv DIR`, then `DIR/bin/python -m pip install --quiet "
        f"--disable-pip-version-check {result['wheel']}`), measured as `du -sm DIR` counts "
        "(disk blocks in MiB; the interpreter is a link to the system's and not counted). A "
        "native node gets the wheel without extras: the edge and its own dependencies "
        "(decision #100). With the `cloud` and `kube` extras a venv gets what every node "
        "installed before that split: the cloud's ORM, web server and metrics and the "
        "Kubernetes client.",
        "",
        "| installation | `pip install` | venv MB | pip + setuptools MB | distributions | "
        "install s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for variant in variants:
        extras = f"[{','.join(variant['extras'])}]" if variant["extras"] else ""
        lines.append(
            f"| {variant['name']} | `{result['wheel']}{extras}` | **{variant['total_mb']:.1f}** | "
            f"{variant['installer_mb']:.1f} | {len(variant['distributions'])} | "
            f"{variant['install_s']:.0f} |"
        )
    sizes = [{d["name"]: d["mb"] for d in variant["distributions"]} for variant in variants]
    big = sorted(
        {name for found in sizes for name, mb in found.items() if mb >= 1.0},
        key=lambda name: (-max(found.get(name, 0.0) for found in sizes), name),
    )
    lines += [
        "",
        "| distribution | " + " | ".join(f"{v['name']} MB" for v in variants) + " |",
        "|---|" + "---:|" * len(variants),
    ]
    for name in big:
        cells = " | ".join(f"{found[name]:.1f}" if name in found else "—" for found in sizes)
        lines.append(f"| {name} | {cells} |")
    small = [sum(mb for name, mb in found.items() if name not in big) for found in sizes]
    lines.append(
        "| the others (under 1 MB each) | " + " | ".join(f"{mb:.1f}" for mb in small) + " |"
    )
    rest = native["total_mb"] - native["installer_mb"]
    lines += [
        "",
        f"pip and setuptools, which `python -m venv` puts into every virtualenv of Python "
        f"{result['python']}, are {native['installer_mb']:.1f} MB of the native node's "
        f"{native['total_mb']:.1f} MB; the edge and its dependencies are the other "
        f"{rest:.1f} MB. pip stays: the install script, its second runs and agent upgrades "
        "(`PREFIX/venv/bin/pip install --upgrade`) install with it.",
    ]
    if len(variants) > 1:
        whole = variants[-1]["total_mb"]
        lines[-1] += (
            f" The native node's venv is {native['total_mb'] / whole * 100:.0f} % of the "
            f"{whole:.1f} MB every node installed before."
        )
    lines += ["", *checks_table(result["checks"]), "", provenance_note(result)]
    return "\n".join(lines)


def kube(result: Json, image: str | None) -> str:
    """The Kubernetes backend's apply and ready times and the agent's cost in kube mode."""
    idle, cpu = result["idle"], result["idle"]["cpu"]
    lines = [
        "## Kubernetes backend (`bench/kube.py`)",
        "",
        "A real `baetyl-cloud serve` with its Mosquitto, a real `baetyl-core` with "
        "`engine.backend: kube`, and the local Kubernetes of tools/kube "
        f"({result['kubernetes']}: control plane on 127.0.0.1, one real node with containerd). "
        "Apps are busybox containers. One `PUT /v1/nodes/{name}` adds the label N apps select "
        "(one desired change); *applied* is the agent's last `applied an app` (every object "
        "accepted by the API server), *ready* is every Deployment reporting its pod available "
        "(asked every 50 ms), *removed* is the label taken away until no Deployment is left.",
        "",
        "| apps in one desired change | rounds | PUT → applied p50 / p90 ms | "
        "PUT → pods ready p50 / p90 ms | removal p50 / p90 ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size in result["latency"]:
        applied, ready, removal = size["applied_ms"], size["ready_ms"], size["removal_ms"]
        lines.append(
            f"| {size['apps']} | {applied['count']} | {_ms(applied['p50'])} / "
            f"{_ms(applied['p90'])} | {_ms(ready['p50'])} / {_ms(ready['p90'])} | "
            f"{_ms(removal['p50'])} / {_ms(removal['p90'])} |"
        )
    lines += [
        "",
        "| agent process (kube mode) | RSS MB | USS MB | PSS MB |",
        "|---|---:|---:|---:|",
    ]
    for name, label in (("idle_0", "idle, 0 apps"), ("idle_n", f"idle, {idle['apps']} apps")):
        figures = idle[name]
        uss = "—" if figures["uss_mb"] is None else f"{figures['uss_mb']:.1f}"
        pss = "—" if figures["pss_mb"] is None else f"{figures['pss_mb']:.1f}"
        lines.append(f"| {label} | {figures['rss_mb']:.1f} | {uss} | {pss} |")
    lines += [
        "",
        f"Idle CPU with {idle['apps']} apps: {cpu['cpu_s']:.2f} s over {cpu['window_s']:.0f} s "
        f"= **{cpu['percent_one_core']:.2f} %** of one core (14 watches open, a repair pass "
        "every 30 s).",
        "",
        *checks_table(result["checks"]),
    ]
    if image is not None:
        lines += ["", figure(image, "Kubernetes backend: apply and ready times"), ""]
        lines.append(provenance_note(result))
    return "\n".join(lines)


def function_proxy(result: Json, image: str | None) -> str:
    """Calls through the function proxy against calls straight to the runtimes."""
    lines = [
        "## Function proxy (`bench/function_proxy.py`)",
        "",
        "Two real Python runtimes (`python -m function_proxy.runtime`) serve one async function "
        "that answers its JSON event; `baetyl-function` routes `/{app}/{function}` to one or "
        f"both. An aiohttp client sends {result['requests']} calls per case (after a warm-up) "
        "with 1 or "
        f"{result['clients']} concurrent callers, either to the proxy or straight to the "
        "runtimes (round-robin itself). Client, proxy and runtimes share the machine's cores. "
        f"Each case runs {result.get('rounds', 1)} round(s), direct and proxied alternating so "
        "that both meet the same background load; requests/s is the median round, the latencies "
        "pool every round, and the CPU time per call (user + system, read from the kernel) is "
        "the median round's.",
        "",
        "| path | instances | callers | requests/s | p50 ms | p99 ms | runtime CPU µs/call "
        "| proxy CPU µs/call |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in result["cases"]:
        proxy_cpu = f"{case['proxy_cpu_us']:.0f}" if case["path"] == "proxy" else "-"
        lines.append(
            f"| {case['path']} | {case['instances']} | {case['clients']} | "
            f"{case['rps']:.0f} | {case['p50_ms']:.2f} | {case['p99_ms']:.2f} | "
            f"{case['runtime_cpu_us']:.0f} | {proxy_cpu} |"
        )
    lines += ["", *checks_table(result["checks"])]
    if image is not None:
        lines += ["", figure(image, "Function proxy: throughput direct and proxied"), ""]
        lines.append(provenance_note(result))
    return "\n".join(lines)


# -- agent upgrade ---------------------------------------------------------------------------

UPGRADE_PHASES = (
    ("delivered", "PUT → the agent starts the upgrade"),
    ("download", "wheel downloaded (object cache, digest checked)"),
    ("copy", "running virtualenv copied"),
    ("install", "`pip install --no-deps` of the wheel into the copy"),
    ("dependencies", "`pip install` completing its dependencies"),
    ("checks", "new `baetyl-core --version` and `--check`, guard started"),
    ("stop", "old agent stops (apps keep running)"),
    ("start", "`exec` of the new version until it runs (imports, apps adopted)"),
    ("connect", "new version's link to the cloud up"),
    ("confirm", "report accepted: upgrade confirmed"),
    ("report", "the cloud shows `done`"),
)
UPGRADE_TOTALS = (
    ("preparing_ms", "**preparing**: PUT → switching"),
    ("switch_confirm_ms", "**switch + confirm**: switching → confirmed"),
    ("offline_ms", "node offline: switching → link up"),
    ("total_ms", "**total**: PUT → `done` shown"),
)
ROLLBACK_PHASES = (
    ("preparing", "PUT → switching (the broken version prepared like any)"),
    ("detected", "switching → the guard rolls back"),
    ("restarted", "guard stops it and starts the previous version"),
    ("connected", "previous version's link to the cloud up"),
    ("reported", "the cloud shows `rolledBack`"),
)
ROLLBACK_TOTALS = (
    ("switch_to_rolled_back_ms", "**switching → `rolledBack` shown**"),
    ("past_deadline_ms", "the same, past the confirm deadline"),
    ("total_ms", "**total**: PUT → `rolledBack` shown"),
)


def _seconds(figures: Json | None, *, bold: bool = False) -> str:
    """`median (min-max)` in seconds, or — when not measured."""
    if not figures:
        return "—"

    def one(ms: float) -> str:
        return f"{ms / 1000:.2f}" if abs(ms) < 10_000 else f"{ms / 1000:.1f}"

    median = f"**{one(figures['p50'])}**" if bold else one(figures["p50"])
    if figures["count"] == 1:
        return median
    return f"{median} ({one(figures['min'])}-{one(figures['max'])})"


def _rounds(count: int) -> str:
    return f"{count} round" if count == 1 else f"{count} rounds"


def _phase_table(
    header: str,
    columns: Sequence[tuple[str, Json]],
    phases: Sequence[tuple[str, str]],
    totals: Sequence[tuple[str, str]],
    skip: dict[str, set[str]] | None = None,
) -> list[str]:
    """Rows of phases then totals, one column per summary (rounds in the header)."""
    lines = [
        f"| {header} | "
        + " | ".join(f"{name}, {_rounds(s['rounds'])}" for name, s in columns)
        + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for key, label in phases:
        cells = [_seconds(s["phases_ms"].get(key)) for _, s in columns]
        if any(cell != "—" for cell in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for key, label in totals:
        bold = label.startswith("**")
        cells = [
            "—" if key in (skip or {}).get(name, set()) else _seconds(s.get(key), bold=bold)
            for name, s in columns
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def agent_upgrade(result: Json) -> str:
    """Agent self-upgrade: its phases, rollbacks of broken versions, the disk a version takes."""
    plan, found, disk = result["plan"], result["summary"], result["disk"]
    upgrades = [("to a new version", found["new"])]
    if "previous" in found:
        upgrades.append(("back to the previous version", found["previous"]))
    lines = [
        "## Agent upgrade (`bench/agent_upgrade.py`)",
        "",
        "A real `baetyl-cloud serve` with its broker serves agent wheels of the working tree "
        "built as other versions; a node is installed with the cloud's install command (no "
        "systemd) and runs one native app. Each round is one `PUT /v1/nodes/{name}/core/configs` "
        "naming a version, timed until `GET .../core/versions` shows the node's report of the "
        "outcome; the phases between come from the agent's JSON log (core.log), whose lines the "
        "old agent, the new one and the rollback guard all write. An upgrade to a new version "
        "downloads its wheel, copies the running virtualenv, installs the wheel over the copy "
        "and checks it, then the agent stops and `exec`s the new version, which confirms once "
        "the cloud accepted its report (decision #153). Going back to the previous version finds "
        "its virtualenv still on the node (kept as `previous`), so only its checks run again "
        "(the wheel is fetched again first: their row counts both). "
        "Seconds, median (min-max) of the rounds of one run; upgrades with the default "
        "`upgrade.confirm_timeout` (120 s), rollbacks with "
        f"{plan['confirm_timeout']:g} s.",
        "",
        *_phase_table("upgrade phase (s)", upgrades, UPGRADE_PHASES, UPGRADE_TOTALS),
    ]
    broken = [
        (label, found[kind])
        for kind, label in (("crashing", "exits at start"), ("silent", "never connects"))
        if kind in found
    ]
    if broken:
        lines += [
            "",
            "A broken version is prepared and switched to like a good one; the guard (the "
            "previous version's code, started by the agent that switches) rolls it back when it "
            "exits before confirming, or when it has not confirmed by the deadline. It then "
            "starts the previous version, which adopts the app and reports `rolledBack`.",
            "",
            *_phase_table(
                "rollback phase (s)", broken, ROLLBACK_PHASES, ROLLBACK_TOTALS,
                skip={"exits at start": {"past_deadline_ms"}},
            ),
        ]  # fmt: skip
    kept = disk["versions_kept"]
    whole = disk["installed_mb"] + disk["versions_dir_mb"]
    lines += [
        "",
        f"Disk (`du` counting): one upgraded version's virtualenv in "
        f"`var/lib/baetyl/versions/{disk['version']}` takes **{disk['version_mb']:.1f} MiB**, "
        f"the virtualenv the node was installed with {disk['installed_mb']:.1f} MiB. After the "
        f"upgrades `versions/` holds {len(kept)} ({', '.join(kept)}: the current and the "
        f"previous version; older ones are deleted), {disk['versions_dir_mb']:.1f} MiB; the "
        "installed virtualenv stays too (the service starts its `baetyl-core`, which hands over "
        f"to the current version), so an upgraded node holds {whole:.0f} MiB of agent.",
        "",
        *checks_table(result["checks"]),
        "",
        provenance_note(result) + f"; load average {result['load_average_end'][0]:.2f} at the end",
    ]
    return "\n".join(lines)


# -- node install per platform ---------------------------------------------------------------


def _install_seconds(figures: Json) -> str:
    """`median (min-max)` seconds of the install rounds."""
    median = f"**{figures['p50']:.1f}**"
    if figures["count"] == 1:
        return median
    return f"{median} ({figures['min']:.1f}-{figures['max']:.1f})"


def platforms(result: Json) -> str:
    """Node install time and the idle agent's RSS on amd64 (systemd and plain), arm64, armv7."""
    found = result["platforms"]
    rounds, settle = result["plan"]["rounds"], result["settle"]
    lines = [
        "## Node install per platform (`bench/platforms.py`)",
        "",
        "On each platform a fresh machine (a new overlay of the cached Debian bookworm root "
        "filesystem of the platform tests, `tools/platforms`) runs the install command of a "
        "real `baetyl-cloud serve` on the host (`GET /v1/nodes/{n}/init`), unchanged, with "
        "`sh`, as root. *Install s* is the time from starting the command to its successful "
        "exit, which comes once the node is online (the cloud then says `ready`); *installed "
        "MB* is `du -sk /opt/baetyl` (the agent's virtualenv, configuration and state). Then, "
        f"once the agent has sent {settle['reports']} reports (its local `GET /health`) or "
        f"{settle['seconds']:g} s after it came online, the RSS of its process as the host "
        "sees it, once a second for "
        f"{result['plan']['idle']} s: the median. Median (min-max) of {_rounds(rounds)} per "
        "platform, each on a fresh machine; pip's cache is shared by every machine, so the "
        "first round of a run is the one with the coldest caches (every round is in the "
        "results file).",
        "",
        "| platform | init | userland | install s, median (min-max) | installed MB | "
        "idle agent RSS MiB |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in found:
        rss = f"{row['idle_rss_mb']:.1f}"
        rss = f"{rss} (qemu-user)" if row["emulated"] else f"**{rss}**"
        lines.append(
            f"| {row['platform']} | {row['init']} | {row['userland']} | "
            f"{_install_seconds(row['install_s'])} | {row['installed_mb']:.0f} | {rss} |"
        )
    emulated = [row for row in found if row["emulated"]]
    native = [row for row in found if not row["emulated"]]
    if emulated:
        host = result.get("host_arch", "amd64")
        names = " and ".join(f"`{row['platform']}`" for row in emulated)
        figures = " and ".join(f"{row['idle_rss_mb']:.1f}" for row in native)
        own = f": {figures} MiB" if native else ""
        uss = [row["idle_uss_mb"] for row in native if row["idle_uss_mb"] is not None]
        if uss:
            alone = " and ".join(f"{mb:.1f}" for mb in uss)
            own += f" (USS, the memory its process alone holds: {alone} MiB)"
        lines += [
            "",
            f"{names} run under qemu-user on this {host} machine: every program of the "
            "userland, pip and the compiler included, is emulated, so their times are "
            "emulation's, not a board's (a real board runs CPU work typically much faster "
            "than emulation does here). Their RSS is that of the host's qemu-user process: "
            "the guest's memory, the emulator itself and its cache of translated code; the "
            f"agent's own figures are those of the {host} rows{own}.",
        ]
    armhf = next((row for row in found if row["platform"] == "armhf"), None)
    if armhf is not None:
        first = armhf["all_rounds"][0]
        built = ", ".join(first["wheels_built"]) or "none (pip's cache already held them)"
        lines += [
            "",
            "On armhf (armv7l) there are no binary wheels of psutil and cffi: the install "
            "script installs `gcc libc6-dev python3-dev libffi-dev` with apt-get (in "
            f"{armhf['build_tools_installed']} of {armhf['rounds']} rounds: each machine is "
            "fresh; apt's downloads are cached) and pip compiles them, then keeps the built "
            "wheels in its cache (`~/.cache/baetyl-py/pip`), which later installs reuse. "
            f"Wheels pip built in this run's first armhf round: {built}; its first install took "
            f"{armhf['first_install_s']:.0f} s.",
        ]
    lines += [
        "",
        provenance_note(result) + f"; load average {result['load_average_end'][0]:.2f} at the end",
    ]
    return "\n".join(lines)
