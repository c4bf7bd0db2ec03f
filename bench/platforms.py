"""Benchmark of a node's install per platform (issue 17): install time and the idle agent's RSS.

On each platform a fresh machine (a new overlay of the cached Debian bookworm rootfs,
tools/platforms) runs the install command a real `baetyl-cloud serve` on the host hands out
(`GET /v1/nodes/{n}/init`), unchanged, with `sh`, as root, as tests/platforms/ do. Platforms, in
this order:
  - `amd64-systemd`: this machine's architecture, systemd as PID 1: the script installs and
    starts the unit;
  - `amd64-plain`: the same rootfs without an init: the script starts baetyl-core itself;
  - `arm64`, `armhf` (armv7l): ARM userlands without an init, every program under qemu-user;
    on armhf the script first installs a compiler and headers with apt-get and pip compiles
    psutil and cffi, unless its cache (~/.cache/baetyl-py/pip, shared by every machine) holds
    the wheels it built before.
Each round is timed from the start of the install command to its successful exit, which comes
once the node is online; `GET /v1/nodes/{n}` must then say ready, and `du -sk /opt/baetyl`
gives the installed size. Then the idle agent: once it has sent 3 reports (its local
`GET /health`) or 20 s after it came online, the RSS (and USS) of its process, as the host sees
it, once a second for `--idle` s. Under qemu-user that process is the emulator (the guest's
memory, the emulator and its code cache), so only the amd64 figures are the agent's own. Each
round's machine is destroyed after it; the first round of a platform is the one with the
coldest caches (every round is kept in the results).
Run: `.venv/bin/python bench/platforms.py [--quick] [--platforms a,b] [--rounds N] [--idle S]
[--out F.json]` (as root: containers).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before bench/: bench/agent.py would shadow the agent package

from edgekit import (  # noqa: E402
    BenchError,
    BenchFlags,
    Json,
    Progress,
    Reaper,
    bench_cli,
    percentiles,
    sample_memory,
)
from provenance import provenance  # noqa: E402
from reportkit import sections  # noqa: E402

from tests.e2e.installing import Cloud, serving_cloud  # noqa: E402
from tests.harness.common import HarnessError, free_port  # noqa: E402
from tests.harness.wheel import agent_wheel  # noqa: E402
from tests.platforms.conftest import unavailable  # noqa: E402
from tools.kit.rest import RestError, health_of  # noqa: E402
from tools.kit.waiting import WaitTimeout, eventually  # noqa: E402
from tools.platforms import emulation, sources  # noqa: E402
from tools.platforms import rootfs as rootfs_cache  # noqa: E402
from tools.platforms.container import Container, ContainerError, node_machine  # noqa: E402

PREFIX = "/opt/baetyl"
INSTALL_LIMIT = 1500.0
"""Seconds one install may take: armhf's first, compiling under emulation on a loaded machine."""
REPORTS = 3
"""Reports the agent has sent before its memory is sampled (or SETTLE s, whichever is first)."""
SETTLE = 20.0
ONLINE_LINE = "the node is online"
BUILD_TOOLS_LINE = "installing gcc libc6-dev python3-dev libffi-dev with apt-get"


@dataclasses.dataclass(frozen=True)
class Target:
    """One platform of the run: a cached rootfs, booted with its init or without."""

    name: str
    platform: Callable[[], rootfs_cache.Platform]
    init: bool


TARGETS = (
    Target("amd64-systemd", rootfs_cache.systemd_platform, init=True),
    Target("amd64-plain", rootfs_cache.systemd_platform, init=False),
    Target("arm64", lambda: rootfs_cache.arm_platform("arm64"), init=False),
    Target("armhf", lambda: rootfs_cache.arm_platform("armhf"), init=False),
)
KNOWN = tuple(target.name for target in TARGETS)


def platform_names(text: str) -> tuple[str, ...]:
    """A comma-separated list of platforms, each one known (run in the order of TARGETS)."""
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(chosen - set(KNOWN))
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown platform(s) {', '.join(unknown) or repr(text)}; known: {', '.join(KNOWN)}"
        )
    return tuple(name for name in KNOWN if name in chosen)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Platforms and rounds of one run."""

    platforms: tuple[str, ...] = KNOWN
    rounds: int = 3
    """Installs per platform, each on a fresh machine."""
    idle: int = 30
    """Seconds (one sample each) of the idle agent's memory."""

    def problem(self) -> str | None:
        """What makes the plan impossible to run, if anything."""
        if self.rounds < 1:
            return "--rounds must be at least 1"
        if self.idle < 1:
            return "--idle must be at least 1 (seconds, one sample each)"
        return None


FULL = Plan()
QUICK = Plan(rounds=1, idle=10)


# -- one round ------------------------------------------------------------------------------


def built_wheels() -> set[Path]:
    """The wheels pip built and cached so far (pip's cache is shared by every machine)."""
    return set((rootfs_cache.PIP_CACHE / "wheels").rglob("*.whl"))


def the_core(machine: Container) -> psutil.Process:
    """The one baetyl-core of the machine, as the host sees it (under qemu-user: the emulator,
    whose command line still names baetyl-core)."""
    found = []
    for process in machine.processes():
        try:
            if any(arg.endswith("/baetyl-core") for arg in process.cmdline()):
                found.append(process)
        except psutil.Error:
            continue
    if len(found) != 1:
        raise BenchError(f"expected one baetyl-core in {machine.name}, found {len(found)}")
    return found[0]


async def settled(port: int) -> int:
    """Once the agent has sent REPORTS reports, or SETTLE s have passed: how many it has sent."""
    sent = 0

    async def reported() -> bool:
        nonlocal sent
        health = await health_of(f"http://127.0.0.1:{port}")
        cloud_link = (health or {}).get("cloud") or {}
        sent = int(cloud_link.get("reports", 0)) if isinstance(cloud_link, dict) else 0
        return sent >= REPORTS

    # Settled by time otherwise: a fresh agent's first reports come 20 s apart (report_interval).
    with contextlib.suppress(WaitTimeout):
        await eventually(reported, limit=SETTLE, poll=1.0, what=f"{REPORTS} reports")
    return sent


async def install_round(
    cloud: Cloud, rootfs: rootfs_cache.Rootfs, target: Target, index: int, plan: Plan, work: Path
) -> Json:
    """A fresh machine, a new node installed on it and online, its idle agent's memory."""
    name = f"bench-{target.name}-{index}"
    machine = node_machine(rootfs, work / name, name=f"{name}-{os.getpid()}", init=target.init)
    try:
        began = time.monotonic()
        await machine.boot()
        boot_s = time.monotonic() - began
        userland = (await machine.sh("uname -m")).strip()
        await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": {"bench": "platforms"}})
        command = str((await cloud.ok("GET", f"/v1/nodes/{name}/init"))["cmd"])
        port = free_port()
        env = {
            "BAETYL_API_LISTEN": f"127.0.0.1:{port}",
            "PIP_CACHE_DIR": str(rootfs_cache.PIP_CACHE),
        }
        wheels = built_wheels()
        started = time.monotonic()
        install = await machine.run(["sh", "-c", command], env=env, limit=INSTALL_LIMIT)
        install_s = time.monotonic() - started
        if install.code != 0 or ONLINE_LINE not in install.out:
            raise BenchError(
                f"{target.name}: the install command failed (exit {install.code}):\n"
                f"{install.out[-3000:]}"
            )
        ready = (await cloud.ok("GET", f"/v1/nodes/{name}"))["ready"]
        if ready != 1:
            raise BenchError(f"{target.name}: the script said online, the cloud says ready={ready}")
        installed_kib = int((await machine.sh(f"du -sk {PREFIX}")).split()[0])
        compiled = sorted(path.name for path in built_wheels() - wheels)
        reports_before = await settled(port)
        core = the_core(machine)
        exe = Path(core.exe()).name
        memory = await sample_memory(core.pid, plan.idle)
        health = await health_of(f"http://127.0.0.1:{port}") or {}
        cloud_link = health.get("cloud") or {}
    except (ContainerError, RestError, HarnessError, OSError, psutil.Error) as exc:
        raise BenchError(f"{target.name}, round {index}: {exc}") from exc
    finally:
        await machine.destroy()
    return {
        "round": index,
        "boot_s": round(boot_s, 2),
        "install_s": round(install_s, 2),
        "ready": ready,
        "userland": userland,
        "installed_mb": round(installed_kib / 1024, 1),
        "build_tools_installed": BUILD_TOOLS_LINE in install.out,
        "wheels_built": compiled,
        "process_exe": exe,
        "reports_before_sampling": reports_before,
        "reports_after_sampling": cloud_link.get("reports")
        if isinstance(cloud_link, dict)
        else None,
        "memory": memory,
    }


# -- the run --------------------------------------------------------------------------------


def chosen_rootfs(plan: Plan, progress: Progress) -> list[tuple[Target, rootfs_cache.Rootfs]]:
    """The rootfs of every chosen platform (built if missing), or BenchError saying why one
    cannot run here."""
    found = []
    for target in TARGETS:
        if target.name not in plan.platforms:
            continue
        try:
            platform = target.platform()
            reason = unavailable(platform)
            if reason is not None:
                raise BenchError(f"{target.name}: containers cannot run on this machine: {reason}")
            with progress.step(f"{target.name}: the cached rootfs {platform.name}"):
                found.append((target, rootfs_cache.ensure(platform, progress)))
        except (rootfs_cache.RootfsError, sources.NoMirror, emulation.EmulationError) as exc:
            raise BenchError(f"{target.name}: {exc}") from exc
    return found


def summarize(target: Target, rootfs: rootfs_cache.Rootfs, rounds: list[Json]) -> Json:
    """Install seconds (median, min, max), installed size and the idle agent's RSS."""
    emulated = rootfs.arch != rootfs_cache.host_arch()
    uss = [r["memory"]["uss_mb"] for r in rounds if r["memory"]["uss_mb"] is not None]
    return {
        "platform": target.name,
        "arch": rootfs.arch,
        "userland": rounds[0]["userland"],
        "init": "systemd" if target.init else "none",
        "emulated": emulated,
        "rounds": len(rounds),
        "install_s": percentiles([r["install_s"] for r in rounds]),
        "first_install_s": rounds[0]["install_s"],
        "installed_mb": statistics.median(r["installed_mb"] for r in rounds),
        "idle_rss_mb": statistics.median(r["memory"]["rss_mb"] for r in rounds),
        "idle_uss_mb": statistics.median(uss) if uss else None,
        "build_tools_installed": sum(1 for r in rounds if r["build_tools_installed"]),
        "rounds_building_wheels": sum(1 for r in rounds if r["wheels_built"]),
        "rss_note": (
            f"the host's qemu-user process ({rounds[0]['process_exe']}): guest memory, the "
            "emulator and its translated code; not the agent's own"
            if emulated
            else "the agent's own process"
        ),
    }


async def run(plan: Plan, work: Path, reaper: Reaper, progress: Progress) -> Json:
    """Every chosen platform in turn, `plan.rounds` fresh machines each; returns the results."""
    del reaper  # every machine is destroyed by its round, the cloud by its context
    origin = provenance()
    targets = chosen_rootfs(plan, progress)
    cached_before = len(built_wheels())
    results: list[Json] = []
    try:
        with progress.step("building the agent wheel of the working tree (cached)"):
            wheel = agent_wheel()
        progress.say("starting the cloud, serving the wheel")
        async with serving_cloud([wheel]) as cloud:
            for target, rootfs in targets:
                rounds = []
                for index in range(1, plan.rounds + 1):
                    done = await install_round(cloud, rootfs, target, index, plan, work)
                    rounds.append(done)
                    tools = "; build tools installed" if done["build_tools_installed"] else ""
                    wheels = ", ".join(done["wheels_built"])
                    built = f"; pip built {wheels}" if wheels else ""
                    progress.say(
                        f"{target.name} {index}/{plan.rounds}: installed and online in "
                        f"{done['install_s']:.1f} s, {done['installed_mb']:.0f} MB; idle RSS "
                        f"{done['memory']['rss_mb']:.1f} MiB{tools}{built}"
                    )
                results.append({**summarize(target, rootfs, rounds), "all_rounds": rounds})
    except (RestError, HarnessError, OSError) as exc:
        raise BenchError(str(exc)) from exc
    return {
        "provenance": origin,
        "load_average_end": os.getloadavg(),
        "plan": dataclasses.asdict(plan),
        "host_arch": rootfs_cache.host_arch(),
        "settle": {"reports": REPORTS, "seconds": SETTLE},
        "wheel": wheel.name,
        "pip_cache_built_wheels_before": cached_before,
        "platforms": results,
    }


def summary(result: Json) -> str:
    """The table docs/benchmarks.md shows, as Markdown."""
    return sections.platforms(result)


FLAGS = BenchFlags(
    FULL,
    QUICK,
    "1 round per platform, 10 s of idle samples (a smoke run)",
    (
        ("--platforms", platform_names, f"comma-separated, of {', '.join(KNOWN)} (all)"),
        ("--rounds", int, "installs per platform, each on a fresh machine (3)"),
        ("--idle", int, "seconds of idle memory samples, one a second (30)"),
    ),
)


if __name__ == "__main__":  # run, print the summary, write the JSON; clean up whatever happens
    sys.exit(bench_cli("bench/platforms.py", __doc__, FLAGS, run, summary))
