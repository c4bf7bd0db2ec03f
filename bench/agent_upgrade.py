"""Benchmark of agent self-upgrade (issue 16, decision #153): upgrade and rollback times, disk.

How long an upgrade takes, that the node's app keeps running through it, how soon a broken
version is rolled back, and what a version costs on disk.

A real `baetyl-cloud serve` with its broker serves agent wheels of the working tree, each built
as another version (tests/harness/wheel.py); a node is installed with the cloud's own install
script without systemd, as tests/e2e/test_agent_upgrade.py installs it, and runs one native app.
Each round is one `PUT /v1/nodes/{name}/core/configs` naming a version, timed until
`GET .../core/versions` shows the node's report of the outcome; the phases in between come from
the agent's own JSON log (core.log: "upgrading the agent", its steps, "switching to the new agent
version", the new version's start, link and "agent upgrade confirmed"; the guard's "rolling the
agent back"). Rounds, in order:
  - `--rounds` upgrades to a version new to the node (1.0.1, 1.0.2, ...): the wheel is
    downloaded, the running virtualenv copied, the wheel installed and checked, then the switch;
  - `--returns` upgrades back to the version before, alternating between the last two: its
    virtualenv is still on the node (kept as `previous`), so only its checks run again;
  - then the agent is restarted with `upgrade.confirm_timeout: --confirm-timeout`, and
    `--rollbacks` versions that exit at start and as many that never connect are each rolled
    back by the guard; a silent one is quoted past its deadline as well.
Every round checks that the app kept its pid (and, for an upgrade, that the agent did: it
`exec`s in place). The disk a version takes is measured after the new-version rounds.
Run: `.venv/bin/python bench/agent_upgrade.py [--quick] [--rounds N] [--returns N]
[--rollbacks N] [--out F.json]`.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before bench/: bench/agent.py would shadow the agent package

from edgekit import (  # noqa: E402
    AgentLog,
    BenchError,
    BenchFlags,
    Json,
    Progress,
    Reaper,
    bench_cli,
    eventually,
    percentiles,
    record_time,
)
from provenance import provenance  # noqa: E402
from reportkit import sections  # noqa: E402

from tests.e2e.installing import (  # noqa: E402
    Cloud,
    Node,
    core_processes,
    node_prefix,
    serving_cloud,
    shell,
)
from tests.harness.common import HarnessError  # noqa: E402
from tests.harness.venv import MB, disk_bytes  # noqa: E402
from tests.harness.wheel import Replacement, agent_wheel  # noqa: E402
from tools.kit.procs import app_processes  # noqa: E402
from tools.kit.rest import RestError  # noqa: E402

NODE = "bench-upgrade"
APP = "upgrade-sleeper"
INSTALLED = "1.0.0"
SILENT: tuple[Replacement, ...] = (("agent/core/app.py", "port=config.cloud.port,", "port=9,"),)
"""Runs and adopts the apps, but dials a port where no broker listens: never reports."""
CRASHING: tuple[Replacement, ...] = (
    ("agent/core/app.py", "        await self.store.open()\n", "        raise OSError('broken')\n"),
)
"""Passes `--version` and `--check`, then exits as soon as it runs."""
POLL = 0.1
"""Seconds between two looks at `GET .../core/versions`."""
ENDED = ("done", "failed", "rolledBack")
TRIAL_LINE = "running a new agent version on trial; confirming once the cloud has its report"


@dataclasses.dataclass(frozen=True)
class Plan:
    """Rounds of one run."""

    rounds: int = 5
    """Upgrades to a version the node has not had."""
    returns: int = 4
    """Upgrades back to the version before (its virtualenv kept), after the rounds."""
    rollbacks: int = 5
    """Versions that exit at start, and as many that never connect, each rolled back."""
    confirm_timeout: float = 10.0
    """`upgrade.confirm_timeout` of the rollback rounds (upgrades run with the default 120 s)."""
    timeout: float = 300.0
    """Seconds one round may take before the run fails."""

    def problem(self) -> str | None:
        """What makes the plan impossible to run, if anything."""
        if self.rounds < 1 or self.returns < 0 or self.rollbacks < 0:
            return "--rounds must be at least 1, --returns and --rollbacks at least 0"
        if self.returns and self.rounds < 2:
            return "--returns needs --rounds 2 or more (the version before must be an upgrade)"
        if not 5 <= self.confirm_timeout <= 3600:
            return "--confirm-timeout must be between 5 and 3600 s (the agent's range)"
        return None


FULL = Plan()
QUICK = Plan(rounds=2, returns=1, rollbacks=1)


@dataclasses.dataclass(frozen=True)
class Versions:
    """The versions a run upgrades to, by kind, and their wheels."""

    fresh: list[str]
    crashing: list[str]
    silent: list[str]
    wheels: dict[str, Path]


def build_wheels(plan: Plan, progress: Progress) -> Versions:
    """Every wheel of the run (cached by source hash: an unchanged tree builds none)."""
    fresh = [f"1.0.{index}" for index in range(1, plan.rounds + 1)]
    crashing = [f"1.1.{index}" for index in range(1, plan.rollbacks + 1)]
    silent = [f"1.2.{index}" for index in range(1, plan.rollbacks + 1)]
    wanted: list[tuple[str, tuple[Replacement, ...]]] = [(INSTALLED, ())]
    wanted += [(version, ()) for version in fresh]
    wanted += [(version, CRASHING) for version in crashing]
    wanted += [(version, SILENT) for version in silent]
    wheels = {}
    with progress.step(f"building {len(wanted)} agent wheels of the working tree (cached)"):
        for version, replacements in wanted:
            wheels[version] = agent_wheel(version, replacements)
    return Versions(fresh, crashing, silent, wheels)


# -- the node -------------------------------------------------------------------------------


async def versions_view(cloud: Cloud) -> Json:
    """`GET /v1/nodes/{name}/core/versions`."""
    found: Json = await cloud.ok("GET", f"/v1/nodes/{NODE}/core/versions")
    return found


def the_core(node: Node) -> int:
    """The pid of the node's one baetyl-core."""
    found = core_processes(node.config)
    if len(found) != 1:
        raise BenchError(f"expected one baetyl-core of {node.config}, found {len(found)}")
    return found[0].pid


def app_pids(node: Node) -> list[int]:
    """The pids of the app's processes."""
    return sorted(process.pid for process in app_processes(node.run_dir, APP))


async def install(cloud: Cloud, node: Node, progress: Progress) -> str:
    """The node installed by the cloud's install command and running the app; the command."""
    await cloud.ok("POST", "/v1/nodes", {"name": NODE, "labels": {"bench": "upgrade"}})
    command = str((await cloud.ok("GET", f"/v1/nodes/{NODE}/init"))["cmd"])
    with progress.step("installing the node with the cloud's install command (no systemd)"):
        code, out = await shell(node, command)
        if code != 0:
            raise BenchError(f"the install command failed (exit {code}):\n{out[-3000:]}")
    sleep = shutil.which("sleep") or "/bin/sleep"
    app = {
        "name": APP,
        "mode": "native",
        "selector": "bench=upgrade",
        "services": [{"name": "main", "command": [sleep, "infinity"]}],
    }
    await cloud.ok("POST", "/v1/apps", app)
    await eventually(lambda: app_pids(node), limit=60, what="the app process")

    async def reports_installed() -> bool:
        return (await versions_view(cloud)).get("current") == INSTALLED

    await eventually(reports_installed, limit=60, what=f"the node reporting {INSTALLED}")
    return command


async def restart_with_confirm_timeout(
    cloud: Cloud, node: Node, command: str, seconds: float
) -> None:
    """Stop the agent, set `upgrade.confirm_timeout` in its core.yml, start it as baetyl-init
    does on an activated prefix (the apps are adopted, not restarted)."""
    core = the_core(node)
    os.kill(core, signal.SIGTERM)
    await eventually(lambda: not core_processes(node.config), limit=30, what="the agent to stop")
    config = yaml.safe_load(node.config.read_text(encoding="utf-8"))
    config.setdefault("upgrade", {})["confirm_timeout"] = seconds
    node.config.write_text(yaml.safe_dump(config), encoding="utf-8")
    token = re.search(r"token=([A-Za-z0-9_.~-]+)", command)
    if token is None:
        raise BenchError(f"no token in the install command {command!r}")
    again = (
        f"{node.prefix}/venv/bin/baetyl-init --no-systemd --prefix {node.prefix} "
        f"--cloud {cloud.url} --token {token.group(1)}"
    )
    code, out = await shell(node, again)
    if code != 0:
        raise BenchError(f"baetyl-init did not start the agent again (exit {code}):\n{out}")


# -- one round ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rig:
    """What every round works with: the cloud, the installed node, its agent's log, the plan."""

    cloud: Cloud
    node: Node
    log: AgentLog
    plan: Plan


class Timeline:
    """The instants of one round, read from the records the agent (and guard) logged in it."""

    def __init__(self, records: list[Json]) -> None:
        self._records = records

    def first(
        self, message: str, *, after: float = 0.0, version: str | None = None, step: str = ""
    ) -> float | None:
        """The time of the first record with `message` at or after `after`, of `version` (if
        given) and whose `step` starts with `step`."""
        for record in self._records:
            if record.get("message") != message:
                continue
            if version is not None and record.get("version") != version:
                continue
            if not str(record.get("step", "")).startswith(step):
                continue
            at = record_time(record)
            if at >= after:
                return at
        return None


def _spans(instants: list[tuple[str, float | None]]) -> Json:
    """Milliseconds between consecutive instants that were seen, named by the later one."""
    seen = [(name, at) for name, at in instants if at is not None]
    return {
        name: round((at - before) * 1000, 1) for (_, before), (name, at) in itertools.pairwise(seen)
    }


async def order(rig: Rig, version: str, expected: str) -> tuple[float, float, Timeline, Json]:
    """PUT `version`, wait for the node's report of the outcome; (PUT time, seen time, log of the
    round, the versions view). BenchError if the outcome is not `expected`."""
    mark = len(rig.log.since(0))
    body = {"version": version, "frequency": 20, "apiport": 30050}
    put = time.time()
    await rig.cloud.ok("PUT", f"/v1/nodes/{NODE}/core/configs", body)

    async def ended() -> Json | None:
        view = await versions_view(rig.cloud)
        upgrade = view.get("upgrade") or {}
        return view if upgrade.get("version") == version and upgrade.get("state") in ENDED else None

    view = await eventually(
        ended, limit=rig.plan.timeout, poll=POLL, what=f"the node's report of {version}"
    )
    seen = time.time()
    upgrade = view["upgrade"]
    if upgrade["state"] != expected:
        raise BenchError(
            f"the upgrade to {version} ended {upgrade['state']}, not {expected}: "
            f"{upgrade.get('message', '')}\n{rig.log.tail()}"
        )
    return put, seen, Timeline(rig.log.since(mark)), view


async def upgrade_round(rig: Rig, version: str, kind: str) -> Json:
    """One upgrade that must confirm itself; its phases, in ms."""
    apps, core = app_pids(rig.node), the_core(rig.node)
    put, seen, line, view = await order(rig, version, "done")
    ordered = line.first("upgrading the agent", version=version)
    switched = line.first("switching to the new agent version", version=version)
    started = line.first(TRIAL_LINE, version=version)
    confirmed = line.first("agent upgrade confirmed", version=version)
    if ordered is None or switched is None or started is None or confirmed is None:
        raise BenchError(f"the upgrade to {version} left no full log\n{rig.log.tail()}")
    linked = line.first("cloud link up", after=started)
    step = "upgrade step"
    phases = _spans(
        [
            ("put", put),
            ("delivered", ordered),
            ("download", line.first(step, version=version, step="copying the running")),
            ("copy", line.first(step, version=version, step="installing the new wheel")),
            ("install", line.first(step, version=version, step="completing its dependencies")),
            ("dependencies", line.first(step, version=version, step="checking the new version")),
            ("checks", switched),
            ("stop", line.first("baetyl-core stopped; apps keep running", after=switched)),
            ("start", started),
            ("connect", linked),
            ("confirm", confirmed),
            ("report", seen),
        ]
    )
    # The version's virtualenv was there (kept as previous): "checks" is all its preparing.
    reused = line.first(step, version=version, step="the virtualenv of this version") is not None
    return {
        "version": version,
        "kind": kind,
        "reused": reused,
        "phases_ms": phases,
        "preparing_ms": round((switched - put) * 1000, 1),
        "switch_confirm_ms": round((confirmed - switched) * 1000, 1),
        "offline_ms": round(((linked or confirmed) - switched) * 1000, 1),
        "total_ms": round((seen - put) * 1000, 1),
        "app_kept": app_pids(rig.node) == apps,
        "agent_kept": the_core(rig.node) == core,
        "current": view.get("current"),
    }


async def rollback_round(rig: Rig, version: str, kind: str) -> Json:
    """One broken version, which the guard must roll back; its phases, in ms."""
    apps, back_to = app_pids(rig.node), (await versions_view(rig.cloud)).get("current")
    put, seen, line, view = await order(rig, version, "rolledBack")
    switched = line.first("switching to the new agent version", version=version)
    rolling = line.first("rolling the agent back", version=version)
    if switched is None or rolling is None:
        raise BenchError(f"the rollback of {version} left no log of its switch\n{rig.log.tail()}")
    restarted = line.first("previous agent version started", after=rolling)
    phases = _spans(
        [
            ("put", put),
            ("preparing", switched),
            ("detected", rolling),
            ("restarted", restarted),
            ("connected", line.first("cloud link up", after=restarted or rolling)),
            ("reported", seen),
        ]
    )
    after_switch = seen - switched
    return {
        "version": version,
        "kind": kind,
        "message": view["upgrade"].get("message", ""),
        "phases_ms": phases,
        "preparing_ms": round((switched - put) * 1000, 1),
        "switch_to_rolled_back_ms": round(after_switch * 1000, 1),
        "past_deadline_ms": round((after_switch - rig.plan.confirm_timeout) * 1000, 1),
        "total_ms": round((seen - put) * 1000, 1),
        "app_kept": app_pids(rig.node) == apps,
        "back_on_previous": view.get("current") == back_to,
    }


# -- the run --------------------------------------------------------------------------------


def disk(node: Node, version: str) -> Json:
    """What the installed virtualenv and one upgraded version's take, in MiB (`du` counting)."""
    versions_dir = node.prefix / "var/lib/baetyl/versions"
    kept = sorted(
        p.name for p in versions_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    return {
        "version": version,
        "version_mb": round(disk_bytes([versions_dir / version]) / MB, 1),
        "installed_mb": round(disk_bytes([node.prefix / "venv"]) / MB, 1),
        "versions_dir_mb": round(disk_bytes([versions_dir]) / MB, 1),
        "versions_kept": kept,
    }


def summarize(rounds: list[Json], keys: tuple[str, ...]) -> Json:
    """Median, min and max of each key and of each phase over `rounds`."""
    figures = {key: percentiles([r[key] for r in rounds]) for key in keys}
    names = [name for r in rounds for name in r["phases_ms"]]
    phases = {}
    for name in dict.fromkeys(names):
        phases[name] = percentiles([r["phases_ms"][name] for r in rounds if name in r["phases_ms"]])
    return {"rounds": len(rounds), **figures, "phases_ms": phases}


async def rounds_of(
    rig: Rig,
    what: str,
    versions: list[str],
    kind: str,
    measure: Callable[[Rig, str, str], Awaitable[Json]],
    progress: Progress,
) -> list[Json]:
    """`measure` for each version in turn, one progress line each."""
    done = []
    for index, version in enumerate(versions, 1):
        result = await measure(rig, version, kind)
        done.append(result)
        kept = "the app kept its pid" if result["app_kept"] else "THE APP WAS RESTARTED"
        progress.say(
            f"{what} {index}/{len(versions)} to {version}: {result['total_ms'] / 1000:.1f} s "
            f"(preparing {result['preparing_ms'] / 1000:.1f} s); {kept}"
        )
    return done


async def run(plan: Plan, work: Path, reaper: Reaper, progress: Progress) -> Json:
    """Install, upgrade, go back, roll back; returns the results."""
    origin = provenance()
    try:
        versions = build_wheels(plan, progress)
        oldest_first = [*versions.fresh, *versions.crashing, *versions.silent, INSTALLED]
        progress.say("starting the cloud, serving the wheels")
        async with (
            serving_cloud([versions.wheels[v] for v in oldest_first]) as cloud,
            node_prefix(work) as node,
        ):
            reaper.track_apps(node.run_dir)
            command = await install(cloud, node, progress)
            apps = app_pids(node)
            rig = Rig(cloud, node, AgentLog(node.prefix / "var/log/baetyl/core.log"), plan)
            fresh = await rounds_of(rig, "upgrade", versions.fresh, "new", upgrade_round, progress)
            footprint = disk(node, versions.fresh[-1])
            back = [versions.fresh[-2 + index % 2] for index in range(plan.returns)]
            returns = await rounds_of(rig, "return", back, "previous", upgrade_round, progress)
            broken: list[Json] = []
            if plan.rollbacks:
                progress.say(
                    f"restarting the agent with confirm_timeout {plan.confirm_timeout:g} s"
                )
                await restart_with_confirm_timeout(cloud, node, command, plan.confirm_timeout)
                for kind in ("crashing", "silent"):
                    broken += await rounds_of(
                        rig, "rollback", getattr(versions, kind), kind, rollback_round, progress
                    )
            app_kept_whole_run = app_pids(node) == apps
    except (RestError, HarnessError, OSError) as exc:
        raise BenchError(str(exc)) from exc
    keys = ("preparing_ms", "switch_confirm_ms", "offline_ms", "total_ms")
    broken_keys = ("preparing_ms", "switch_to_rolled_back_ms", "past_deadline_ms", "total_ms")
    summaries = {"new": summarize(fresh, keys)}
    if returns:
        summaries["previous"] = summarize(returns, keys)
    for kind in ("crashing", "silent"):
        if any(r["kind"] == kind for r in broken):
            summaries[kind] = summarize([r for r in broken if r["kind"] == kind], broken_keys)
    result: Json = {
        "provenance": origin,
        "load_average_end": os.getloadavg(),
        "plan": dataclasses.asdict(plan),
        "workdir": str(work),
        "upgrades": fresh + returns,
        "rollbacks": broken,
        "summary": summaries,
        "disk": footprint,
        "app_kept_whole_run": app_kept_whole_run,
    }
    result["checks"] = checks(result)
    return result


def checks(result: Json) -> list[Json]:
    """What must hold whatever the machine: apps untouched, the agent replaced in place, a
    crashing version rolled back at once (not at its deadline; the previous version's start and
    link, which follow, depend on the machine's load and are not part of it)."""
    upgrades, broken = result["upgrades"], result["rollbacks"]
    every = upgrades + broken
    kept = sum(1 for r in every if r["app_kept"])
    in_place = sum(1 for r in upgrades if r["agent_kept"])
    rows = [
        {
            "target": "the app keeps its pid through every upgrade and rollback",
            "measured": f"{kept} of {len(every)} rounds",
            "met": kept == len(every) and result["app_kept_whole_run"],
        },
        {
            "target": "an upgrade replaces the agent in place (same pid)",
            "measured": f"{in_place} of {len(upgrades)} upgrades",
            "met": in_place == len(upgrades),
        },
    ]
    crashing = [r for r in broken if r["kind"] == "crashing"]
    if crashing:
        timeout = result["plan"]["confirm_timeout"]
        worst = max(r["phases_ms"]["detected"] for r in crashing) / 1000
        rows.append(
            {
                "target": f"the guard rolls back a version that exits at start before its "
                f"{timeout:g} s deadline",
                "measured": f"at most {worst:.1f} s after the switch",
                "met": worst < timeout,
            }
        )
    return rows


def summary(result: Json) -> str:
    """The tables docs/benchmarks.md shows, as Markdown."""
    return sections.agent_upgrade(result)


FLAGS = BenchFlags(
    FULL,
    QUICK,
    "2 upgrades, 1 return, 1 rollback of each kind (a smoke run)",
    (
        ("--rounds", int, "upgrades to a version new to the node (5)"),
        ("--returns", int, "upgrades back to the version before, alternating (4)"),
        ("--rollbacks", int, "versions that exit at start, and that never connect (5 each)"),
        ("--confirm-timeout", float, "upgrade.confirm_timeout of the rollback rounds, s (10)"),
    ),
)


if __name__ == "__main__":  # run, print the summary, write the JSON; clean up whatever happens
    sys.exit(bench_cli("bench/agent_upgrade.py", __doc__, FLAGS, run, summary))
