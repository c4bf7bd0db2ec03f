"""Global cloud properties (Baetyl's `baetyl_property`): operator-set name → string values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cloud.store.models import Property


@dataclass(frozen=True)
class PropertyRecord:
    """One property row, detached from the ORM."""

    name: str
    value: str
    create_time: datetime
    update_time: datetime


def _record(row: Property) -> PropertyRecord:
    return PropertyRecord(row.name, row.value, row.create_time, row.update_time)


async def get(name: str) -> PropertyRecord | None:
    """One property, or None."""
    row = await Property.get_or_none(name=name)
    return None if row is None else _record(row)


async def get_many(names: Iterable[str]) -> dict[str, str]:
    """The values of the named properties that exist, in one query."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = await Property.filter(name__in=wanted).values_list("name", "value")
    return {str(name): str(value) for name, value in rows}


async def put(name: str, value: str) -> PropertyRecord:
    """Create or replace a property."""
    row = await Property.get_or_none(name=name)
    if row is None:
        row = await Property.create(name=name, value=value)
    else:
        row.value = value
        await row.save()
    return _record(row)


async def delete(name: str) -> bool:
    """Remove a property; False when there was none."""
    return bool(await Property.filter(name=name).delete())
