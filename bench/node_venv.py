"""What a node's virtualenv weighs: the wheel installed the way the install script installs it.

Issue 13: every node installed the whole distribution (the cloud's ORM, web server and metrics,
the Kubernetes client), a 136 MB virtualenv on an ARM board that needs a fraction of it. Since
decision #100 the wheel's base is the edge alone; the cloud's dependencies are the `cloud` extra
and the Kubernetes client the `kube` extra. This builds the wheel of the working tree, installs
it into fresh virtualenvs exactly as `baetyl-install.sh` does (`python -m venv`, then the venv's
`pip install --quiet --disable-pip-version-check WHEEL`) and measures each as `du -sm` does:
  - "native node": the wheel without extras, what a native node installs;
  - "every extra": the wheel with `cloud,kube`, the same dependencies every node installed
    before the split (skipped with `--quick`).
Each total is split by distribution (from their RECORD files); the native venv must also run the
edge: `baetyl-core --version` and `baetyl-init --version` from it.
Run: `.venv/bin/python bench/node_venv.py [--quick] [--out F.json]`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance import provenance  # noqa: E402
from reportkit import sections  # noqa: E402

from tests.harness.common import HarnessError  # noqa: E402
from tests.harness.venv import (  # noqa: E402
    MB,
    create_node_venv,
    disk_bytes,
    distribution_bytes,
    distributions,
    node_env,
)
from tests.harness.wheel import agent_wheel  # noqa: E402

Json = dict[str, Any]
NATIVE_TARGET_MB = 70.0
INSTALLER = ("pip", "setuptools")
"""What `python -m venv` itself installs (Python 3.11): pip installs and upgrades the agent;
neither is needed to run it."""
EDGE_SCRIPTS = ("baetyl-core", "baetyl-init")
VARIANTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("native node", ()),
    ("every extra (cloud, kube)", ("cloud", "kube")),
)


def measure(name: str, extras: tuple[str, ...], wheel: Path, scratch: Path) -> Json:
    """Install one variant into a new venv under `scratch`; its size, whole and by distribution."""
    venv = scratch / ("venv-" + "-".join(extras or ("base",)))
    started = time.monotonic()
    bin_dir = create_node_venv(venv, wheel, extras)
    seconds = time.monotonic() - started
    found = distributions(venv)
    sizes = {dist: distribution_bytes(venv, info) / MB for dist, info in found.items()}
    total = disk_bytes([venv]) / MB
    scripts = {}
    for script in EDGE_SCRIPTS:
        done = subprocess.run(
            [str(bin_dir / script), "--version"],
            env=node_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        scripts[script] = done.returncode == 0
    return {
        "name": name,
        "extras": list(extras),
        "install_s": round(seconds, 1),
        "total_mb": round(total, 1),
        "installer_mb": round(sum(sizes.get(dist, 0.0) for dist in INSTALLER), 1),
        "distributions": [
            {"name": dist, "mb": round(size, 2)}
            for dist, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0]))
        ],
        "scripts_run": scripts,
    }


def checks(variants: list[Json]) -> list[Json]:
    """The issue's target, on the native node's venv, and that the edge runs from it."""
    native = variants[0]
    failed = [script for script, ran in native["scripts_run"].items() if not ran]
    return [
        {
            "target": f"native node virtualenv <= {NATIVE_TARGET_MB:g} MB",
            "measured": f"{native['total_mb']:.1f} MB",
            "met": native["total_mb"] <= NATIVE_TARGET_MB,
        },
        {
            "target": "`baetyl-core --version` and `baetyl-init --version` run from it",
            "measured": f"{', '.join(failed)} failed" if failed else "both run",
            "met": not failed,
        },
    ]


def main() -> int:
    """Build, install, measure, print the summary, write the JSON with `--out`; 1 on a failure.

    A missed target is a measured figure, reported "no" like every benchmark's; only a wheel or
    an installation that fails is an error.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="the native node's venv only")
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="write the results as JSON")
    args = parser.parse_args()
    origin = provenance()
    chosen = VARIANTS[:1] if args.quick else VARIANTS
    try:
        wheel = agent_wheel()
        with tempfile.TemporaryDirectory(prefix="baetyl-node-venv-") as scratch:
            variants = []
            for name, extras in chosen:
                shown = wheel.name + (f"[{','.join(extras)}]" if extras else "")
                print(f"==> {name}: pip install {shown}", file=sys.stderr, flush=True)
                variants.append(measure(name, extras, wheel, Path(scratch)))
    except HarnessError as exc:
        print(f"bench/node_venv.py: {exc}", file=sys.stderr)
        return 1
    result = {
        "provenance": origin,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "wheel": wheel.name,
        "variants": variants,
        "checks": checks(variants),
    }
    print(sections.node_venv(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
