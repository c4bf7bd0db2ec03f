"""A new agent version installed beside the running one, and checked, before anything switches.

The new virtualenv starts as a copy of the running one, so every dependency the running agent
has is already there and no package index is needed unless the new version asks for more. The
wheel is then installed over the copy (its console scripts are rewritten for the new place), its
dependencies are completed, and the new `baetyl-core` must print its version and accept this
node's core.yml (`--check`). Only a version that passed all of that is ever switched to; a
failure leaves the running agent as it was and is reported (decision #153).

Blocking (copies, pip): callers run it in a thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent.contracts.kit.files import atomic_write

WHEEL_NAME: Final = re.compile(r"^baetyl_py-[A-Za-z0-9_.+!-]+\.whl$")
STAMP: Final = "wheel.sha256"
"""The sha256 of the wheel a prepared virtualenv was made from, inside it."""
PIP: Final = ("-m", "pip", "install", "--quiet", "--disable-pip-version-check")
_CHECK_TIMEOUT: Final = 120.0
_NOT_INHERITED: Final = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "BAETYL_CORE_LAUNCHED")


class PrepareError(Exception):
    """The new version cannot be installed or does not pass its checks; the message says why."""


@dataclass(frozen=True)
class Request:
    """What to install and where."""

    wheel: Path
    """The downloaded wheel, under its own file name (pip reads the version from it)."""
    version: str
    sha256: str
    versions_dir: Path
    source_venv: Path
    """The running agent's virtualenv, copied as the start of the new one."""
    config_file: Path
    extras: Sequence[str] = ()
    timeout: float = 600.0
    """For each pip run."""


def running_venv() -> Path | None:
    """The virtualenv this agent runs from, if it is an installed one (not a source checkout).

    Upgrading copies this virtualenv, which makes sense only when the agent package sits inside
    it as a regular install, as the install script makes it.
    """
    prefix = Path(sys.prefix)
    if prefix == Path(sys.base_prefix):
        return None
    import agent  # noqa: PLC0415 - where the package was imported from

    location = Path(agent.__file__).resolve()
    return prefix if location.is_relative_to(prefix.resolve()) else None


def prepare(request: Request, progress: Callable[[str], None]) -> Path:
    """The virtualenv of `request.version`, ready to run; PrepareError if it cannot be made."""
    target = request.versions_dir / request.version
    if _stamped(target, request.sha256) and _checked(target, request):
        progress("the virtualenv of this version is already there and passed its checks")
        return target
    # Built in its final place: pip writes that path into the console scripts it installs,
    # so a virtualenv cannot be moved once made. Until the stamp is written it counts as absent.
    shutil.rmtree(target, ignore_errors=True)
    request.versions_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    try:
        progress(f"copying the running virtualenv {request.source_venv}")
        try:
            shutil.copytree(request.source_venv, target, symlinks=True)
        except (OSError, shutil.Error) as exc:
            raise PrepareError(f"could not copy the virtualenv: {exc}") from exc
        (target / STAMP).unlink(missing_ok=True)  # the running one's, if it was upgraded to
        python = target / "bin" / "python"
        wheel = str(request.wheel)
        requirement = f"{wheel}[{','.join(request.extras)}]" if request.extras else wheel
        progress("installing the new wheel into the copy")
        _run([str(python), *PIP, "--force-reinstall", "--no-deps", wheel], request.timeout)
        progress("completing its dependencies")
        _run([str(python), *PIP, requirement], request.timeout)
        progress("checking the new version")
        _check(target, request)
        atomic_write(target / STAMP, request.sha256.encode(), mode=0o644)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def copy_wheel(source: Path, directory: Path, name: str, sha256: str) -> Path:
    """`source` copied to `directory/name`, verified against `sha256` after the copy;
    FileNotFoundError when `source` is gone."""
    if not WHEEL_NAME.match(name):
        raise PrepareError(f"{name!r} is not the file name of an agent wheel")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = directory / name
    try:
        shutil.copyfile(source, target)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise  # the cache entry went away: the caller downloads it again
    except OSError as exc:
        raise PrepareError(f"could not copy the downloaded wheel: {exc}") from exc
    if digest != sha256:
        target.unlink(missing_ok=True)
        raise PrepareError("the wheel changed on the way from the download cache")
    return target


def prune(versions_dir: Path, keep: Sequence[Path]) -> list[str]:
    """Delete the version directories, staging copies and wheels not in `keep`; their names."""
    kept = {path.resolve() for path in keep}
    removed = []
    try:
        entries = list(versions_dir.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.resolve() in kept or not entry.is_dir():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    return removed


def _stamped(venv: Path, sha256: str) -> bool:
    try:
        return (venv / STAMP).read_text(encoding="ascii").strip() == sha256
    except OSError:
        return False


def _checked(venv: Path, request: Request) -> bool:
    """Whether `_check` passes (for a virtualenv prepared earlier)."""
    try:
        _check(venv, request)
    except PrepareError:
        return False
    return True


def _check(venv: Path, request: Request) -> None:
    """The new baetyl-core prints the expected version and accepts this node's core.yml."""
    core = str(venv / "bin" / "baetyl-core")
    shown = _run([core, "--version"], _CHECK_TIMEOUT).split()
    if not shown or shown[-1] != request.version:
        raise PrepareError(
            f"the new agent says it is {' '.join(shown) or 'nothing'}, not {request.version}"
        )
    _run([core, "--check", "-c", str(request.config_file)], _CHECK_TIMEOUT)


def _run(argv: list[str], timeout: float) -> str:
    """Run `argv`; its stdout, or PrepareError with the tail of its output."""
    env = {key: value for key, value in os.environ.items() if key not in _NOT_INHERITED}
    try:
        result = subprocess.run(  # noqa: S603 - our own interpreter and scripts
            argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PrepareError(
            f"{Path(argv[0]).name} {argv[1]} took longer than {timeout:.0f} s"
        ) from exc
    except OSError as exc:
        raise PrepareError(f"could not run {argv[0]}: {exc.strerror or exc}") from exc
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise PrepareError(
            f"{Path(argv[0]).name} {' '.join(argv[1:4])} failed (exit {result.returncode}): "
            + " / ".join(tail)
        )
    return result.stdout
