"""Removing everything a namespace owns, in the caller's transaction.

The table list is explicit so that a new namespaced table is a conscious addition here; tokens
are kept on purpose (they are the tenant's credentials, managed through /v1/tokens), so the
tenant can create its namespace again after deleting it.
"""

from __future__ import annotations

from cloud.store.models import (
    Application,
    AppNode,
    AppResource,
    Configuration,
    Namespace,
    Node,
    Quota,
    Secret,
    Shadow,
)

_NAMESPACED = (AppNode, AppResource, Shadow, Node, Application, Configuration, Secret, Quota)


async def ensure(name: str) -> bool:
    """Create the namespace row if missing; True when it was created."""
    _, created = await Namespace.get_or_create(name=name)
    return bool(created)


async def exists(name: str) -> bool:
    """Whether the namespace row exists."""
    return await Namespace.filter(name=name).exists()


async def lock(name: str) -> None:
    """Hold the namespace row until the transaction ends (PostgreSQL; SQLite is serial anyway).

    Every transaction that changes desired states or counts against a quota takes it first:
    an app change reads node labels and a label change reads app selectors, and two creates
    must not both see the last free quota slot. (Only a model query locks: Tortoise drops
    FOR UPDATE from values_list queries.)
    """
    await Namespace.filter(name=name).select_for_update()


async def purge(name: str) -> None:
    """Delete every resource of the namespace and the namespace row itself."""
    await lock(name)
    for model in _NAMESPACED:
        await model.filter(namespace=name).delete()
    await Namespace.filter(name=name).delete()
