"""Queries over configurations; rows leave the store as `agent.contracts` Configuration values."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError

from agent.contracts.resources import Configuration
from cloud.errors import Conflict
from cloud.store.models import Configuration as ConfigRow


def _value(row: ConfigRow, *, with_data: bool = True) -> Configuration:
    return Configuration(
        name=row.name,
        namespace=row.namespace,
        version=row.version,
        labels=dict(row.labels),
        description=row.description,
        system=row.system,
        data=dict(row.data) if with_data else {},
        create_time=row.create_time,
        update_time=row.update_time,
    )


async def get(namespace: str, name: str) -> Configuration | None:
    """One configuration with its data."""
    row = await ConfigRow.get_or_none(namespace=namespace, name=name)
    return None if row is None else _value(row)


async def exists(namespace: str, name: str) -> bool:
    """Whether the configuration exists (without reading its data)."""
    return await ConfigRow.filter(namespace=namespace, name=name).exists()


async def label_index(namespace: str, *, name: str) -> list[tuple[int, dict[str, str]]]:
    """(id, labels) of the namespace's configurations, newest first, for filtering by selector.

    Only ids and labels are read, so filtering a namespace of large configurations stays cheap.
    """
    query = ConfigRow.filter(namespace=namespace)
    if name:
        query = query.filter(name__icontains=name)
    rows = await query.order_by("-create_time", "-id").values_list("id", "labels")
    return [(int(i), dict(labels)) for i, labels in rows]


async def by_ids(ids: list[int]) -> list[Configuration]:
    """Configurations by primary key, in the order given."""
    found = {row.id: row for row in await ConfigRow.filter(id__in=ids)}
    return [_value(found[i]) for i in ids if i in found]


async def insert(namespace: str, config: Configuration) -> Configuration:
    """Store a new configuration; Conflict when the name is taken (even by a concurrent insert)."""
    try:
        row = await ConfigRow.create(
            namespace=namespace,
            name=config.name,
            version=config.version,
            labels=dict(config.labels),
            description=config.description,
            system=config.system,
            data=dict(config.data),
        )
    except IntegrityError as exc:
        raise Conflict(f"configuration {config.name!r} already exists") from exc
    return _value(row)


async def update(namespace: str, config: Configuration) -> Configuration | None:
    """Overwrite the stored configuration of that name; None when it does not exist."""
    row = await ConfigRow.get_or_none(namespace=namespace, name=config.name)
    if row is None:
        return None
    row.version = config.version
    row.labels = dict(config.labels)
    row.description = config.description
    row.data = dict(config.data)
    await row.save()
    return _value(row)


async def delete(namespace: str, name: str) -> bool:
    """Remove a configuration; False when there was none."""
    return bool(await ConfigRow.filter(namespace=namespace, name=name).delete())


async def all_data(namespace: str) -> list[tuple[str, dict[str, str]]]:
    """(name, data) of every configuration of the namespace, for finding object references."""
    rows = await ConfigRow.filter(namespace=namespace).values_list("name", "data")
    return [(str(name), dict(data)) for name, data in rows]
