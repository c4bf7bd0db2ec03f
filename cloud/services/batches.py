"""Several writes as one: the use cases of a multi-document file run in a single transaction.

`POST/PUT /v1/yaml` create or replace many resources with the ordinary use cases (configs,
secrets, apps, nodes), each of which opens its own transaction and, after it, tells the
listeners (the MQTT bridge's desired pushes, the broker's deny list, the deferred-deployment
task). Inside `batch` those transactions nest in one outer transaction (savepoints), and the
context the use cases get holds their announcements back: they are made once, after the outer
commit, and never when a later write fails and everything rolls back. So a node never hears of a
desired state that was not stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from cloud.services.context import Caller, CloudContext
from cloud.services.tokens import require_admin
from cloud.store import apps as app_store
from cloud.store import namespaces as namespace_store
from cloud.store.db import transaction
from cloud.store.desired import DesiredChanges, Written


@dataclass
class _Deferring(CloudContext):
    """A CloudContext whose announcements wait until `batch` commits."""

    held_desired: DesiredChanges = field(default_factory=dict)
    held_access: bool = False

    async def desired_changed(self, changes: Mapping[str, Written]) -> None:
        """Keep the newest write of each node; the real listeners hear of them after commit."""
        for nid, written in changes.items():
            kept = self.held_desired.get(nid)
            if kept is None or written.version >= kept.version:
                self.held_desired[nid] = written

    async def access_changed(self) -> None:
        """Remember that the deny list changed; it is published after commit."""
        self.held_access = True


@asynccontextmanager
async def batch(ctx: CloudContext, caller: Caller) -> AsyncIterator[CloudContext]:
    """One transaction, under the namespace lock, around the use cases called with the context
    it yields; their announcements are made after the commit, not at all on rollback.

    The deferred-deployment task gets an event of its own meanwhile: woken before the commit it
    would read the old apps and sleep past a new deferred one.
    """
    require_admin(caller)
    values = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(CloudContext)}
    inner = _Deferring(**{**values, "schedule_changed": asyncio.Event()})
    async with transaction():
        await namespace_store.lock(caller.namespace)
        yield inner
    if ctx.object_store is None:  # made at first use inside the batch: keep it
        ctx.object_store = inner.object_store
    if inner.schedule_changed.is_set():
        ctx.schedule_changed.set()
    if inner.held_access:
        await ctx.access_changed()
    await ctx.desired_changed(inner.held_desired)


async def secret_types(caller: Caller, names: Iterable[str]) -> dict[str, str]:
    """The `secret-type` (config, certificate, registry) of each named secret that exists."""
    _, found = await app_store.resource_versions(caller.namespace, (), set(names))
    return {name: kind for name, (_, kind) in found.items()}
