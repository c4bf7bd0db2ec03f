"""The desired section of a node's shadow, typed (DESIGN §4 "Node shadow content").

Only the cloud writes it: `apps` and `sysapps` map an app's name to the version the node must
run, `nodeprops` maps a node property to the value the cloud wants. The cloud builds it, the
agent reads it; both use this one type and these section names instead of passing
`dict[str, Any]` around and spelling `"apps"` in four places.

Reading is lenient on purpose: an entry that is not a string to a non-empty string is left out,
because one bad entry must not stop a node from running the others (the cloud never writes one;
a node may still hold an old or hand-edited document). Sections this version does not know are
kept by `from_section` in `extra`, so a node that is older than its cloud stores and passes on
what it cannot use yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

APPS: Final = "apps"
SYSAPPS: Final = "sysapps"
NODEPROPS: Final = "nodeprops"
APP_SECTIONS: Final = (APPS, SYSAPPS)
SECTIONS: Final = (APPS, SYSAPPS, NODEPROPS)
BUILTIN_SYSAPPS: Final = ("baetyl-function",)
"""System apps the agent makes itself (agent.core.sysapps); a node's `sysApps` may ask for them."""
BUILTIN_VERSION: Final = "builtin"
"""Their version in a desired state: the agent's own spec is what runs, whatever the cloud's."""

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class DesiredState:
    """What the cloud wants a node to run and to be. Immutable: a change is a new state."""

    apps: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    sysapps: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    nodeprops: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        # A caller's dict is copied behind a read-only view: nobody can change a state in place.
        for name in ("apps", "sysapps", "nodeprops", "extra"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))

    @classmethod
    def from_section(cls, section: Mapping[str, Any] | None) -> DesiredState:
        """The state a shadow's desired section describes; malformed entries are left out."""
        if not section:
            return EMPTY
        return cls(
            apps=_versions(section.get(APPS)),
            sysapps=_versions(section.get(SYSAPPS)),
            nodeprops=_strings(section.get(NODEPROPS)),
            extra=MappingProxyType({k: v for k, v in section.items() if k not in SECTIONS}),
        )

    def app_versions(self) -> dict[str, str]:
        """Every app the state names, user and system, with its version (a system app wins)."""
        return {**self.apps, **self.sysapps}

    def to_section(self) -> dict[str, Any]:
        """The desired section as stored and sent: JSON-ready, empty sections left out."""
        section: dict[str, Any] = dict(self.extra)
        known = ((APPS, self.apps), (SYSAPPS, self.sysapps), (NODEPROPS, self.nodeprops))
        section.update((name, dict(values)) for name, values in known if values)
        return section


def _versions(value: object) -> Mapping[str, str]:
    """`{name: version}` with non-empty string versions only."""
    if not isinstance(value, Mapping):
        return _EMPTY
    kept = {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str) and v}
    return MappingProxyType(kept) if kept else _EMPTY


def _strings(value: object) -> Mapping[str, str]:
    """`{key: value}` with string values only (an empty string is a value)."""
    if not isinstance(value, Mapping):
        return _EMPTY
    kept = {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
    return MappingProxyType(kept) if kept else _EMPTY


EMPTY: Final = DesiredState()
