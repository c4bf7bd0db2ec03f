"""The Baetyl-Py release from the package metadata (function_proxy imports nothing of agent)."""

from __future__ import annotations

from importlib import metadata

try:
    VERSION = metadata.version("baetyl-py")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    VERSION = "0+unknown"
