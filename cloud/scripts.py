"""The cloud's console scripts, behind a check that the `cloud` extra is installed.

A node installs the same wheel as the cloud but without extras (decision #100): its virtualenv
holds the cloud's code and the `baetyl-cloud` and `baetylctl` scripts, not all their
dependencies (`baetylctl` needs only aiohttp, which nodes have since decision #139). Run where
they are missing, they say which extra to install instead of failing with an import traceback. The
check costs nothing on a full install: it only runs when importing the command fails.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

DISTRIBUTION = "baetyl-py"
EXTRA = "cloud"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def missing_requirements(extra: str = EXTRA) -> list[str]:
    """The distributions `extra` adds that are not installed, as the wheel's metadata lists them.

    Empty when baetyl-py is not installed as a distribution (a bare source tree): then nothing
    says what the extra holds.
    """
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    missing = []
    for requirement in requires:
        spec, _, marker = requirement.partition(";")
        found = _NAME.match(spec.strip())
        if found is None or f'extra == "{extra}"' not in marker.replace("'", '"'):
            continue
        try:
            metadata.distribution(found.group(0))
        except metadata.PackageNotFoundError:
            missing.append(found.group(0))
    return missing


def _refuse(script: str, error: ModuleNotFoundError) -> int:
    missing = missing_requirements()
    if not missing:
        raise error
    sys.stderr.write(
        f"{script}: error: the cloud's dependencies are not installed here ({', '.join(missing)}"
        f"); this looks like a node's installation. Install them with: "
        f"pip install 'baetyl-py[{EXTRA}]'\n"
    )
    return 1


def cloud() -> int:
    """`baetyl-cloud`."""
    try:
        from cloud.cli import main  # noqa: PLC0415 - the import is what may fail
    except ModuleNotFoundError as exc:
        return _refuse("baetyl-cloud", exc)
    return main()


def ctl() -> int:
    """`baetylctl`."""
    try:
        from cloud.ctl import main  # noqa: PLC0415 - the import is what may fail
    except ModuleNotFoundError as exc:
        return _refuse("baetylctl", exc)
    return main()
