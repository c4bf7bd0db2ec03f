"""Queries over the deny list of deleted nodes (fed to the broker's ACL)."""

from __future__ import annotations

from collections.abc import Iterable

from cloud.store.models import DeniedNode


async def add(namespace: str, names: Iterable[str]) -> None:
    """Put nodes on the deny list (idempotent)."""
    for name in names:
        await DeniedNode.get_or_create(namespace=namespace, name=name)


async def remove(namespace: str, name: str) -> bool:
    """Take a node off the deny list; True when it was on it."""
    return bool(await DeniedNode.filter(namespace=namespace, name=name).delete())


async def all_nids() -> list[str]:
    """Every denied node id, sorted."""
    rows = await DeniedNode.all().values_list("namespace", "name")
    return sorted(f"{namespace}.{name}" for namespace, name in rows)
