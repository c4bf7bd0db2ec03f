"""Build the broker plugin that holds nodes to the message limits of DESIGN §4 (decision #98).

Mosquitto 2.0's size and retain settings are global, and the cloud's own answers need several MiB,
so a node's cap cannot be set in `mosquitto.conf`. `plugin/node_limits.c` refuses, for every
client that is not a cloud replica, a payload over the node limit, a retained message outside
presence and a presence over 1 KiB. It is compiled here, against the headers of the installed
Mosquitto (Debian's `mosquitto-dev` and `libmosquitto-dev`), because a binary built elsewhere
could not match the broker's plugin ABI. Compiling takes about 0.1 s and is done once per source,
header and compiler combination: the file name carries their hash.

Run `python -m cloud.broker.node_limits_plugin --output FILE` to build it for an external broker.
An image that carries a broker without a compiler (the cloud's Kubernetes image) builds the plugin
with that broker's headers when the image is made and names it in PREBUILT_ENV.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

SOURCE_NAME = "node_limits.c"
PREBUILT_ENV = "BAETYL_NODE_LIMITS_PLUGIN"
"""A plugin built beforehand against the broker it goes with; `build` returns it unchanged."""
HEADERS = (Path("/usr/include/mosquitto_broker.h"), Path("/usr/include/mosquitto_plugin.h"))
CFLAGS = ("-shared", "-fPIC", "-O2", "-std=c11", "-Wall", "-Wextra")
BUILD_TIMEOUT = 60.0
"""Seconds a compile may take; 0.1 s is usual, a loaded ARM board is slower."""


class PluginBuildError(RuntimeError):
    """The plugin could not be built; the message says what to install or what failed."""


def source_text() -> bytes:
    """The plugin's C source, as shipped in the package."""
    return resources.files("cloud.broker").joinpath("plugin", SOURCE_NAME).read_bytes()


def find_compiler() -> str | None:
    """The C compiler to use: $CC if set, else `cc` or `gcc` on PATH."""
    configured = os.environ.get("CC")
    if configured:
        return shutil.which(configured)
    return shutil.which("cc") or shutil.which("gcc")


def missing_packages() -> list[str]:
    """Debian packages still needed to build the plugin (empty when it can be built)."""
    missing: list[str] = []
    if find_compiler() is None:
        missing += ["gcc", "libc6-dev"]
    if not all(header.is_file() for header in HEADERS):
        missing.append("mosquitto-dev")
    if not Path("/usr/include/mosquitto.h").is_file():
        missing.append("libmosquitto-dev")
    return missing


def build(directory: Path, *, file_name: str | None = None) -> Path:
    """Blocking: compile the plugin into `directory` unless an identical build is there already.

    The file is `baetyl_node_limits-<hash>.so` (older builds beside it are removed), or
    `file_name`, rebuilt every time, for a configuration that names a fixed path; the file named
    by PREBUILT_ENV, when set, is used as it is (unless `file_name` is given). Returns its
    path. Raises PluginBuildError naming the missing packages or carrying the compiler's output.
    """
    prebuilt = os.environ.get(PREBUILT_ENV)
    if prebuilt and file_name is None:
        if not Path(prebuilt).is_file():
            raise PluginBuildError(f"{PREBUILT_ENV}={prebuilt}: no such file")
        return Path(prebuilt)
    missing = missing_packages()
    if missing:
        raise PluginBuildError(
            "the broker's node-limits plugin cannot be built: install "
            + " ".join(missing)
            + " (apt-get install "
            + " ".join(missing)
            + "); see docs/operations.md, 'The managed broker'"
        )
    compiler = find_compiler()
    assert compiler is not None  # missing_packages() checked it
    source = source_text()
    target = directory / (file_name or f"baetyl_node_limits-{_build_key(source, compiler)}.so")
    if file_name is None and target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    # Built under a temporary name and renamed, so a concurrent start never loads half a file.
    staged = directory / f".{target.name}.{os.getpid()}.tmp"
    try:
        try:
            result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
                [compiler, *CFLAGS, "-x", "c", "-o", str(staged), "-"],
                input=source,
                capture_output=True,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            message = f"compiling the broker's node-limits plugin failed: {exc}"
            raise PluginBuildError(message) from exc
        if result.returncode != 0:
            output = (result.stderr or result.stdout).decode(errors="replace").strip()
            raise PluginBuildError(
                f"compiling the broker's node-limits plugin failed ({compiler}):\n{output}"
            )
        # Readable by the broker's account, which loads it after dropping privileges.
        staged.chmod(0o644)
        staged.replace(target)
    finally:
        staged.unlink(missing_ok=True)
    if file_name is None:
        for old in directory.glob("baetyl_node_limits-*.so"):
            if old != target:
                old.unlink(missing_ok=True)
    return target


def _build_key(source: bytes, compiler: str) -> str:
    digest = hashlib.sha256(source)
    digest.update(" ".join((compiler, *CFLAGS)).encode())
    for header in (*HEADERS, Path("/usr/include/mosquitto.h")):
        digest.update(header.read_bytes())
    return digest.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    """Build the plugin for an external Mosquitto and print its path."""
    parser = argparse.ArgumentParser(
        prog="python -m cloud.broker.node_limits_plugin",
        description="Build the Mosquitto plugin that caps what nodes may publish (decision #98) "
        "against this machine's Mosquitto headers, and print its path. Load it in the listener "
        "of an external broker as deploy/mosquitto/mosquitto.conf does.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        required=True,
        metavar="FILE",
        help="where to write the shared object, e.g. /etc/baetyl/broker/baetyl_node_limits.so",
    )
    args = parser.parse_args(argv)
    output = args.output.absolute()
    try:
        path = build(output.parent, file_name=output.name)
    except PluginBuildError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
