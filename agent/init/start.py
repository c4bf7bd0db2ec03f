"""Starting baetyl-core once the node is activated, and waiting until it reached the cloud.

With systemd: a unit rendered for the prefix, enabled and started once. Without (`--no-systemd`,
containers, boards without systemd): baetyl-core detached in its own session, output appended to
`core.log`, its pid in a pid file; a live baetyl-core named by that file is never started twice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from agent.contracts.kit.files import atomic_write
from agent.core.config import CoreConfig
from agent.core.upgrade.launcher import PID_FILE
from agent.init.errors import InitError, NotOnline
from agent.init.files import Layout

SYSTEMD_DIR = Path("/etc/systemd/system")
UNIT_NAME = "baetyl-core.service"
LINK_UP_LINE = "cloud link up"
"""What baetyl-core logs when its MQTT link is up: the fallback sign of life without /health."""
_POLL = 0.5
_PROBE_TIMEOUT = 2.0
_SYSTEMCTL_TIMEOUT = 60.0
_UNIT = """\
# baetyl-core, the Baetyl-Py edge agent, installed by baetyl-init under {prefix}.
# The same choices as deploy/systemd/baetyl-core.service (docs/agent.md, "systemd"): apps are
# the agent's children, so no sandboxing they would inherit, and KillMode=process keeps them
# running across agent restarts.

[Unit]
Description=Baetyl-Py edge agent (baetyl-core)
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart={core} -c {config}
Environment=PYTHONUNBUFFERED=1
Restart=always
RestartSec=5
KillMode=process
KillSignal=SIGTERM
TimeoutStopSec=20
LimitNOFILE=65536
TasksMax=infinity
SyslogIdentifier=baetyl-core

[Install]
WantedBy=multi-user.target
"""


def core_binary() -> Path:
    """baetyl-core of the environment baetyl-init runs from (the installation's virtualenv)."""
    path = Path(sys.executable).parent / "baetyl-core"
    if not os.access(path, os.X_OK):
        raise InitError(f"{path} is missing: the agent package is not installed completely")
    return path


def check_systemd() -> None:
    """InitError unless a systemd unit can be installed and started from here."""
    if shutil.which("systemctl") is None:
        raise InitError("systemctl is not available: pass --no-systemd to run without systemd")
    if os.geteuid() != 0:
        raise InitError(
            "installing the systemd unit needs root: run as root (sudo), "
            "or pass --no-systemd to start baetyl-core as this user"
        )


def unit_text(layout: Layout, core: Path) -> str:
    """The systemd unit of an installation under `layout.prefix`."""
    return _UNIT.format(prefix=layout.prefix, core=core, config=layout.config_file)


def start_systemd(layout: Layout, core: Path) -> None:
    """Install (or update) the unit and make sure the service is enabled and running."""
    unit = SYSTEMD_DIR / UNIT_NAME
    text = unit_text(layout, core)
    changed = not unit.is_file() or unit.read_text(encoding="utf-8") != text
    if not changed:
        _systemctl("enable", "--now", UNIT_NAME)
        return
    atomic_write(unit, text.encode("utf-8"), mode=0o644)
    _systemctl("daemon-reload")
    _systemctl("enable", UNIT_NAME)
    # Starts a new unit once, and a running agent again with the changed unit (`enable --now`
    # followed by `try-restart` started a fresh installation's agent twice within a second).
    _systemctl("restart", UNIT_NAME)


def running_pid(layout: Layout) -> int | None:
    """The pid of the baetyl-core of this installation, if the pid file names a live one."""
    try:
        pid = int(layout.pid_file.read_text(encoding="ascii").strip())
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        command = process.cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    ours = (
        any(Path(part).name == "baetyl-core" for part in command[:2])
        and str(layout.config_file) in command
    )
    return pid if ours else None


def start_detached(layout: Layout, core: Path) -> tuple[int, bool]:
    """(pid, started): baetyl-core in its own session, unless this installation's one runs."""
    pid = running_pid(layout)
    if pid is not None:
        return pid, False
    log = str(layout.core_log)
    pid = os.posix_spawn(
        str(core),
        [str(core), "-c", str(layout.config_file)],
        # The pid file's place goes with it: the rollback guard of an upgrade rewrites it.
        {**os.environ, "PYTHONUNBUFFERED": "1", PID_FILE: str(layout.pid_file)},
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        # Its own session: a Ctrl-C or a closed terminal of the installing shell must not reach it.
        setsid=True,
    )
    atomic_write(layout.pid_file, f"{pid}\n".encode("ascii"), mode=0o644)
    return pid, True


def wait_online(
    layout: Layout,
    config: CoreConfig,
    *,
    pid: int | None,
    timeout: float,
    progress: Callable[[str], None],
) -> None:
    """Return once baetyl-core reports to the cloud; NotOnline if it exits or time runs out.

    The agent's `/health` tells whether the link is up and a report was accepted; without a
    local API (or from an older agent) the log line of the link coming up is the sign.
    """
    deadline = time.monotonic() + timeout
    address = config.api.address
    if address is None and pid is None:
        progress("the local API is off (api.listen: false): cannot tell when the node is online")
        return
    said_waiting = False
    while True:
        if pid is not None and not _alive(pid):
            raise NotOnline(
                f"baetyl-core exited right after starting; its log ({layout.core_log}) ends "
                f"with:\n{_tail(layout.core_log)}"
            )
        health = _health(address) if address is not None else None
        cloud = health.get("cloud") if health is not None else None
        if isinstance(cloud, dict):
            if cloud.get("connected") and int(cloud.get("reports") or 0) >= 1:
                return
        elif pid is not None and LINK_UP_LINE in _read(layout.core_log):
            return
        if not said_waiting and health is not None:
            progress("baetyl-core is running; waiting for it to reach the cloud")
            said_waiting = True
        if time.monotonic() >= deadline:
            raise NotOnline(_not_online(layout, config, timeout, running=health is not None))
        time.sleep(_POLL)


def stop_detached(layout: Layout, *, timeout: float = 15.0) -> bool:
    """SIGTERM this installation's detached baetyl-core and wait for it; False if none ran."""
    pid = running_pid(layout)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
    return True


def _not_online(layout: Layout, config: CoreConfig, timeout: float, *, running: bool) -> str:
    where = (
        f"its log: {layout.core_log}"
        if layout.core_log.exists()
        else "its log: journalctl -u baetyl-core"
    )
    state = "runs but has not" if running else "has not answered on its local API and has not"
    return (
        f"baetyl-core {state} reached the cloud within {timeout:.0f} s. Check that the broker "
        f"{config.cloud.mqtt} is reachable from this machine (firewall, DNS, port), and read "
        f"{where}. The node stays installed: once the broker is reachable it connects by itself"
    )


def _health(address: tuple[str, int]) -> dict[str, Any] | None:
    host, port = address
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - compared, not bound
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    try:
        with urllib.request.urlopen(
            f"http://{shown}:{port}/health", timeout=_PROBE_TIMEOUT
        ) as response:
            data = json.loads(response.read(64 * 1024))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        reaped = 0  # not our child (an earlier run started it)
    if reaped == pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(_read(path).splitlines()[-lines:]) or "(empty)"


def _systemctl(*args: str) -> None:
    try:
        subprocess.run(  # noqa: S603 - fixed arguments
            ["systemctl", *args],  # noqa: S607 - systemctl is looked up on PATH on purpose
            check=True,
            capture_output=True,
            text=True,
            timeout=_SYSTEMCTL_TIMEOUT,
        )
    except subprocess.CalledProcessError as exc:
        raise InitError(
            f"systemctl {' '.join(args)} failed: {exc.stderr.strip() or exc.returncode}"
        ) from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InitError(f"systemctl {' '.join(args)} failed: {exc}") from None
