"""Container images of Baetyl-Py built offline from its wheel: the agent's and the cloud's.

No registry and no Docker are needed: an image is this machine's Python (tools/kube/images'
`python_image`) plus the wheel with some extras installed by pip into
`/opt/baetyl-py/site-packages` (from pip's cache or the package index), the shared libraries its
compiled modules load, a script per console command in `/usr/local/bin`, and whatever else the
image's spec adds (the cloud's Mosquitto). It is written as a docker-archive that
`ctr images import` (or `docker load`) takes, cached by the wheel's digest and the spec.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tools.kube import images
from tools.kube.images import Entry, Image, docker_archive, python_image, shared_libraries
from tools.kube.layout import CACHE

SITE = "opt/baetyl-py/site-packages"
IMAGES_CACHE = CACHE / "images"


@dataclass(frozen=True)
class WheelImageSpec:
    """One image made from the wheel.

    Attributes:
        name: a short name for the cache file (`agent`, `cloud`).
        extras: the wheel's extras to install (`kube`, `cloud,postgres`).
        commands: console command → module whose `main()` it runs.
        entrypoint: what the image runs (arguments are appended).
        command: its default arguments.
        env: variables besides PYTHONPATH and PYTHONUNBUFFERED, `NAME=value`.
        additions: more entries (directories first), given the wheel, a scratch directory and the
            paths the image holds already (to add to).
        cache_key: what else the extra entries depend on (their sources' digests).
    """

    name: str
    extras: str
    commands: Mapping[str, str]
    command: tuple[str, ...]
    entrypoint: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    additions: Callable[[Path, Path, set[str]], list[Entry]] | None = None
    cache_key: Callable[[], bytes] = field(default=lambda: b"")


def install(wheel: Path, extras: str, target: Path) -> None:
    """pip-install `wheel[extras]` and its dependencies into `target` (a flat site directory)."""
    done = subprocess.run(  # noqa: S603 - our own arguments, no shell
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--target", str(target), f"{wheel}[{extras}]",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"pip could not install {wheel.name}[{extras}]:\n{done.stderr[-2000:]}")


def library_entries(binaries: list[Path], known: set[str], skip: Path | None = None) -> list[Entry]:
    """The shared libraries `binaries` load that the image does not hold yet (added to `known`),
    with their directories; those below `skip` (the installed site) are left out."""
    entries: list[Entry] = []
    for library in sorted(shared_libraries(binaries)):
        name = str(library).lstrip("/")
        if name in known or (skip is not None and library.is_relative_to(skip)):
            continue
        for parent in reversed(Path(name).parents):
            if str(parent) != "." and str(parent) not in known:
                known.add(str(parent))
                entries.append(Entry(str(parent), directory=True))
        known.add(name)
        entries.append(Entry(name, library.resolve().read_bytes(), 0o755))
    return entries


def wheel_image(spec: WheelImageSpec, wheel: Path, work: Path, reference: str) -> Image:
    """The image: Python, the installed wheel, a script per command, and the spec's extras."""
    base = python_image()
    target = work / "site"
    install(wheel, spec.extras, target)
    known = {entry.path for entry in base.entries}
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
    new_directories = [Entry(d, directory=True) for d in sorted(directories) if d not in known]
    known.update(directories)
    # Compiled modules of the dependencies load system libraries the interpreter does not
    # (pydantic_core needs libgcc_s): each comes from this machine, as the interpreter's do.
    extensions = [p for p in target.rglob("*.so*") if p.is_file() and "__pycache__" not in p.parts]
    libraries = library_entries(extensions, known, skip=target)
    script = "#!/usr/bin/python3\nimport sys\nfrom {} import main\nsys.exit(main())\n"
    scripts = [
        Entry(f"usr/local/bin/{command}", script.format(module).encode())
        for command, module in spec.commands.items()
    ]
    added = spec.additions(wheel, work, known) if spec.additions is not None else []
    added_paths = {entry.path for entry in added}
    entries = [
        *(entry for entry in base.entries if entry.path not in added_paths),
        *new_directories,
        *libraries,
        *files,
        *scripts,
        *added,
    ]
    return Image(
        reference,
        tuple(entries),
        entrypoint=spec.entrypoint,
        command=spec.command,
        env=(f"PYTHONPATH=/{SITE}", "PYTHONUNBUFFERED=1", *spec.env),
    )


def build(spec: WheelImageSpec, wheel: Path, reference: str, out: Path | None = None) -> Path:
    """The image's docker-archive (cached by the wheel's digest, the reference and the spec's
    own key); its path, or `out` when given (a copy)."""
    digest = hashlib.sha256(wheel.read_bytes() + reference.encode() + spec.extras.encode())
    digest.update(spec.cache_key())
    for builder in (Path(__file__), Path(images.__file__)):  # a changed builder builds anew
        digest.update(builder.read_bytes())
    name = f"{spec.name}-{digest.hexdigest()[:16]}.tar"
    cached = IMAGES_CACHE / name
    if not cached.exists():
        IMAGES_CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"baetyl-{spec.name}-image-") as work:
            data = docker_archive(wheel_image(spec, wheel, Path(work), reference))
        partial = cached.with_suffix(f".{spec.name}.part")
        partial.write_bytes(data)
        partial.replace(cached)
    if out is None:
        return cached
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(cached.read_bytes())
    return out


def main(spec: WheelImageSpec, default_reference: str, argv: list[str] | None = None) -> int:
    """`--wheel W --out F.tar [--tag REF]` for the image `spec`."""
    parser = argparse.ArgumentParser(
        prog=f"python -m tools.kube.{spec.name}_image",
        description=f"Build the {spec.name}'s container image offline from the wheel "
        "(a docker-archive).",
    )
    parser.add_argument("--wheel", type=Path, required=True, help="the wheel (make wheel)")
    parser.add_argument("--out", type=Path, required=True, help="the archive to write")
    parser.add_argument(
        "--tag", default=default_reference, help=f"its reference ({default_reference})"
    )
    args = parser.parse_args(argv)
    if not args.wheel.is_file():
        parser.error(f"--wheel {args.wheel}: no such file (make wheel builds it)")
    try:
        path = build(spec, args.wheel, args.tag, args.out)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    size = path.stat().st_size / 1024 / 1024
    sys.stdout.write(f"{args.tag}: {path} ({size:.0f} MB); load it with `ctr images import`\n")
    return 0
