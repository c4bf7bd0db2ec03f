"""Run every benchmark in bench/ one after the other, then regenerate docs/benchmarks.md.

This is `make bench`. Each benchmark runs as its own process (they start and stop their own
clouds, brokers, databases and agents, and must not share a machine with each other while
measuring), writes its JSON results file into the results directory, and `bench/report.py`
turns the files into the document and its plots. A benchmark that fails keeps its previous
results file (each writes only at the end of a successful run); the others still run, and the
exit status is 1.

`--quick` runs every benchmark at smoke-test sizes into var/bench-quick/ (results, document and
plots), never over the committed figures.
Run: `.venv/bin/python bench/run_all.py [--quick] [--only NAME,...] [--results DIR]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


@dataclasses.dataclass(frozen=True)
class Bench:
    """One benchmark run: its script, its results file, its flags full and quick."""

    name: str
    script: str
    out: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    minutes: float
    """Roughly how long the full run takes here, for the progress line."""


BENCHES = (
    Bench("shadow_apply", "shadow_apply.py", "shadow_apply.json", ("--rounds", "1000"),
          ("--rounds", "20"), 0.2),
    Bench("push_vs_poll", "push_vs_poll.py", "push_vs_poll.json", (), ("--quick",), 2.5),
    Bench("agent", "agent.py", "agent.json", (), ("--quick",), 2),
    Bench("cloud_rest-sqlite", "cloud_rest.py", "cloud_rest-sqlite.json", ("--db", "sqlite"),
          ("--db", "sqlite", "--nodes", "100", "--apps", "10", "--rounds", "2"), 1.3),
    Bench("cloud_rest-postgres", "cloud_rest.py", "cloud_rest-postgres.json",
          ("--db", "postgres"),
          ("--db", "postgres", "--nodes", "100", "--apps", "10", "--rounds", "2"), 1.3),
    Bench("fleet", "fleet.py", "fleet.json", (), ("--quick",), 10),
    Bench("node_venv", "node_venv.py", "node_venv.json", (), ("--quick",), 0.5),
    Bench("kube", "kube.py", "kube.json", (), ("--quick",), 11),
    Bench("function_proxy", "function_proxy.py", "function_proxy.json", (), ("--quick",), 1),
    Bench("agent_upgrade", "agent_upgrade.py", "agent_upgrade.json", (), ("--quick",), 5),
    Bench("platforms", "platforms.py", "platforms.json", (), ("--quick",), 22),
)  # fmt: skip


def names(text: str) -> tuple[str, ...]:
    """A comma-separated list of benchmark names, each one known."""
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    known = {bench.name for bench in BENCHES}
    unknown = [name for name in chosen if name not in known]
    if not chosen or unknown:
        listed = ", ".join(unknown) or repr(text)
        raise argparse.ArgumentTypeError(
            f"unknown benchmark(s) {listed}; known: {', '.join(sorted(known))}"
        )
    return chosen


def build_parser() -> argparse.ArgumentParser:
    """Flags."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog="Each benchmark's own progress and summary are shown as it runs.",
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke-test sizes, into var/bench-quick/")
    add("--only", type=names, help="run only these (comma-separated), e.g. push_vs_poll,agent")
    add("--results", type=Path, help="results directory (bench/results, quick: var/bench-quick)")
    add("--doc", type=Path, help="document to write (docs/benchmarks.md, quick: in --results)")
    add("--no-report", action="store_true", help="measure only, do not regenerate the document")
    return parser


def say(text: str) -> None:
    """A progress line of this runner, set apart from the benchmarks' own output."""
    print(f"==> {text}", file=sys.stderr, flush=True)


def main() -> int:
    """Run the chosen benchmarks in order, then the report; 1 if any of them failed."""
    args = build_parser().parse_args()
    quick_dir = ROOT / "var" / "bench-quick"
    results = args.results or (quick_dir if args.quick else BENCH / "results")
    doc = args.doc or (results / "benchmarks.md" if args.quick else ROOT / "docs/benchmarks.md")
    results.mkdir(parents=True, exist_ok=True)
    chosen = [b for b in BENCHES if args.only is None or b.name in args.only]
    failed: list[str] = []
    started = time.monotonic()
    for index, bench in enumerate(chosen, 1):
        flags = bench.quick if args.quick else bench.full
        command = [sys.executable, str(BENCH / bench.script), *flags]
        command += ["--out", str(results / bench.out)]
        estimate = "" if args.quick else f", about {bench.minutes:g} min"
        say(f"[{index}/{len(chosen)}] {bench.name}{estimate}: {' '.join(command[1:])}")
        began = time.monotonic()
        code = subprocess.run(command, cwd=ROOT, check=False).returncode
        took = time.monotonic() - began
        if code != 0:
            failed.append(bench.name)
            say(f"[{index}/{len(chosen)}] {bench.name} FAILED (exit {code}) after {took:.0f} s")
        else:
            say(f"[{index}/{len(chosen)}] {bench.name} done in {took:.0f} s")
    if not args.no_report:
        say(f"regenerating {doc} from {results}")
        report = [sys.executable, str(BENCH / "report.py"), "--results", str(results)]
        if subprocess.run([*report, "--doc", str(doc)], cwd=ROOT, check=False).returncode:
            failed.append("report")
    total = time.monotonic() - started
    if failed:
        say(f"finished in {total / 60:.1f} min; failed: {', '.join(failed)}")
        return 1
    say(f"finished in {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
