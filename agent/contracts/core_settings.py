"""The agent settings the cloud may change at run time: `core` in a node's desired section.

Baetyl's `PUT /v1/nodes/{name}/core/configs` sets how often the agent reports (`frequency`,
seconds) and how much it logs (`logLevel`). The cloud writes them into the desired section under
`core`; the agent applies them without a restart and reports them back under reported `core`,
so the delta closes once they are in force (DESIGN §5, docs/agent.md, decision #146).

Reading is lenient, as for the rest of the desired section: a value out of range is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

CORE: Final = "core"
FREQUENCY: Final = "frequency"
LOG_LEVEL: Final = "logLevel"
LOG_LEVELS: Final = ("debug", "info", "warn", "error")
MIN_FREQUENCY: Final = 1
MAX_FREQUENCY: Final = 300
"""Baetyl's range of `frequency`, seconds."""


@dataclass(frozen=True, slots=True)
class CoreSettings:
    """What the cloud wants of the agent itself; None: the agent's own configuration."""

    frequency: int | None = None
    log_level: str | None = None

    @classmethod
    def from_section(cls, value: object) -> CoreSettings:
        """The settings a desired `core` entry holds; malformed values are left out."""
        if not isinstance(value, Mapping):
            return cls()
        frequency = value.get(FREQUENCY)
        level = value.get(LOG_LEVEL)
        return cls(
            frequency=frequency
            if isinstance(frequency, int)
            and not isinstance(frequency, bool)
            and MIN_FREQUENCY <= frequency <= MAX_FREQUENCY
            else None,
            log_level=level if level in LOG_LEVELS else None,
        )

    def to_section(self) -> dict[str, Any]:
        """The desired `core` entry: the settings given."""
        section: dict[str, Any] = {}
        if self.frequency is not None:
            section[FREQUENCY] = self.frequency
        if self.log_level is not None:
            section[LOG_LEVEL] = self.log_level
        return section
