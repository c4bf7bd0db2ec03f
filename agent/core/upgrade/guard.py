"""The rollback guard: a small process of the *previous* version that watches a new one's trial.

The agent that switches starts it just before replacing itself with the new version. The guard
runs the old, known-good code, so a new version that cannot even start, that crashes, or that
runs but never connects and reports cannot keep the node from coming back. It ends when:
- the trial is confirmed (the new agent wrote that into upgrade.json): nothing to do;
- the agent process exits before confirming, or the deadline passes: the trial is rolled back
  in upgrade.json and the previous version is started again — by systemd (`systemctl restart`
  of the unit, whose start runs the launcher) or, without systemd, by the guard itself, in its
  own session, with the pid file updated. Apps keep running either way; the agent adopts them.

Run as `python -m agent.core.upgrade.guard --help`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import psutil

from agent.contracts.kit.files import atomic_write
from agent.core import logsetup
from agent.core.upgrade import state
from agent.core.upgrade.launcher import LAUNCHED

log = logging.getLogger("agent.core.upgrade.guard")
POLL: Final = 0.5
STOP_GRACE: Final = 20.0
SYSTEMCTL_TIMEOUT: Final = 60.0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m agent.core.upgrade.guard",
        description=(
            "Watch a new baetyl-core version's trial and roll it back if it exits or does not "
            "connect and report before the deadline. Started by baetyl-core when it upgrades."
        ),
    )
    parser.add_argument("--state", type=Path, required=True, help="upgrade.json")
    parser.add_argument("--pid", type=int, required=True, help="the agent process on trial")
    parser.add_argument("--started", type=float, required=True, help="its psutil create time")
    parser.add_argument("--config", type=Path, required=True, help="the agent's core.yml")
    parser.add_argument("--unit", default="", help="the systemd unit the agent runs in, if any")
    parser.add_argument("--pid-file", type=Path, default=None, help="the agent's pid file, if any")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logsetup.configure("info", "json")
    trial = state.load(args.state).trial
    if trial is None:
        log.info("no upgrade on trial; nothing to guard")
        return 0
    reason = _watch(args, trial)
    if reason is None:
        log.info("the new agent version confirmed itself", extra={"version": trial.version})
        return 0
    current = state.load(args.state)
    if current.trial is None or current.trial.sha256 != trial.sha256:
        return 0  # confirmed at the last moment
    state.save(args.state, state.rolled_back(current, reason))
    log.warning(
        "rolling the agent back",
        extra={"version": trial.version, "back_to": trial.previous.version, "reason": reason},
    )
    if args.unit:
        _systemctl_restart(args.unit)
    else:
        _stop(args.pid, args.started)
        _start_previous(Path(trial.previous.venv), args.config, args.pid_file)
    return 0


def _watch(args: argparse.Namespace, trial: state.Trial) -> str | None:
    """None once the trial is confirmed; else why it failed."""
    left = trial.deadline - time.time()
    limit = time.monotonic() + max(0.0, left)
    while True:
        now = state.load(args.state)
        if now.trial is None or now.trial.sha256 != trial.sha256:
            return None
        if not _alive(args.pid, args.started):
            return f"version {trial.version} exited before it connected and reported"
        if time.monotonic() >= limit:
            return (
                f"version {trial.version} did not connect and report within {max(0.0, left):.0f} s"
            )
        time.sleep(POLL)


def _alive(pid: int, started: float) -> bool:
    try:
        process = psutil.Process(pid)
        return (
            abs(process.create_time() - started) < 1.0 and process.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.Error:
        return False


def _stop(pid: int, started: float) -> None:
    """SIGTERM to the agent on trial, SIGKILL after STOP_GRACE; its apps are not touched."""
    if not _alive(pid, started):
        return
    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGTERM)
        process.wait(STOP_GRACE)
    except psutil.TimeoutExpired:
        log.warning("the agent did not stop in time; killing it", extra={"pid": pid})
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            return
    except psutil.Error:
        return


def _start_previous(venv: Path, config: Path, pid_file: Path | None) -> None:
    """The previous version's baetyl-core, detached, writing where this guard writes."""
    core = venv / "bin" / "baetyl-core"
    env = {key: value for key, value in os.environ.items() if key != LAUNCHED}
    process = subprocess.Popen(  # noqa: S603 - our own installed script
        [str(core), "-c", str(config)],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    if pid_file is not None:
        atomic_write(pid_file, f"{process.pid}\n".encode("ascii"), mode=0o644)
    log.info("previous agent version started", extra={"pid": process.pid, "venv": str(venv)})


def _systemctl_restart(unit: str) -> None:
    try:
        subprocess.run(  # noqa: S603 - fixed arguments
            ["systemctl", "restart", "--no-block", unit],  # noqa: S607 - systemctl from PATH
            check=True,
            timeout=SYSTEMCTL_TIMEOUT,
            capture_output=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.error(  # noqa: TRY400 - the reason is in the message; no traceback
            "could not restart the unit", extra={"unit": unit, "error": str(exc)}
        )


def systemd_unit() -> str:
    """The systemd service this process runs in, or '' when systemd did not start it."""
    if not os.environ.get("INVOCATION_ID"):
        return ""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines()
    except OSError:
        return ""
    for line in lines:
        name = line.rsplit("/", 1)[-1]
        if name.endswith(".service"):
            return name
    return ""


if __name__ == "__main__":
    sys.exit(main())
