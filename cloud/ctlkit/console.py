"""The process surroundings a command works with, passed in so tests can supply their own."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO


@dataclass(frozen=True)
class Console:
    """Standard streams and environment of one `baetylctl` run."""

    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def progress(self, message: str) -> None:
        """What a long step is doing, on stderr (stdout stays the command's result)."""
        self.stderr.write(f"{message}\n")

    def warn(self, message: str) -> None:
        """A warning on stderr: the command goes on."""
        self.stderr.write(f"warning: {message}\n")
