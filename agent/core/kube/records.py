"""The deployments the kube backend has applied, kept across agent restarts.

`<state>/apps.json` holds, per app, the deployment (spec, configurations, secrets) last applied.
From it the backend renders the same objects again after a restart, which lets it repair drift at
once and re-apply without changing anything that runs (server-side apply of an identical object
is a no-op). Owner-only: secrets are in there, as in the agent's local store.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.contracts.kit import files
from agent.contracts.wire import PayloadError
from agent.core.backend import Deployment

log = logging.getLogger(__name__)

FORMAT = 1
APPS_FILE = "apps.json"


class AppRecords:
    """Reads and writes `<state>/apps.json`. Blocking methods: call them from a thread."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / APPS_FILE

    def load(self) -> dict[str, Deployment]:
        """The deployments remembered; a malformed file or entry is logged and skipped."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        files.remove_stale_temporaries(self.path.parent)
        try:
            raw = files.read_json(self.path)
        except (OSError, ValueError):
            log.exception("kube bookkeeping unreadable; starting empty")
            return {}
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            return {}
        found: dict[str, Deployment] = {}
        apps = raw.get("apps")
        for name, value in (apps if isinstance(apps, dict) else {}).items():
            try:
                found[str(name)] = Deployment.from_json(value)
            except (KeyError, TypeError, AttributeError, PayloadError) as exc:
                log.warning(
                    "skipping a malformed app record", extra={"app": name, "error": str(exc)}
                )
        return found

    def save(self, apps: dict[str, Deployment]) -> None:
        """Replace the file atomically."""
        value = {"format": FORMAT, "apps": {name: d.to_json() for name, d in apps.items()}}
        files.atomic_write_json(self.path, value)
