"""What the backend remembers across agent restarts, written atomically at every change.

`<state>/instances.json` is small and rewritten often: per app the target version, whether it is
being removed, one record per instance (pid and start time for adoption, port, directories,
restart counters, phase) and a cronjob app's schedule state. `<state>/specs/<app>/<version>.json`
holds each deployment (spec, configurations, secrets) once per version, so that instances can be
restarted or added after an agent restart before the engine applies anything. Both are
owner-only (secrets are in there, as they are in the agent's local store).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.contracts.kit import files
from agent.contracts.wire import PayloadError
from agent.core.backend import Deployment

log = logging.getLogger(__name__)

FORMAT = 1
INSTANCES_FILE = "instances.json"
SPECS_DIR = "specs"


@dataclass(frozen=True)
class InstanceRecord:
    """One instance as remembered: enough to adopt or restart it."""

    version: str
    service: str
    index: int
    port: int | None
    directory: str
    phase: str
    pid: int | None = None
    create_time: float | None = None
    start_ticks: int | None = None
    boot_id: str = ""
    restarts: int = 0
    streak: int = 0
    failures: int = 0
    cause: str = ""
    init: bool = False
    ready: bool = False
    """Passing its readiness probe when recorded: an adopted instance keeps serving (listed in
    the proxy's registry) until its probe says otherwise, so an agent restart drops no call."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in instances.json."""
        return {
            "version": self.version,
            "service": self.service,
            "index": self.index,
            "port": self.port,
            "dir": self.directory,
            "phase": self.phase,
            "pid": self.pid,
            "createTime": self.create_time,
            "startTicks": self.start_ticks,
            "bootId": self.boot_id,
            "restarts": self.restarts,
            "streak": self.streak,
            "failures": self.failures,
            "cause": self.cause,
            "init": self.init,
            "ready": self.ready,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> InstanceRecord:
        """Parse one record; KeyError/TypeError/ValueError when it is malformed."""
        return cls(
            version=str(value["version"]),
            service=str(value["service"]),
            index=int(value["index"]),
            port=None if value.get("port") is None else int(value["port"]),
            directory=str(value["dir"]),
            phase=str(value["phase"]),
            pid=None if value.get("pid") is None else int(value["pid"]),
            create_time=None if value.get("createTime") is None else float(value["createTime"]),
            start_ticks=None if value.get("startTicks") is None else int(value["startTicks"]),
            boot_id=str(value.get("bootId", "")),
            restarts=int(value.get("restarts", 0)),
            streak=int(value.get("streak", 0)),
            failures=int(value.get("failures", 0)),
            cause=str(value.get("cause", "")),
            init=bool(value.get("init", False)),
            ready=bool(value.get("ready", False)),
        )


@dataclass(frozen=True)
class CronRecord:
    """A cronjob app's schedule as remembered (agent.core.native.cronjob): what has been dealt
    with, the run going on, and what the status reports of past runs."""

    schedule: str
    watermark: datetime
    """Every time of `schedule` up to here has been run, skipped or counted as missed."""
    active: datetime | None = None
    """The scheduled time of the run going on (resumed and adopted after an agent restart)."""
    active_version: str = ""
    last_schedule: datetime | None = None
    last_successful: datetime | None = None
    last_result: str = ""
    last_cause: str = ""
    skipped: int = 0
    missed: int = 0

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in instances.json."""
        return {
            "schedule": self.schedule,
            "watermark": self.watermark.isoformat(),
            "active": _time_text(self.active),
            "activeVersion": self.active_version,
            "lastSchedule": _time_text(self.last_schedule),
            "lastSuccessful": _time_text(self.last_successful),
            "lastResult": self.last_result,
            "lastCause": self.last_cause,
            "skipped": self.skipped,
            "missed": self.missed,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> CronRecord:
        """Parse `to_json`'s value; KeyError/TypeError/ValueError when it is malformed."""
        watermark = _time(value["watermark"])
        if watermark is None:
            raise ValueError("a cron record needs its watermark")
        return cls(
            schedule=str(value["schedule"]),
            watermark=watermark,
            active=_time(value.get("active")),
            active_version=str(value.get("activeVersion", "")),
            last_schedule=_time(value.get("lastSchedule")),
            last_successful=_time(value.get("lastSuccessful")),
            last_result=str(value.get("lastResult", "")),
            last_cause=str(value.get("lastCause", "")),
            skipped=int(value.get("skipped", 0)),
            missed=int(value.get("missed", 0)),
        )


def _time_text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _time(value: object) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"time without a time zone: {value!r}")
    return moment


@dataclass(frozen=True)
class AppRecord:
    """One app as remembered."""

    target: str
    removing: bool = False
    init_done: bool = False
    instances: tuple[InstanceRecord, ...] = field(default_factory=tuple)
    cron: CronRecord | None = None
    """A cronjob app's schedule state."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in instances.json."""
        value: dict[str, Any] = {
            "target": self.target,
            "removing": self.removing,
            "initDone": self.init_done,
            "instances": [record.to_json() for record in self.instances],
        }
        if self.cron is not None:
            value["cron"] = self.cron.to_json()
        return value


class Bookkeeping:
    """Reads and writes the state directory. Blocking methods: call them from a thread."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._last: dict[str, Any] | None = None

    def prepare(self) -> None:
        """Create the state directory (owner-only) and drop temporaries of interrupted writes."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        files.remove_stale_temporaries(self.state_dir)

    def load(self) -> dict[str, AppRecord]:
        """The apps remembered; a malformed file or record is logged and skipped, not fatal."""
        try:
            raw = files.read_json(self.state_dir / INSTANCES_FILE)
        except (OSError, ValueError):
            log.exception("native bookkeeping unreadable; starting empty")
            return {}
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            return {}
        apps: dict[str, AppRecord] = {}
        for name, value in dict(raw.get("apps", {})).items():
            try:
                records = tuple(InstanceRecord.from_json(item) for item in value["instances"])
                cron = value.get("cron")
                apps[str(name)] = AppRecord(
                    target=str(value["target"]),
                    removing=bool(value.get("removing", False)),
                    init_done=bool(value.get("initDone", False)),
                    instances=records,
                    cron=None if cron is None else CronRecord.from_json(cron),
                )
            except (KeyError, TypeError, ValueError) as exc:
                log.warning(
                    "skipping a malformed app record", extra={"app": name, "error": str(exc)}
                )
        self._last = raw
        return apps

    def save(self, apps: dict[str, AppRecord]) -> None:
        """Write instances.json atomically, unless it would not change."""
        value = {"format": FORMAT, "apps": {name: app.to_json() for name, app in apps.items()}}
        if value == self._last:
            return
        files.atomic_write_json(self.state_dir / INSTANCES_FILE, value)
        self._last = value

    def spec_path(self, app: str, version: str) -> Path:
        """Where the deployment of `app` at `version` is kept."""
        return self.state_dir / SPECS_DIR / app / f"{version}.json"

    def save_spec(self, deployment: Deployment) -> None:
        """Keep `deployment` (spec, configurations, secrets) for restarts without the engine."""
        value = deployment.to_json()
        path = self.spec_path(deployment.name, deployment.version)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        files.atomic_write_json(path, value)

    def load_spec(self, app: str, version: str) -> Deployment | None:
        """The deployment kept for `app` at `version`, or None (missing or unreadable)."""
        path = self.spec_path(app, version)
        try:
            raw = files.read_json(path)
            if raw is None:
                return None
            return Deployment.from_json(raw)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, PayloadError) as exc:
            log.warning(
                "a kept deployment is unreadable",
                extra={"app": app, "version": version, "error": str(exc)},
            )
            return None

    def remove_specs(self, app: str, *, keep: set[str] | None = None) -> None:
        """Delete the app's kept deployments (all, or all but the versions in `keep`)."""
        directory = self.state_dir / SPECS_DIR / app
        if keep is None:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(directory)
            return
        with contextlib.suppress(FileNotFoundError):
            for path in directory.glob("*.json"):
                if path.stem not in keep:
                    path.unlink()
