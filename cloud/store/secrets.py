"""Queries over secrets (generic, certificate, registry): one table, told apart by `secret_type`.

The store only ever sees sealed data (SecretBox output); decrypting is the service's job, so a
query here can never put plaintext into a log or a list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError

from cloud.errors import Conflict
from cloud.store.models import Secret as SecretRow

_LISTED = (
    "id",
    "namespace",
    "name",
    "version",
    "secret_type",
    "labels",
    "description",
    "system",
    "info",
    "create_time",
    "update_time",
)


@dataclass(frozen=True)
class SecretFacts:
    """What may be shown of a secret: every column but its sealed data."""

    namespace: str
    name: str
    version: str
    secret_type: str
    labels: dict[str, str]
    description: str
    system: bool
    info: dict[str, Any]
    create_time: datetime | None = None
    update_time: datetime | None = None


@dataclass(frozen=True)
class StoredSecret(SecretFacts):
    """A secret row; `sealed` is None when the query did not read it (lists never do)."""

    sealed: str | None = field(default=None, repr=False)


def _value(row: SecretRow) -> StoredSecret:
    return StoredSecret(
        namespace=row.namespace,
        name=row.name,
        version=row.version,
        secret_type=row.secret_type,
        labels=dict(row.labels),
        description=row.description,
        system=row.system,
        info=dict(row.info),
        sealed=row.sealed,
        create_time=row.create_time,
        update_time=row.update_time,
    )


async def get(namespace: str, name: str) -> StoredSecret | None:
    """One secret of any type, with its sealed data."""
    row = await SecretRow.get_or_none(namespace=namespace, name=name)
    return None if row is None else _value(row)


async def label_index(
    namespace: str, secret_type: str, *, name: str
) -> list[tuple[int, dict[str, str]]]:
    """(id, labels) of the namespace's secrets of one type, newest first, for selector filtering."""
    query = SecretRow.filter(namespace=namespace, secret_type=secret_type)
    if name:
        query = query.filter(name__icontains=name)
    rows = await query.order_by("-create_time", "-id").values_list("id", "labels")
    return [(int(i), dict(labels)) for i, labels in rows]


async def by_ids(ids: list[int]) -> list[StoredSecret]:
    """Secrets by primary key, in the order given, without their sealed data."""
    rows = await SecretRow.filter(id__in=ids).values(*_LISTED)
    found = {int(row.pop("id")): row for row in rows}
    return [
        StoredSecret(
            namespace=str(row["namespace"]),
            name=str(row["name"]),
            version=str(row["version"]),
            secret_type=str(row["secret_type"]),
            labels=dict(row["labels"]),
            description=str(row["description"]),
            system=bool(row["system"]),
            info=dict(row["info"]),
            create_time=row["create_time"],
            update_time=row["update_time"],
        )
        for i in ids
        if (row := found.get(i)) is not None
    ]


async def insert(secret: StoredSecret) -> StoredSecret:
    """Store a new secret; Conflict names the type of whatever already holds the name."""
    if secret.sealed is None:
        raise ValueError("a secret is stored with its sealed data")
    existing = await SecretRow.get_or_none(namespace=secret.namespace, name=secret.name)
    if existing is not None:
        raise Conflict(_taken(secret.name, existing.secret_type))
    try:
        row = await SecretRow.create(
            namespace=secret.namespace,
            name=secret.name,
            version=secret.version,
            secret_type=secret.secret_type,
            labels=dict(secret.labels),
            description=secret.description,
            system=secret.system,
            sealed=secret.sealed,
            info=dict(secret.info),
        )
    except IntegrityError as exc:  # a concurrent insert of the same name won
        raise Conflict(_taken(secret.name, secret.secret_type)) from exc
    return _value(row)


async def update(secret: StoredSecret) -> StoredSecret | None:
    """Overwrite labels, description, version, data and info; None when the row is gone."""
    if secret.sealed is None:
        raise ValueError("a secret is stored with its sealed data")
    row = await SecretRow.get_or_none(
        namespace=secret.namespace, name=secret.name, secret_type=secret.secret_type
    )
    if row is None:
        return None
    row.version = secret.version
    row.labels = dict(secret.labels)
    row.description = secret.description
    row.sealed = secret.sealed
    row.info = dict(secret.info)
    await row.save()
    return _value(row)


async def delete(namespace: str, name: str, secret_type: str) -> bool:
    """Remove a secret of that type; False when there was none."""
    deleted = await SecretRow.filter(
        namespace=namespace, name=name, secret_type=secret_type
    ).delete()
    return bool(deleted)


def _taken(name: str, secret_type: str) -> str:
    what = {"config": "secret"}.get(secret_type, secret_type)
    return (
        f"the name {name!r} is already used by a {what} "
        "(secrets, certificates and registries share one set of names)"
    )
