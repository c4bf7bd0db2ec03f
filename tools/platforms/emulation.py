"""Running another architecture's programs here: qemu-user through the kernel's binfmt_misc.

Debian's qemu-user-static registers its emulators with binfmt-support under the names
`qemu-<cpu>` (qemu-aarch64, qemu-arm) with the flags `PF`, without `F`: the kernel opens the
interpreter (`/usr/libexec/qemu-binfmt/<cpu>-binfmt-P`, a link to `/usr/bin/qemu-<cpu>-static`)
by its path at every exec, in the root of the process that execs. A foreign rootfs therefore
carries its own copy of the emulator at that same path (`install_into`), so its programs run in a
chroot or a container as well as on the host. Both emulators are static: nothing else is needed
inside.

`ensure(cpu)` makes the registration usable: it mounts binfmt_misc where it is not mounted and
enables the entry with `update-binfmts`. Both change the machine, not only this process (the
registration is the kernel's); both are what `apt-get install qemu-user-static binfmt-support`
does on a machine booted with systemd.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BINFMT = Path("/proc/sys/fs/binfmt_misc")
_TIMEOUT = 30.0

QEMU_CPU = {"arm64": "aarch64", "armhf": "arm"}
"""dpkg architecture → qemu's name for the CPU."""


class EmulationError(RuntimeError):
    """This machine cannot run the architecture's programs; the message says what is missing."""


@dataclass(frozen=True)
class Emulator:
    """An enabled binfmt_misc entry: the interpreter the kernel runs foreign programs with."""

    cpu: str
    interpreter: Path

    @property
    def binary(self) -> Path:
        """The static emulator the interpreter path leads to."""
        return self.interpreter.resolve()


def cpu_of(arch: str) -> str:
    try:
        return QEMU_CPU[arch]
    except KeyError:
        raise EmulationError(
            f"no emulator known for {arch} (known: {', '.join(sorted(QEMU_CPU))})"
        ) from None


def missing_tools(arch: str) -> list[str]:
    """The packages this machine lacks to emulate `arch` (empty: none)."""
    cpu = cpu_of(arch)
    missing = []
    if not Path(f"/usr/bin/qemu-{cpu}-static").is_file():
        missing.append(f"qemu-{cpu}-static (apt-get install qemu-user-static)")
    if shutil.which("update-binfmts") is None:
        missing.append("update-binfmts (apt-get install binfmt-support)")
    return missing


def ensure(arch: str) -> Emulator:
    """The enabled emulator of `arch`: binfmt_misc mounted and its entry enabled first if needed."""
    cpu = cpu_of(arch)
    missing = missing_tools(arch)
    if missing:
        raise EmulationError("cannot emulate " + arch + "; missing: " + "; ".join(missing))
    if not (BINFMT / "register").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], "mount binfmt_misc")
    entry = BINFMT / f"qemu-{cpu}"
    if not _enabled(entry):
        _run(["update-binfmts", "--enable", f"qemu-{cpu}"], f"update-binfmts --enable qemu-{cpu}")
    if not _enabled(entry):
        raise EmulationError(f"{entry} is still not enabled after update-binfmts --enable")
    interpreter = _interpreter(entry)
    if not interpreter.is_file():
        raise EmulationError(f"{entry} names {interpreter}, which does not exist")
    return Emulator(cpu, interpreter)


def install_into(emulator: Emulator, rootfs: Path) -> None:
    """Copy the emulator into `rootfs` at the path the kernel looks for it (see the module doc)."""
    binary = emulator.binary
    inside_binary = rootfs / binary.relative_to("/")
    inside_binary.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, inside_binary)
    inside = rootfs / emulator.interpreter.relative_to("/")
    inside.parent.mkdir(parents=True, exist_ok=True)
    if inside.is_symlink() or inside.exists():
        inside.unlink()
    if emulator.interpreter.is_symlink():
        inside.symlink_to(emulator.interpreter.readlink())
    else:
        shutil.copy2(emulator.interpreter, inside)


def _enabled(entry: Path) -> bool:
    try:
        return entry.read_text(encoding="ascii").splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        return False


def _interpreter(entry: Path) -> Path:
    for line in entry.read_text(encoding="ascii").splitlines():
        if line.startswith("interpreter "):
            return Path(line.split(None, 1)[1])
    raise EmulationError(f"{entry} names no interpreter")


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(  # noqa: S603 - fixed programs, our arguments
            argv, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmulationError(f"{what} failed: {exc}") from exc
    if result.returncode != 0:
        raise EmulationError(f"{what} failed ({result.returncode}): {result.stderr.strip()}")
