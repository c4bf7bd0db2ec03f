"""The Baetyl-Py release, read once from the installed package metadata.

It travels on the wire (presence, `core.version` in reports), hence its place in the contract.
"""

from __future__ import annotations

from importlib import metadata


def _read() -> str:
    try:
        return metadata.version("baetyl-py")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


VERSION = _read()
