"""Opening and closing the store: Tortoise configuration, migrations at start-up.

The schema is owned by the migrations in `cloud.store.migrations` (Tortoise's native migrations),
applied when the store opens; `generate_schemas` is never used outside tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise
from tortoise.exceptions import BaseORMException
from tortoise.migrations.api import migrate
from tortoise.transactions import in_transaction

from cloud.errors import Conflict

T = TypeVar("T")

APP_LABEL = "baetyl"
MODELS_MODULE = "cloud.store.models"
MIGRATIONS_MODULE = "cloud.store.migrations"
# pg_advisory_lock key held while migrating ("baetyl" in ASCII), so replicas migrate one by one.
MIGRATION_LOCK_KEY: Final = 0x62616574796C
_LIBPQ_QUERY: Final = frozenset({"sslmode", "application_name", "connect_timeout"})
_PG_ERRORS: tuple[type[BaseException], ...] = ()
try:
    import asyncpg  # type: ignore[import-untyped]  # the postgres extra

    _PG_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError)
except ImportError:  # a SQLite-only install
    asyncpg = None
_OPEN_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, BaseORMException, *_PG_ERRORS)


class StoreError(RuntimeError):
    """The store could not be opened (bad URL, unreachable database, failed migration)."""


def sqlite_url(path: Path) -> str:
    """The database URL of a SQLite file."""
    return f"sqlite://{path}"


def check_url(url: str) -> str:
    """Return `url` if it names a supported database (sqlite:// or postgres://), else StoreError."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite" or scheme in {"postgres", "postgresql", "asyncpg"}:
        return url
    raise StoreError(f"unsupported database URL {url!r}: use sqlite:///path or postgres://…")


def tortoise_config(url: str) -> dict[str, Any]:
    """The Tortoise configuration for `url` (one connection, one app, our migrations)."""
    check_url(url)
    if url.startswith("postgresql://"):
        url = "postgres://" + url[len("postgresql://") :]
    return {
        "connections": {"default": url},
        "apps": {
            APP_LABEL: {
                "models": [MODELS_MODULE],
                "migrations": MIGRATIONS_MODULE,
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def open_store(url: str) -> None:
    """Apply pending migrations and leave Tortoise initialised on `url`."""
    config = tortoise_config(url)
    if url.startswith("sqlite://"):
        # aiosqlite never returns when the file's directory is missing: refuse up front.
        directory = Path(url[len("sqlite://") :]).parent
        if not directory.is_dir():
            raise StoreError(
                f"cannot open the store at {url}: directory {directory} does not exist"
            )
    try:
        async with _migration_lock(url):
            await migrate(config=config)
        # The migration run registers historical model states; start afresh with the real models.
        await Tortoise.close_connections()
        await Tortoise.init(config=config)
    except _OPEN_ERRORS as exc:
        await Tortoise.close_connections()
        raise StoreError(f"cannot open the store at {_redact(url)}: {exc}") from exc


@asynccontextmanager
async def _migration_lock(url: str) -> AsyncIterator[None]:
    """On PostgreSQL, hold an advisory lock while migrating.

    Replicas started together would otherwise create the same tables at once and all but one
    would fail; with the lock the later ones wait and then find nothing left to do.
    """
    if url.startswith("sqlite://"):
        yield
        return
    if asyncpg is None:
        raise StoreError("PostgreSQL needs asyncpg: install baetyl-py[postgres]")
    connection = await asyncpg.connect(_libpq_dsn(url))
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        yield
    finally:
        await connection.close()  # ends the session, which releases the lock


def _libpq_dsn(url: str) -> str:
    """The URL for a plain asyncpg connection: Tortoise-only query options removed."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k in _LIBPQ_QUERY]
    return urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), ""))


async def close_store() -> None:
    """Close every database connection."""
    await Tortoise.close_connections()


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def transaction() -> AbstractAsyncContextManager[object]:
    """A database transaction; every store call inside the `async with` runs in it.

    Tortoise binds the transaction's connection to the current task's context, so callers above
    the store never see a connection object.
    """
    return in_transaction()


async def retry_on_conflict(attempt: Callable[[], Awaitable[T]], *, attempts: int) -> T:
    """Run `attempt` again while a concurrent version-checked writer wins, `attempts` times in all.

    The last Conflict reaches the caller; with `attempts=1` the first one does (a writer that
    named the version it expects must not be retried on a fresher document).
    """
    for _ in range(attempts - 1):
        try:
            return await attempt()
        except Conflict:
            continue
    return await attempt()
