"""What every service call runs with: the caller's identity and the cloud-wide context."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from cloud.broker.pki_files import CRL_NAME, write_crl
from cloud.secretbox import SecretBox
from cloud.settings import CloudSettings
from cloud.store import denied as denied_store
from cloud.store import node_certs as cert_store
from cloud.store.desired import DesiredChanges, Written

if TYPE_CHECKING:
    from cloud.plugins import Authenticator, ObjectStore, PkiSigner
    from cloud.services.commands import CommandSender

log = logging.getLogger(__name__)
Role = Literal["admin", "read"]
DesiredListener = Callable[[DesiredChanges], Awaitable[None] | None]
AccessListener = Callable[[list[str], list[int]], Awaitable[None]]
"""Called with the deny list (nids of deleted nodes) and the serials of revoked certificates."""


@dataclass(frozen=True)
class Caller:
    """Who is calling: the namespace and role come from the bearer token, never from the request."""

    namespace: str
    role: Role
    token_id: int | None = None


@dataclass
class CloudContext:
    """Cloud-wide collaborators handed to services.

    `desired_listeners` are called after a commit that changed node desires, with the new
    shadow version of each affected node by nid; the MQTT bridge subscribes here to push deltas.
    `access_listeners` get the whole deny list (nids of deleted nodes) after it changed, and once
    at start-up; the managed broker subscribes here to rewrite its ACL. `commands` reaches nodes
    over MQTT (the bridge sets it when it starts; None in REST-only mode). `ca` is the PKI
    signer plug-in that signs node certificates (cloud.services.node_certs; by default the cloud
    CA of `DATA_DIR/pki`), `auth` the authentication plug-in (cloud.plugins). `object_locks`
    serialise uploads and sweeps of the object store per namespace (cloud.services.objects).
    """

    settings: CloudSettings
    secrets: SecretBox
    desired_listeners: list[DesiredListener] = field(default_factory=list)
    access_listeners: list[AccessListener] = field(default_factory=list)
    commands: CommandSender | None = None
    ca: PkiSigner | None = None
    auth: Authenticator | None = None
    object_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    object_store: ObjectStore | None = None
    """The object storage plug-in, made at start (else at first use: objects.store_of)."""
    schedule_changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when an app is saved: the deferred deployments' task looks again
    (cloud.services.deferred)."""

    async def access_changed(self) -> None:
        """Publish the deny list and the CRL after a commit that changed them, and at start.

        `DATA_DIR/pki/crl.pem` is rewritten (an external broker's `crlfile` comes from it), then
        every access listener gets the deny list and the revoked serials.
        """
        revoked = await cert_store.revoked_serials(datetime.now(UTC))
        if self.ca is not None:
            path = self.settings.pki_dir / CRL_NAME
            await asyncio.to_thread(write_crl, path, self.ca, revoked)
        if not self.access_listeners:
            return
        denied = await denied_store.all_nids()
        for listener in self.access_listeners:
            try:
                await listener(denied, revoked)
            except Exception:
                # The node is deleted either way; the broker catches up at its next reload.
                log.exception("access listener failed", extra={"denied": len(denied)})

    async def desired_changed(self, changes: Mapping[str, Written]) -> None:
        """Tell every listener the new shadow versions of changed desires (after the commit)."""
        if not changes:
            return
        changed = dict(changes)
        for listener in self.desired_listeners:
            try:
                result = listener(changed)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # A broken listener must not turn a committed change into a failed request.
                log.exception("desired-changed listener failed", extra={"nodes": len(changed)})
