"""The Unix side of running Mosquitto as root: the account it runs as, how it is spawned, and
the data-directory permissions that let that account reach its own files and nothing else.

As root, `baetyl-cloud serve` starts the broker as the `mosquitto` system user (Debian's package
creates it): the broker then reads its configuration and TLS copies, owned by that user, after
passing through the cloud's (0700) data directory with group search permission only.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pwd
import signal
import stat
from collections.abc import Callable
from pathlib import Path

from cloud.broker.errors import BrokerError

log = logging.getLogger(__name__)
BROKER_USER = "mosquitto"  # the account Mosquitto drops to as root; its files belong to it
_PR_SET_PDEATHSIG = 1


def broker_account() -> pwd.struct_passwd | None:
    """The account Mosquitto drops to when we are root, None otherwise (it then runs as us)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(BROKER_USER)
    except KeyError:
        raise BrokerError(
            f"running as root, but the system user {BROKER_USER!r} that mosquitto drops to does "
            "not exist: install the Debian package with `apt-get install mosquitto`"
        ) from None


def can_search(account: pwd.struct_passwd, path: Path) -> bool:
    """Whether `account` may pass through the directory `path` (its search bit for them)."""
    info = path.stat()
    if info.st_uid == account.pw_uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in os.getgrouplist(account.pw_name, account.pw_gid):
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def let_search(account: pwd.struct_passwd, data_dir: Path) -> None:
    """Let the broker's account pass through the (0700) data directory, and nothing more.

    Group search permission only: it cannot list the directory, and the cloud's own files in it
    keep their modes.
    """
    if can_search(account, data_dir):
        return
    os.chown(data_dir, -1, account.pw_gid)
    data_dir.chmod(stat.S_IMODE(data_dir.stat().st_mode) | stat.S_IXGRP)
    log.info(
        "gave the broker's group search permission on the data directory",
        extra={"data_dir": str(data_dir), "group_id": account.pw_gid},
    )


def check_reachable(account: pwd.struct_passwd, data_dir: Path, target: Path) -> None:
    """BrokerError naming the first directory above `target` that `account` cannot pass."""
    for directory in (data_dir, *data_dir.parents):
        if not can_search(account, directory):
            mode = stat.S_IMODE(directory.stat().st_mode)
            raise BrokerError(
                f"mosquitto drops to user {account.pw_name!r} when started as root and could not "
                f"reach {target}: {directory} (mode {mode:o}) is closed to it; choose a "
                f"--data-dir it can reach, or run `chmod o+x {directory}`"
            )


def spawn_identity(account: pwd.struct_passwd | None) -> dict[str, object]:
    """Popen's `user`, `group` and `extra_groups` for the broker's account ({} when not root).

    We drop to the broker's account ourselves instead of letting mosquitto do it: the kernel
    clears the parent-death signal when a process changes its user, so it must be set after the
    change (die_with_parent's preexec function runs after Popen's setuid).
    """
    if account is None:
        return {}
    return {
        "user": account.pw_uid,
        "group": account.pw_gid,
        "extra_groups": os.getgrouplist(account.pw_name, account.pw_gid),
    }


def die_with_parent(parent: int) -> Callable[[], None]:
    """The preexec function of the broker: SIGTERM it when the cloud dies (Linux prctl).

    It runs in the forked child before exec, so it only calls prctl and getppid (libc is loaded
    here, in the parent). A cloud that died between fork and prctl is noticed by the parent pid
    having changed; the child then exits instead of starting an orphan broker. The signal is
    sent when the forking thread ends: asyncio forks in the event loop's thread, the main one.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0 or os.getppid() != parent:
            os._exit(1)

    return preexec
