"""Choosing which installed agent version runs, at every start: one `exec`, at most.

The service unit (and baetyl-init without systemd) always starts the `baetyl-core` of the
virtualenv the node was installed with. That process reads upgrade.json first: if another
version is current, or on trial, it replaces itself with that version's `baetyl-core` (same
pid, same arguments), which does not look again. So the unit never changes when the agent
upgrades, with systemd or without (decision #153).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NoReturn

from agent.core.upgrade import state

log = logging.getLogger(__name__)

LAUNCHED: Final = "BAETYL_CORE_LAUNCHED"
"""Set in the environment of a `baetyl-core` started by another one: it must not hop again."""
PID_FILE: Final = "BAETYL_CORE_PID_FILE"
"""Where a `baetyl-core` started without systemd has its pid written (set by baetyl-init)."""


def chosen_venv(store_dir: Path) -> Path | None:
    """The virtualenv to run from, when it is not this process's own; None to go on here.

    Reads (and clears) LAUNCHED: a process started by a hop, or by an upgrade switch, stays.
    """
    if os.environ.pop(LAUNCHED, None):
        return None
    wanted = state.launch_venv(state.load(state.Paths(store_dir).state_file))
    if wanted is None or _same(wanted, Path(sys.prefix)):
        return None
    return wanted


def exec_core(venv: Path, args: Sequence[str]) -> NoReturn:
    """Become `venv`'s baetyl-core with `args`: the same pid, so systemd and apps see no change."""
    core = venv / "bin" / "baetyl-core"
    os.environ[LAUNCHED] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(core, [str(core), *args])  # noqa: S606 - our own installed script


def _same(one: Path, other: Path) -> bool:
    try:
        return one.resolve() == other.resolve()
    except OSError:
        return False
