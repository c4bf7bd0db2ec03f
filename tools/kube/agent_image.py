"""The agent's container image, built offline from the wheel: what the Kubernetes install
manifest runs (`deploy/kubernetes/agent/`, docs/kubernetes.md).

No registry and no Docker are needed: the image is this machine's Python (tools/kube/images'
`python_image`) plus the wheel with its `kube` extra installed by pip into
`/opt/baetyl-py/site-packages` (from pip's cache or the package index), and the three edge
commands in `/usr/local/bin`. It is written as a docker-archive that `ctr images import` (or
`docker load`) takes. The archive is cached by the wheel's digest.

    python -m tools.kube.agent_image --wheel dist/baetyl_py-0.1.0-py3-none-any.whl --out F.tar
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from agent.contracts.version import VERSION
from cloud.settings import DEFAULT_AGENT_IMAGE
from tools.kube.images import Entry, Image, docker_archive, python_image, shared_libraries
from tools.kube.layout import CACHE

AGENT_IMAGE = f"{DEFAULT_AGENT_IMAGE}:{VERSION}"
"""What the cloud's manifest names by default (`baetyl-cloud serve --agent-image` changes it)."""
SITE = "opt/baetyl-py/site-packages"
COMMANDS = {
    "baetyl-core": "agent.core.cli",
    "baetyl-init": "agent.init.cli",
    "baetyl-function": "function_proxy.cli",
}
IMAGES_CACHE = CACHE / "images"


def install(wheel: Path, target: Path) -> None:
    """pip-install `wheel[kube]` and its dependencies into `target` (a flat site directory)."""
    done = subprocess.run(  # noqa: S603 - our own arguments, no shell
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--target", str(target), f"{wheel}[kube]",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"pip could not install {wheel.name}[kube]:\n{done.stderr[-2000:]}")


def agent_image(wheel: Path, work: Path, reference: str = AGENT_IMAGE) -> Image:
    """The image: Python, the installed wheel, and a script per edge command."""
    base = python_image()
    target = work / "site"
    install(wheel, target)
    directories = {SITE, "usr/local", "usr/local/bin", "opt", "opt/baetyl-py"}
    files = []
    for path in sorted(target.rglob("*")):
        relative = path.relative_to(target)
        if relative.parts[0] == "bin" or "__pycache__" in relative.parts:
            continue  # pip's scripts name the build's interpreter; ours are below
        name = f"{SITE}/{relative}"
        if path.is_dir():
            directories.add(name)
        elif path.is_file():
            mode = 0o755 if path.suffix == ".so" or ".so." in path.name else 0o644
            files.append(Entry(name, path.read_bytes(), mode))
    # Compiled modules of the dependencies load system libraries the interpreter does not
    # (pydantic_core needs libgcc_s): each comes from this machine, as the interpreter's do.
    known = {entry.path for entry in base.entries}
    extensions = [p for p in target.rglob("*.so*") if p.is_file() and "__pycache__" not in p.parts]
    for library in sorted(shared_libraries(extensions)):
        name = str(library).lstrip("/")
        if name not in known and not library.is_relative_to(target):
            directories.update(str(p) for p in Path(name).parents if str(p) != ".")
            files.append(Entry(name, library.resolve().read_bytes()))
    script = "#!/usr/bin/python3\nimport sys\nfrom {} import main\nsys.exit(main())\n"
    scripts = [
        Entry(f"usr/local/bin/{command}", script.format(module).encode())
        for command, module in COMMANDS.items()
    ]
    entries = [
        *base.entries,
        *(Entry(d, directory=True) for d in sorted(directories) if d not in known),
        *files,
        *scripts,
    ]
    return Image(
        reference,
        tuple(entries),
        entrypoint=(),
        command=("baetyl-core", "--help"),
        env=(f"PYTHONPATH=/{SITE}", "PYTHONUNBUFFERED=1"),
    )


def build(wheel: Path, out: Path | None = None, reference: str = AGENT_IMAGE) -> Path:
    """The image's docker-archive (cached by the wheel's digest and the reference); its path."""
    digest = hashlib.sha256(wheel.read_bytes() + reference.encode()).hexdigest()[:16]
    cached = IMAGES_CACHE / f"agent-{digest}.tar"
    if not cached.exists():
        IMAGES_CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="baetyl-agent-image-") as work:
            data = docker_archive(agent_image(wheel, Path(work), reference))
        partial = cached.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(cached)
    if out is None:
        return cached
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(cached.read_bytes())
    return out


def main(argv: list[str] | None = None) -> int:
    """`--wheel W --out F.tar [--tag REF]`."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.kube.agent_image",
        description="Build the agent's container image offline from the wheel (docker-archive).",
    )
    parser.add_argument("--wheel", type=Path, required=True, help="the agent wheel (make wheel)")
    parser.add_argument("--out", type=Path, required=True, help="the archive to write")
    parser.add_argument("--tag", default=AGENT_IMAGE, help=f"its reference ({AGENT_IMAGE})")
    args = parser.parse_args(argv)
    if not args.wheel.is_file():
        parser.error(f"--wheel {args.wheel}: no such file (make wheel builds it)")
    try:
        path = build(args.wheel, args.out, args.tag)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    size = path.stat().st_size / 1024 / 1024
    sys.stdout.write(f"{args.tag}: {path} ({size:.0f} MB); load it with `ctr images import`\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
