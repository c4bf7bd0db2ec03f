"""The caller's namespace (tenant): create, show, and delete with everything it owns.

The namespace always comes from the caller's token. Issuing a token already creates its
namespace, so creating is idempotent; deleting removes every resource of the namespace in one
transaction but keeps its tokens, so the tenant can start over with `POST /v1/namespace`.
"""

from __future__ import annotations

from cloud.errors import NotFound
from cloud.services.context import Caller, CloudContext
from cloud.store import apps as app_store
from cloud.store import denied as denied_store
from cloud.store import namespaces as store
from cloud.store import node_certs as cert_store
from cloud.store.db import transaction


async def create(caller: Caller) -> str:
    """Create the caller's namespace if it does not exist yet; returns its name."""
    await store.ensure(caller.namespace)
    return caller.namespace


async def get(caller: Caller) -> str:
    """The caller's namespace name, or NotFound after it was deleted."""
    if not await store.exists(caller.namespace):
        raise NotFound("namespace", caller.namespace)
    return caller.namespace


async def delete(ctx: CloudContext, caller: Caller) -> None:
    """Delete every resource of the caller's namespace, then the namespace itself.

    Its nodes go on the broker's deny list and their certificates are stamped revoked, as
    single node deletions do.
    """
    if not await store.exists(caller.namespace):
        raise NotFound("namespace", caller.namespace)
    async with transaction():
        nodes = list(await app_store.node_labels(caller.namespace))
        await store.purge(caller.namespace)
        await denied_store.add(caller.namespace, nodes)
        await cert_store.revoke(caller.namespace, nodes)
    if nodes:
        await ctx.access_changed()
