"""Agent self-upgrade, as the running agent sees it: the cloud's wish, the preparation, the switch
and the confirmation (docs/agent.md, "Upgrades"; decision #153).

1. The desired `core` entry names a `version` other than this one, with its `wheel` (a URL on
   the cloud and a sha256). A wheel that failed before is not tried again.
2. The wheel is downloaded through the object cache (digest-checked), a virtualenv of the new
   version is made beside this one and checked (`prepare`). Any failure is reported as `failed`
   and this version simply keeps running.
3. The switch: upgrade.json records the trial (new virtualenv, deadline, this version as the one
   to go back to), the rollback guard of *this* version is started, the agent stops as it does
   for SIGTERM (apps keep running) and `baetyl-core` replaces itself with the new version's.
4. The new version adopts the apps, connects, and once the cloud accepted a report of its version
   it confirms the trial; the guard then ends. If it does not, the guard rolls it back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import psutil

from agent.contracts.core_settings import CoreSettings
from agent.contracts.objects import ObjectItem
from agent.contracts.report import UpgradeStatus
from agent.contracts.version import VERSION
from agent.core.objects import ObjectCache, ObjectError
from agent.core.upgrade import prepare, state
from agent.core.upgrade.guard import systemd_unit
from agent.core.upgrade.launcher import PID_FILE

log = logging.getLogger(__name__)
WHEELS_DIR: Final = ".wheels"


@dataclass(frozen=True)
class UpgradeSettings:
    """core.yml `upgrade`, with what the agent knows of itself."""

    store_dir: Path
    config_file: Path
    confirm_timeout: float
    """Seconds a new version has to connect and report before it is rolled back."""
    extras: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Target:
    version: str
    settings: CoreSettings


class Upgrader:
    """Owned by the Core: `want` on every desired change, `run` as a root task."""

    def __init__(
        self,
        settings: UpgradeSettings,
        objects: ObjectCache,
        *,
        changed: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._paths = state.Paths(settings.store_dir)
        self._objects = objects
        self._changed = changed
        self._state = state.UpgradeFile()
        self._wanted: _Target | None = None
        self._wake = asyncio.Event()
        self.switch_to: Path | None = None
        """The virtualenv to become once the agent stopped; set with `switching`."""
        self.switching = asyncio.Event()
        self._confirming = False
        self._confirm = False

    async def load(self) -> None:
        """Read upgrade.json; a trial of this very version is now waiting to be confirmed."""
        self._state = await asyncio.to_thread(state.load, self._paths.state_file)
        trial = self._state.trial
        if trial is None:
            await self._prune()  # e.g. the virtualenv of a version that was just rolled back
        if trial is not None and trial.version == VERSION and _here(Path(trial.venv)):
            self._confirming = True
            log.info(
                "running a new agent version on trial; confirming once the cloud has its report",
                extra={"version": VERSION, "previous": trial.previous.version},
            )

    def status(self) -> UpgradeStatus | None:
        """`core.upgrade` for the report."""
        kept = self._state.status
        if kept is None:
            return None
        return UpgradeStatus(
            version=kept.version,
            state=kept.state,
            previous=kept.previous,
            message=kept.message,
            time=kept.time,
        )

    def want(self, settings: CoreSettings) -> None:
        """The cloud's desired `core` entry changed: start an upgrade if it asks for one."""
        version = settings.version
        if version is None or version == VERSION:
            self._wanted = None
            return
        if self._wanted is not None and self._wanted.settings == settings:
            return
        self._wanted = _Target(version, settings)
        self._wake.set()

    def retry(self) -> None:
        """The link came up: an upgrade whose download failed is tried again."""
        if self._wanted is not None:
            self._wake.set()

    def accepted(self, reported: Mapping[str, Any]) -> None:
        """The cloud accepted a report; if it shows this version, a trial is confirmed."""
        if not self._confirming:
            return
        core = reported.get("core")
        if isinstance(core, Mapping) and core.get("version") == VERSION:
            self._confirming = False
            self._confirm = True
            self._wake.set()

    async def run(self) -> None:
        """Root task: confirm a trial, and carry out each upgrade the cloud asks for."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._confirm:
                self._confirm = False
                await self._confirmed()
            target = self._wanted
            if target is None or self.switching.is_set():
                continue
            await self._upgrade(target)

    async def _confirmed(self) -> None:
        self._state = state.confirmed(self._state)
        await asyncio.to_thread(state.save, self._paths.state_file, self._state)
        log.info("agent upgrade confirmed", extra={"version": VERSION})
        await self._prune()
        self._changed()

    async def _prune(self) -> None:
        """Remove the virtualenvs of versions neither current, previous nor running."""
        kept = [Path(i.venv) for i in (self._state.current, self._state.previous) if i]
        kept.append(Path(sys.prefix))
        removed = await asyncio.to_thread(prepare.prune, self._paths.versions_dir, kept)
        if removed:
            log.info("old agent versions removed", extra={"removed": removed})

    async def _upgrade(self, target: _Target) -> None:
        wheel = target.settings.wheel
        if wheel is None:
            await self._set(target.version, "failed", "the cloud named no wheel for this version")
            return
        if wheel.sha256 in self._state.failed:
            log.info(
                "not trying again an agent wheel that failed",
                extra={"version": target.version, "reason": self._state.failed[wheel.sha256]},
            )
            return
        source = prepare.running_venv()
        if source is None:
            await self._fail(
                target,
                wheel.sha256,
                "this agent does not run from an installed virtualenv (a source checkout?); "
                "install the node with the install command to upgrade it",
            )
            return
        await self._set(target.version, "preparing")
        log.info("upgrading the agent", extra={"version": target.version, "from": VERSION})
        try:
            venv = await self._prepare(target, source)
        except ObjectError as exc:
            # The download, not the version, failed: tried again at the next connect or start.
            message = f"the wheel could not be downloaded: {exc}"
            log.error(  # noqa: TRY400 - the reason is in the message; no traceback
                "agent upgrade failed", extra={"version": target.version, "error": message}
            )
            await self._set(target.version, "failed", message)
            return
        except prepare.PrepareError as exc:
            await self._fail(target, wheel.sha256, str(exc))
            return
        if self._wanted != target:
            return  # the cloud changed its mind meanwhile; the next wake handles it
        trial = state.Trial(
            version=target.version,
            venv=str(venv),
            sha256=wheel.sha256,
            deadline=time.time() + self._settings.confirm_timeout,
            previous=state.Installed(version=VERSION, venv=str(source)),
        )
        self._state = self._state.model_copy(
            update={
                "trial": trial,
                "status": state.status(target.version, "switching", previous=VERSION),
            }
        )
        await asyncio.to_thread(state.save, self._paths.state_file, self._state)
        await asyncio.to_thread(self._start_guard)
        log.info("switching to the new agent version", extra={"version": target.version})
        self.switch_to = venv
        self.switching.set()

    async def _prepare(self, target: _Target, source: Path) -> Path:
        wheel = target.settings.wheel
        assert wheel is not None
        name = Path(urlsplit(wheel.url).path).name
        versions = self._paths.versions_dir
        # Pinned: no configuration names the wheel, so the engine's prune would delete it.
        with self._objects.pinned(wheel):
            try:
                copied = await self._copied(wheel, versions / WHEELS_DIR / name)
            except FileNotFoundError:
                # Pruned between a prune's look and the pin: downloaded again, pinned now.
                copied = await self._copied(wheel, versions / WHEELS_DIR / name)
        request = prepare.Request(
            wheel=copied,
            version=target.version,
            sha256=wheel.sha256,
            versions_dir=versions,
            source_venv=source,
            config_file=self._settings.config_file,
            extras=self._settings.extras,
        )
        try:
            return await asyncio.to_thread(prepare.prepare, request, _progress(target.version))
        finally:
            await asyncio.to_thread(copied.unlink, missing_ok=True)

    async def _copied(self, wheel: ObjectItem, target: Path) -> Path:
        downloaded = await self._objects.ensure(wheel)
        return await asyncio.to_thread(
            prepare.copy_wheel, downloaded, target.parent, target.name, wheel.sha256
        )

    def _start_guard(self) -> None:
        """The rollback guard of this version, in its own session (it must outlive us)."""
        me = psutil.Process()
        argv = [
            sys.executable, "-m", "agent.core.upgrade.guard",
            "--state", str(self._paths.state_file),
            "--pid", str(me.pid),
            "--started", repr(me.create_time()),
            "--config", str(self._settings.config_file),
        ]  # fmt: skip
        unit = systemd_unit()
        if unit:
            argv += ["--unit", unit]
        pid_file = os.environ.get(PID_FILE)
        if pid_file:
            argv += ["--pid-file", pid_file]
        # Its output goes where ours goes (core.log, or the journal): one log of the upgrade.
        os.posix_spawn(sys.executable, argv, dict(os.environ), setsid=True)

    async def _fail(self, target: _Target, sha256: str, message: str) -> None:
        log.error("agent upgrade failed", extra={"version": target.version, "error": message})
        self._state = self._state.model_copy(
            update={"failed": {**self._state.failed, sha256: message}}
        )
        await self._set(target.version, "failed", message)

    async def _set(self, version: str, phase: state.State, message: str = "") -> None:
        self._state = self._state.model_copy(
            update={"status": state.status(version, phase, previous=VERSION, message=message)}
        )
        await asyncio.to_thread(state.save, self._paths.state_file, self._state)
        self._changed()


def _here(venv: Path) -> bool:
    try:
        return venv.resolve() == Path(sys.prefix).resolve()
    except OSError:
        return False


def _progress(version: str) -> Callable[[str], None]:
    def say(step: str) -> None:
        log.info("upgrade step", extra={"version": version, "step": step})

    return say
