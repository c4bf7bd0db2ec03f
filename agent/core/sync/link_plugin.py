"""The sync link plug-in point: what carries the agent's messages to and from the cloud.

`sync.link` in core.yml names an entry point of the group `baetyl_py.plugins.sync_link`; the
built-in `mqtt` is the MQTT link (agent.core.sync.link.AgentLink). A factory is called as
`factory(settings, deliver, connected)` — the node's `LinkSettings`, the coroutine to hand each
message for this node to (`Received`, in arrival order), and the coroutine to run once per
connection when the link is up — and returns a `SyncLink` (docs/plugins.md). This module stays
light (no MQTT client): core.yml is checked against it by `baetyl-core --check`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from agent.contracts.kit.plugins import PluginPoint
from agent.contracts.topics import Channel

DEFAULT_LINK: Final = "mqtt"


@dataclass(frozen=True)
class LinkSettings:
    """Where the broker is and who this node is (the certificate's CN is the nid).

    `keepalive` and `timeout` (seconds) have no default here: they come from core.yml
    (`cloud.keepalive`, `sync.timeout`), whose defaults are the only ones.
    """

    host: str
    port: int
    nid: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    keepalive: int
    timeout: float


@dataclass(frozen=True)
class Received:
    """One message for this node, detached from the transport."""

    channel: Channel
    payload: bytes


Deliver = Callable[[Received], Awaitable[None]]
"""Hands one message for this node to the sync module (in arrival order; never raises)."""
Connected = Callable[[], Coroutine[Any, Any, None]]
"""Runs once per connection, once the link is up (it reads the shadow, then reports)."""


class SyncLink(Protocol):
    """The node's link to the cloud, as the sync module uses it (DESIGN §4 is the contract of
    what travels: the channels of `agent.contracts.topics`)."""

    @property
    def up(self) -> bool:
        """Whether messages can be published now."""
        ...

    @property
    def connects(self) -> int:
        """How many times the link came up (the health check and tests read it)."""
        ...

    async def wait_up(self) -> None:
        """Return once the link is up (callers bound the wait)."""
        ...

    async def run(self) -> None:
        """Connect and serve until `stop`, reconnecting after every failure (with backoff).
        On each connection: be ready to receive first (DESIGN §4: subscribe, then read the
        shadow), then count as up and run `connected` beside the receiving, cancelling it
        when the connection ends."""
        ...

    async def stop(self) -> None:
        """Tell the cloud the node goes offline if possible, and end `run`."""
        ...

    def reconnect(self) -> None:
        """Connect again at once, reading the node's TLS files anew (after a renewal)."""
        ...

    async def publish(self, channel: Channel, payload: bytes) -> None:
        """Deliver `payload` on the node's `channel` and return once the cloud side has it;
        raise `agent.contracts.kit.mqtt_link.LinkDown` when it cannot be sent."""
        ...


SYNC_LINK = PluginPoint[SyncLink]("sync_link", "sync link plug-in", SyncLink, "sync.link")
