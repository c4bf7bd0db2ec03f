"""What every service call runs with: the caller's identity and the cloud-wide context."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from cloud.secretbox import SecretBox
from cloud.settings import CloudSettings

log = logging.getLogger(__name__)
Role = Literal["admin", "read"]
DesiredListener = Callable[[list[str]], Awaitable[None] | None]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the namespace and role come from the bearer token, never from the request."""

    namespace: str
    role: Role
    token_id: int | None = None


@dataclass
class CloudContext:
    """Cloud-wide collaborators handed to services.

    `desired_listeners` are called after a commit that changed node desires, with the nids of
    the affected nodes; the MQTT bridge subscribes here to push deltas.
    """

    settings: CloudSettings
    secrets: SecretBox
    desired_listeners: list[DesiredListener] = field(default_factory=list)

    async def desired_changed(self, nids: Iterable[str]) -> None:
        """Tell every listener which nodes got a new desired state (after the commit)."""
        changed = sorted(set(nids))
        if not changed:
            return
        for listener in self.desired_listeners:
            try:
                result = listener(changed)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # A broken listener must not turn a committed change into a failed request.
                log.exception("desired-changed listener failed", extra={"nodes": len(changed)})
