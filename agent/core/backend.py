"""The seam between the engine and a backend (native processes now, Kubernetes later).

The engine decides *what* should run (`Deployment`s, with every configuration and secret already
fetched); a backend makes it so and says what it sees (`AppStats` of agent.contracts.report). A
backend never talks to the cloud and never reads the local store: everything it needs is in the
`Deployment`, so it can be tested with real processes and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.contracts.report import AppStats, NodeInfo
from agent.contracts.resources import Application, Configuration, Secret
from agent.contracts.wire import validate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeIdentity:
    """Who the node is: its namespace and name (the two parts of its nid)."""

    namespace: str
    name: str

    @property
    def nid(self) -> str:
        """`namespace.name`, the node id of DESIGN §3."""
        return f"{self.namespace}.{self.name}"


@dataclass(frozen=True)
class Deployment:
    """One app version to run, with the exact resource versions its volumes mount.

    `configs` and `secrets` are keyed by resource name and hold the versions the app's volumes
    reference (`Application.references()`); the engine fetches them before it deploys.
    """

    app: Application
    configs: Mapping[str, Configuration] = field(default_factory=dict)
    secrets: Mapping[str, Secret] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The app name."""
        return self.app.name

    @property
    def version(self) -> str:
        """The app version."""
        return self.app.version

    def to_json(self) -> dict[str, Any]:
        """The deployment as JSON, for a backend's bookkeeping (secrets included: owner-only)."""
        return {
            "app": self.app.to_wire(),
            "configs": {name: c.to_wire() for name, c in self.configs.items()},
            "secrets": {name: s.to_wire() for name, s in self.secrets.items()},
        }

    @classmethod
    def from_json(cls, raw: Any) -> Deployment:
        """Parse `to_json`'s value; KeyError, TypeError, AttributeError or PayloadError when it
        is malformed."""
        return cls(
            app=validate(Application, raw["app"]),
            configs={n: validate(Configuration, v) for n, v in raw["configs"].items()},
            secrets={n: validate(Secret, v) for n, v in raw["secrets"].items()},
        )


def baetyl_env(
    deployment: Deployment, service: str, identity: NodeIdentity, *, mode: str
) -> dict[str, str]:
    """Baetyl's variables every service instance gets, whichever backend runs it (DESIGN §8)."""
    return {
        "BAETYL_APP_NAME": deployment.name,
        "BAETYL_SERVICE_NAME": service,
        "BAETYL_APP_VERSION": deployment.version,
        "BAETYL_NODE_NAME": identity.name,
        "BAETYL_NODE_NAMESPACE": identity.namespace,
        "BAETYL_RUN_MODE": mode,
    }


@dataclass(frozen=True)
class NodeFacts:
    """What a backend knows of the node better than the host does: Kubernetes' Node object.

    A native backend has none (the host's own facts are the node's); the kube backend reports
    the Node's info, readiness, capacity and pressure conditions, and the API server's version
    as `modeinfo`.
    """

    info: NodeInfo
    ready: bool
    capacity: dict[str, str]
    """`cpu`, `memory` and `disk` (the Node's ephemeral storage) as Kubernetes quantities."""
    modeinfo: dict[str, Any]
    conditions: dict[str, bool] = field(default_factory=dict)
    """The Node's conditions by type (`Ready`, `DiskPressure`, …): whether each is True."""


class DeployError(Exception):
    """A deployment cannot be carried out as specified (bad spec, unusable mount, no command).

    The message is the `cause` reported for the app; retrying the same spec will fail the same
    way, so the engine reports it and waits for a new version instead of retrying fast.
    """


class FetchError(Exception):
    """Resources could not be fetched from the cloud now (offline, refused, timed out).

    Raised by the sync module's fetcher; the engine retries the app later with backoff.
    """


StatusListener = Callable[[], None]
"""Called (without arguments, from the event loop) whenever some app's observed status changes."""


class StatusNotifier:
    """Tells a backend's listeners that what it observes changed, once per loop turn, and only
    when `signature()` (statuses, causes, restarts: what a report shows, not usage) differs
    from what they were last told."""

    def __init__(self, signature: Callable[[], object]) -> None:
        self._signature = signature
        self._listeners: list[StatusListener] = []
        self._handle: asyncio.Handle | None = None
        self._last: object = None

    def add(self, listener: StatusListener) -> None:
        """Call `listener` on every change from now on."""
        self._listeners.append(listener)

    def changed(self) -> None:
        """Something may have changed: compare and notify soon (coalesced)."""
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._notify)

    def close(self) -> None:
        """Drop a pending notification (the backend is closing)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _notify(self) -> None:
        self._handle = None
        signature = self._signature()
        if signature == self._last:
            return
        self._last = signature
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("a status listener failed")


class Backend(Protocol):
    """What the engine needs from a backend. Every method is safe to call at any time."""

    async def start(self) -> None:
        """Adopt what is already running (apps survive agent restarts); then supervise it."""
        ...

    async def apply(self, deployment: Deployment) -> None:
        """Make `deployment` the running version of its app: start, or replace one by one.

        Idempotent: applying the running version again changes nothing. Raises DeployError
        for a spec that cannot run; other failures (a crashing process) show up in `observe`.
        """
        ...

    async def remove(self, app: str) -> None:
        """Stop every instance of `app` (graceful, then forced) and delete its files."""
        ...

    def observe(self) -> dict[str, AppStats]:
        """What runs now, by app name (apps being removed are absent)."""
        ...

    def rollout_failures(self) -> dict[str, tuple[str, str]]:
        """Apps whose last rollout ended in an error: name → (version, cause).

        `observe` shows them Failed at that version; the engine applies them again after their
        backoff (a rollout resumed by `start` can fail with nobody awaiting it).
        """
        ...

    def on_change(self, listener: StatusListener) -> None:
        """Register a listener for status changes (a report is sent right away)."""
        ...

    async def logs(self, app: str, *, tail_lines: int | None, since_seconds: int | None) -> str:
        """Recent log text of the app's instances; KeyError when the app is unknown."""
        ...

    async def node_facts(self) -> NodeFacts | None:
        """The node as the backend sees it, or None when the host's own facts apply."""
        ...

    async def close(self) -> None:
        """Stop supervising and leave every app process running (agent shutdown)."""
        ...
