"""Queries over API tokens and namespaces."""

from __future__ import annotations

from cloud.store.models import Namespace, Token


async def ensure_namespace(name: str) -> bool:
    """Create the namespace if missing; True when it was created."""
    _, created = await Namespace.get_or_create(name=name)
    return bool(created)


async def namespace_exists(name: str) -> bool:
    """Whether the namespace exists."""
    return await Namespace.filter(name=name).exists()


async def delete_namespace(name: str) -> None:
    """Remove the namespace row (its resources are removed by the caller first)."""
    await Namespace.filter(name=name).delete()


async def add_token(
    *, namespace: str, role: str, digest: str, prefix: str, description: str
) -> Token:
    """Store a new token (only its digest)."""
    return await Token.create(
        namespace=namespace, role=role, digest=digest, prefix=prefix, description=description
    )


async def find_token(digest: str) -> Token | None:
    """The token with this digest, if any."""
    return await Token.get_or_none(digest=digest)


async def list_tokens(namespace: str) -> list[Token]:
    """The namespace's tokens, newest first."""
    return await Token.filter(namespace=namespace).order_by("-create_time", "-id")


async def delete_token(namespace: str, token_id: int) -> bool:
    """Delete one token of the namespace; False when there was none."""
    return bool(await Token.filter(namespace=namespace, id=token_id).delete())


async def count_tokens(namespace: str) -> int:
    """How many tokens the namespace has."""
    return await Token.filter(namespace=namespace).count()
