"""Per-namespace quota overrides and the usage counts they are checked against."""

from __future__ import annotations

from cloud.store.models import Application, Node, Quota


async def overrides(namespace: str) -> dict[str, int]:
    """The namespace's own limits by quota name (names without a row use the defaults)."""
    rows = await Quota.filter(namespace=namespace).values_list("name", "quota")
    return {str(name): int(limit) for name, limit in rows}


async def set_override(namespace: str, name: str, limit: int) -> None:
    """Give the namespace its own limit for one quota (0 = unlimited)."""
    updated = await Quota.filter(namespace=namespace, name=name).update(quota=limit)
    if not updated:
        await Quota.create(namespace=namespace, name=name, quota=limit)


async def clear_override(namespace: str, name: str) -> None:
    """Fall back to the default limit for one quota."""
    await Quota.filter(namespace=namespace, name=name).delete()


async def node_count(namespace: str) -> int:
    """Nodes counted against `maxNodeCount`."""
    return await Node.filter(namespace=namespace).count()


async def app_count(namespace: str) -> int:
    """User apps counted against `maxAppCount` (system apps are the cloud's, not the tenant's)."""
    return await Application.filter(namespace=namespace, system=False).count()
