"""What the store's plain-SQL paths share: the current connection, its dialect, JSON columns.

The hot paths (a node's report, a fleet-wide desired write, the app index) skip the ORM's query
building, which cost more CPU than the database spent (docs/performance-notes.md "Fleet"). They
encode JSON columns with orjson as Tortoise would, so rows written either way read the same.
"""

from __future__ import annotations

from typing import Any

import orjson
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient


def connection() -> BaseDBAsyncClient:
    """The current connection: the transaction's inside `transaction()`."""
    current: BaseDBAsyncClient = connections.get("default")
    return current


def is_postgres(current: BaseDBAsyncClient) -> bool:
    """Whether `current` talks to PostgreSQL (else SQLite): placeholders and locks differ."""
    return current.capabilities.dialect == "postgres"


def dumps(value: object) -> str:
    """A JSON column's text."""
    return orjson.dumps(value).decode()


def loads(value: object) -> dict[str, Any]:
    """A JSON column's value as an object; SQL NULL or JSON null is empty, as on the ORM path."""
    if value is None:
        return {}
    if isinstance(value, dict):  # a driver that decodes JSON itself
        return value
    loaded = orjson.loads(value if isinstance(value, str | bytes) else str(value))
    return loaded if isinstance(loaded, dict) else {}
