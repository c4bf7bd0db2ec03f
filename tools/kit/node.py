"""A node installed under a prefix, as `baetyl-install.sh` / `baetyl-init --prefix` lay it out:
where its files are, its processes, running the install command, stopping it all."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from agent.init.files import Layout
from tools.kit import procs
from tools.kit.progress import Progress

INSTALL_LIMIT = 300.0
CORE_STOP = 15.0
APPS_STOP = 12.0


@dataclass(frozen=True)
class NodeInstall:
    """A node installed under `prefix` (without systemd: pid and log files), laid out as
    `baetyl-init` lays it out (`agent.init.files.Layout`, the one place that says where)."""

    prefix: Path

    @property
    def layout(self) -> Layout:
        return Layout(self.prefix)

    @property
    def core_config(self) -> Path:
        return self.layout.config_file

    @property
    def core_log(self) -> Path:
        return self.layout.core_log

    def app_log(self, app: str, instance: str, namespace: str = "default") -> Path:
        """The output of one app instance (`web-1`)."""
        return self.layout.log_dir / namespace / app / f"{instance}.log"

    def core(self) -> psutil.Process | None:
        """The node's running baetyl-core, found by its pid file and its core.yml."""
        config = str(self.core_config)
        return procs.process_from(self.layout.pid_file, program="baetyl-core", marker=config)

    def apps(self) -> list[psutil.Process]:
        """The node's live app instance processes."""
        return procs.app_processes(self.layout.run_dir)

    def stop(self) -> None:
        """Stop baetyl-core, then whatever app processes it left running (blocking)."""
        core = self.core()
        if core is not None:
            procs.stop(core, timeout=CORE_STOP)
        if left := self.apps():
            procs.stop_groups(left, timeout=APPS_STOP)

    async def install(
        self,
        command: str,
        *,
        progress: Progress,
        workdir: Path,
        log: Path,
        env: Mapping[str, str] | None = None,
    ) -> int:
        """Run the cloud's install command here without systemd; its exit code. Lines starting
        with `==>` (the script's steps) and errors are shown, all are appended to `log`."""
        environment = {**(env or os.environ), "BAETYL_PREFIX": str(self.prefix)}
        environment.setdefault("BAETYL_NO_SYSTEMD", "1")
        environment.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache/baetyl-py/pip"))
        environment.pop("VIRTUAL_ENV", None)  # the script makes the node's own virtualenv
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        return await procs.run_streamed(
            ["sh", "-c", command],
            progress=progress,
            limit=INSTALL_LIMIT,
            cwd=workdir,
            env=environment,
            log=log,
            show=lambda line: line.startswith("==>") or "error" in line.lower(),
        )
