"""What the node knows of agent upgrades, in one file both agent versions and the guard read.

`upgrade.json` in the store directory says which virtualenv runs the agent (`current`), which
ran before (`previous`), which is on trial (`trial`: switched to, not yet confirmed, with a
deadline), which wheels failed (never tried again) and the last status reported to the cloud.

Three processes read and write it, never at the same time in practice: the agent (prepares,
starts a trial, confirms it), the guard (rolls a trial back) and the launcher (picks the
virtualenv at start). Writes are atomic, so a reader sees the old or the new content. The file
format is shared by every version from this one on: fields are only ever added.
Blocking calls: async callers use `asyncio.to_thread`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.contracts.kit.files import atomic_write

log = logging.getLogger(__name__)

STATE_FILE: Final = "upgrade.json"
VERSIONS_DIR: Final = "versions"
State = Literal["preparing", "switching", "done", "failed", "rolledBack"]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Installed(_Lenient):
    """One agent version in its virtualenv."""

    version: str
    venv: str


class Trial(_Lenient):
    """A version switched to and not confirmed yet."""

    version: str
    venv: str
    sha256: str
    deadline: float
    """Wall-clock time (epoch seconds) by which it must have connected and reported."""
    previous: Installed


class Status(_Lenient):
    """The last upgrade tried, as `core.upgrade` reports it."""

    version: str
    state: State
    previous: str = ""
    message: str = ""
    time: str = ""


class UpgradeFile(_Lenient):
    """The content of upgrade.json."""

    current: Installed | None = None
    previous: Installed | None = None
    trial: Trial | None = None
    failed: dict[str, str] = Field(default_factory=dict)
    """sha256 of a wheel → why it failed; such a wheel is not tried again."""
    status: Status | None = None


@dataclass(frozen=True)
class Paths:
    """Where the upgrade files of an installation are: beside the agent's store."""

    store_dir: Path

    @property
    def state_file(self) -> Path:
        """upgrade.json (0600)."""
        return self.store_dir / STATE_FILE

    @property
    def versions_dir(self) -> Path:
        """The virtualenvs of upgraded versions, one directory per version."""
        return self.store_dir.parent / VERSIONS_DIR


def load(path: Path) -> UpgradeFile:
    """The state in `path`; an absent, unreadable or malformed file reads as no upgrade at all.

    A damaged file must never stop the agent from starting: it then runs from the virtualenv
    it was started from, which is what the service unit names.
    """
    try:
        raw: Any = json.loads(path.read_bytes())
        return UpgradeFile.model_validate(raw)
    except FileNotFoundError:
        return UpgradeFile()
    except (OSError, ValueError, ValidationError) as exc:
        log.warning(
            "upgrade state unreadable; ignoring it", extra={"file": str(path), "error": str(exc)}
        )
        return UpgradeFile()


def save(path: Path, state: UpgradeFile) -> None:
    """Write `state` atomically (owner-only)."""
    atomic_write(path, state.model_dump_json(exclude_none=True).encode())


def now_text() -> str:
    """The time now, RFC 3339 UTC to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def status(version: str, state: State, *, previous: str = "", message: str = "") -> Status:
    """A status stamped with the time now."""
    return Status(version=version, state=state, previous=previous, message=message, time=now_text())


def launch_venv(state: UpgradeFile, *, now: float | None = None) -> Path | None:
    """The virtualenv the agent should run from, or None for the one it was started from.

    A trial runs until its deadline; after it, the trial is over whoever ends it (the guard
    normally does), and the current version runs. A virtualenv that is gone is never chosen.
    """
    moment = time.time() if now is None else now
    if state.trial is not None and moment < state.trial.deadline:
        chosen = Path(state.trial.venv)
    elif state.trial is not None:
        chosen = Path(state.trial.previous.venv)
    elif state.current is not None:
        chosen = Path(state.current.venv)
    else:
        return None
    return chosen if (chosen / "bin" / "baetyl-core").is_file() else None


def rolled_back(state: UpgradeFile, reason: str) -> UpgradeFile:
    """`state` with its trial ended as a failure: the previous version is current again."""
    trial = state.trial
    if trial is None:
        return state
    return state.model_copy(
        update={
            "trial": None,
            "current": trial.previous,
            "failed": {**state.failed, trial.sha256: reason},
            "status": status(
                trial.version, "rolledBack", previous=trial.previous.version, message=reason
            ),
        }
    )


def confirmed(state: UpgradeFile) -> UpgradeFile:
    """`state` with its trial made current, the version it replaced kept as previous."""
    trial = state.trial
    if trial is None:
        return state
    return state.model_copy(
        update={
            "trial": None,
            "current": Installed(version=trial.version, venv=trial.venv),
            "previous": trial.previous,
            "status": status(trial.version, "done", previous=trial.previous.version),
        }
    )
