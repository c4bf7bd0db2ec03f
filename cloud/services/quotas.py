"""Namespace quotas: a configured default per quota, overridden per namespace by a store row.

A limit of 0 means unlimited. A create that would go beyond a limit is refused with Baetyl's
`ErrLicenseQuota` before anything is written; callers check inside their transaction, after
locking the namespace, so two concurrent creates cannot both take the last slot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from cloud.errors import QuotaExceeded
from cloud.settings import QuotaDefaults
from cloud.store import quotas as store

NODES: Final = "maxNodeCount"
APPS: Final = "maxAppCount"
QUOTA_NAMES: Final = (NODES, APPS)

_USAGE: dict[str, Callable[[str], Awaitable[int]]] = {
    NODES: store.node_count,
    APPS: store.app_count,
}


@dataclass(frozen=True)
class QuotaState:
    """One quota of a namespace: its limit (0 = unlimited) and how much is used."""

    name: str
    limit: int
    used: int


def _default(defaults: QuotaDefaults, name: str) -> int:
    return defaults.max_node_count if name == NODES else defaults.max_app_count


async def limit_of(defaults: QuotaDefaults, namespace: str, name: str) -> int:
    """The limit that applies to the namespace: its own row, else the configured default."""
    own = await store.overrides(namespace)
    return own.get(name, _default(defaults, name))


async def states(defaults: QuotaDefaults, namespace: str) -> dict[str, QuotaState]:
    """Every quota of the namespace with its usage."""
    own = await store.overrides(namespace)
    result = {}
    for name in QUOTA_NAMES:
        limit = own.get(name, _default(defaults, name))
        result[name] = QuotaState(name, limit, await _USAGE[name](namespace))
    return result


async def check(defaults: QuotaDefaults, namespace: str, name: str, *, adding: int = 1) -> None:
    """QuotaExceeded when adding `adding` more would go beyond the namespace's limit."""
    limit = await limit_of(defaults, namespace, name)
    if limit and await _USAGE[name](namespace) + adding > limit:
        raise QuotaExceeded(f"Check ({name}) quota failed, the limited number is ({limit})")
