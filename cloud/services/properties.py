"""Global cloud properties, read by tenants (`GET /v1/properties/{name}`) and by the cloud itself.

Properties are operator settings shared by every namespace (the install command template, the
server addresses a node is told to use); tenants may read them, never write them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from cloud.errors import NotFound
from cloud.store import properties as store
from cloud.store.properties import PropertyRecord

INIT_SERVER_ADDRESS: Final = "init-server-address"
INIT_COMMAND: Final = "baetyl-init-command"
MAX_NAME = 128


async def get(name: str) -> PropertyRecord:
    """One property, or NotFound."""
    found = await store.get(name) if 0 < len(name) <= MAX_NAME else None
    if found is None:
        raise NotFound("property", name)
    return found


async def values(names: Iterable[str]) -> dict[str, str]:
    """The values of the named properties that are set."""
    return await store.get_many(names)
