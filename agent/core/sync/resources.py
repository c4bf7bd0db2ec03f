"""Resource specs fetched from the cloud over the link (`resources/get`), for the engine.

The engine asks for what its plan needs (app specs, the configurations and secrets they mount)
by (kind, name, version); the cloud answers only for resources the node's desired state refers
to (docs/protocol.md). Every way this can fail becomes a FetchError, which the engine records as
a fetch failure and retries as soon as the link comes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from agent.contracts import wire
from agent.contracts.messages import ResourceRef, ResourcesGetAccepted
from agent.contracts.resources import Application, Configuration, Secret
from agent.contracts.topics import Channel
from agent.core.backend import FetchError
from agent.core.store import ResourceKey
from agent.core.sync.link import LinkDown
from agent.core.sync.requests import Rejected, Requests

Resource = Application | Configuration | Secret
FETCH_BATCH: Final = 64  # the protocol's limit of entries per resources/get


class ResourceFetcher:
    """The engine's Fetcher: `resources/get` requests, a batch at a time."""

    def __init__(self, requests: Requests) -> None:
        self._requests = requests

    async def fetch(self, keys: Sequence[ResourceKey]) -> list[Resource]:
        """Fetch resources by (kind, name, version) from the cloud; FetchError when it can't."""
        found: list[Resource] = []
        for start in range(0, len(keys), FETCH_BATCH):
            batch = keys[start : start + FETCH_BATCH]
            refs = [
                ResourceRef(kind=kind, name=name, version=version).to_wire()
                for kind, name, version in batch
            ]
            try:
                answer = await self._requests.ask(Channel.RESOURCES_GET, {"resources": refs})
                # Through JSON text: strict models take datetimes as strings only from JSON.
                accepted = wire.validate(ResourcesGetAccepted, answer.body)
            except Rejected as exc:
                raise FetchError(f"the cloud refused the resources: {exc}") from exc
            except (TimeoutError, LinkDown) as exc:
                raise FetchError(f"resources cannot be fetched now: {exc or 'timed out'}") from exc
            except ValueError as exc:
                raise FetchError(f"the cloud sent unusable resources: {exc}") from exc
            found.extend(value.value for value in accepted.values)
        return found
