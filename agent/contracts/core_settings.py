"""The agent settings the cloud may change at run time: `core` in a node's desired section.

Baetyl's `PUT /v1/nodes/{name}/core/configs` sets how often the agent reports (`frequency`,
seconds), how much it logs (`logLevel`) and which agent version runs (`version`). The cloud
writes them into the desired section under `core`; the agent applies the first two without a
restart and reports them back under reported `core`, so the delta closes once they are in
force (DESIGN §5, docs/agent.md, decision #146). A `version` other than the running one comes
with `wheel`, the object item of that version's wheel (its URL on the cloud and its sha256):
the agent upgrades itself to it (decision #153).

Reading is lenient, as for the rest of the desired section: a value out of range is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from agent.contracts.objects import ObjectItem

CORE: Final = "core"
FREQUENCY: Final = "frequency"
LOG_LEVEL: Final = "logLevel"
VERSION_KEY: Final = "version"
WHEEL: Final = "wheel"
LOG_LEVELS: Final = ("debug", "info", "warn", "error")
MIN_FREQUENCY: Final = 1
MAX_FREQUENCY: Final = 300
"""Baetyl's range of `frequency`, seconds."""
MAX_VERSION_LENGTH: Final = 64


@dataclass(frozen=True, slots=True)
class CoreSettings:
    """What the cloud wants of the agent itself; None: the agent's own configuration."""

    frequency: int | None = None
    log_level: str | None = None
    version: str | None = None
    wheel: ObjectItem | None = None
    """The wheel of `version`, present when that is not the version the node runs."""

    @classmethod
    def from_section(cls, value: object) -> CoreSettings:
        """The settings a desired `core` entry holds; malformed values are left out."""
        if not isinstance(value, Mapping):
            return cls()
        frequency = value.get(FREQUENCY)
        level = value.get(LOG_LEVEL)
        version = value.get(VERSION_KEY)
        return cls(
            frequency=frequency
            if isinstance(frequency, int)
            and not isinstance(frequency, bool)
            and MIN_FREQUENCY <= frequency <= MAX_FREQUENCY
            else None,
            log_level=level if level in LOG_LEVELS else None,
            version=version
            if isinstance(version, str) and 0 < len(version) <= MAX_VERSION_LENGTH
            else None,
            wheel=_wheel(value.get(WHEEL)),
        )

    def to_section(self) -> dict[str, Any]:
        """The desired `core` entry: the settings given."""
        section: dict[str, Any] = {}
        if self.frequency is not None:
            section[FREQUENCY] = self.frequency
        if self.log_level is not None:
            section[LOG_LEVEL] = self.log_level
        if self.version is not None:
            section[VERSION_KEY] = self.version
        if self.wheel is not None:
            section[WHEEL] = self.wheel.to_wire()
        return section


def _wheel(value: object) -> ObjectItem | None:
    """The wheel item, if it is a downloadable file with a sha256 (else it is left out)."""
    if not isinstance(value, Mapping):
        return None
    try:
        item = ObjectItem.model_validate(dict(value))
    except ValidationError:
        return None
    return item if item.url and item.sha256 and not item.archive else None
