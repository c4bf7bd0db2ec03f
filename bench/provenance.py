"""Where and how a benchmark result was measured, stored with the result.

Every bench script writes this beside its figures, so the report (`bench/report.py`) can print
under each table and plot the command that produced it, the machine it ran on and when: figures
from different machines or runs are not comparable, and a reader must be able to tell.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORT_OUTPUTS = ("bench/results", "docs/benchmarks.md", "docs/img")


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory, Python and kernel of this machine."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = int(line.split()[1]) / 1024**2
                break
    cores = os.cpu_count() or 0
    return {
        "nproc": cores,
        "cpu": model or platform.processor() or "unknown CPU",
        "ram_gib": round(ram_gib, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "summary": f"{cores} cores ({model or 'unknown CPU'}), {ram_gib:.1f} GiB RAM, "
        f"Python {platform.python_version()}, Linux {platform.release()}",
    }


def git_revision() -> str:
    """The commit measured, `+dirty` when the tree had changes; "unknown" outside a checkout.

    The report's own outputs (results files, the document, its plots) do not count: a `make
    bench` run rewrites them as it goes, and that is no change to what is measured.
    """
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                *(f":!{path}" for path in REPORT_OUTPUTS),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def command_line(argv: list[str] | None = None) -> str:
    """The command that reproduces the run, relative to the repository root."""
    args = list(sys.argv if argv is None else argv)
    script = Path(args[0]).resolve() if args else Path("?")
    with contextlib.suppress(ValueError):
        script = script.relative_to(ROOT)
    inside = f"{ROOT}{os.sep}"
    # Paths under the checkout are written relative to it, so the command works in any clone.
    rest = [arg.removeprefix(inside) for arg in args[1:]]
    return shlex.join([".venv/bin/python", str(script), *rest])


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """Date (UTC), command, machine, load average at the time, and the commit measured."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command_line(argv),
        "machine": machine(),
        "load_average": list(os.getloadavg()),
        "revision": git_revision(),
    }
