"""The node's properties (`nodeprops`): set locally through the local API, reported to the cloud.

Baetyl's node properties: the cloud writes the desired ones (`PATCH /v1/nodes/{n}/properties`),
apps on the node write the reported ones (`PUT /node/properties` on the local API). The reported
ones are kept in the local store, so they survive a restart and reach a cloud that was away.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from agent.core.store import LocalStore

STATE: Final = "nodeprops"  # the local store's state file


class NodeProps:
    """The local API's NodeProperties: reported ones kept here, desired ones read from `desire`."""

    def __init__(
        self,
        store: LocalStore,
        *,
        desire: Callable[[], Mapping[str, str]],
        changed: Callable[[], None],
    ) -> None:
        """`desire` gives the desired properties as last read; `changed` asks for a report."""
        self._store = store
        self._desire = desire
        self._changed = changed
        self._reported: dict[str, str] = {}

    async def load(self) -> None:
        """The reported properties the store kept."""
        kept = await self._store.load_state(STATE)
        if kept:
            self._reported = {str(k): str(v) for k, v in kept.items()}

    def current(self) -> dict[str, Any]:
        """`{"report": …, "desire": …}` node properties as known here."""
        return {"report": dict(self._reported), "desire": dict(self._desire())}

    async def update(self, patch: dict[str, str]) -> dict[str, Any]:
        """Merge `patch` into the reported node properties, keep them, report them."""
        self._reported.update(patch)
        await self._store.save_state(STATE, dict(self._reported))
        self._changed()
        return dict(self._reported)

    @property
    def reported(self) -> dict[str, str]:
        """The node properties to report."""
        return dict(self._reported)
