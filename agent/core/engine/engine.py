"""The reconcile loop: make the backend run what the desired state asks for (DESIGN §8).

One reconcile at a time: observe the backend, plan (pure, `planner.plan`), execute — remove,
fetch missing specs into the local store, deploy — and plan again until nothing is left to fetch.
It runs when the desired state changes, when the link comes back, every `interval` seconds to
repair drift, and when a failed app's backoff ends. Failures (a spec that cannot run, resources
that cannot be fetched) are kept per app with exponential backoff, 1 s doubling to 5 min, and are
reported as the app's cause; the other apps carry on.

Without `wake_on_change` (`engine.mode: tick`: a polling agent's timing, such as Baetyl v2's,
for comparison; not for production) a new desired state waits for the next `interval` tick,
`interval` after the previous reconcile; the other wake-ups are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from agent.contracts import desired as desired_state
from agent.contracts.desired import BUILTIN_SYSAPPS, DesiredState
from agent.contracts.kit import backoff
from agent.contracts.report import AppStats, AppStatus
from agent.contracts.resources import Application, Configuration, ResourceKind, Secret
from agent.core.backend import Backend, DeployError, Deployment, FetchError
from agent.core.engine import planner
from agent.core.engine.planner import ResourceKey, Want
from agent.core.objects import ObjectCache, ObjectError
from agent.core.store import LocalStore

log = logging.getLogger(__name__)
Resource = Application | Configuration | Secret
# Plan, act, plan again: specs, then what they mount, then deploy, then a settled plan.
MAX_ROUNDS: Final = 6


class Fetcher(Protocol):
    """Fetches resources by key from the cloud (the sync module)."""

    async def fetch(self, keys: Sequence[ResourceKey]) -> list[Resource]:
        """The resources, or FetchError."""
        ...


class FailureKind(enum.Enum):
    """What went wrong, for the engine's own decisions (the report shows only the cause text)."""

    FETCH = "fetch"
    """A spec or a resource it mounts could not be fetched: retried as soon as the link is back."""
    INVALID = "invalid"
    """The spec cannot run here as written, or the cloud sent another one than asked for."""
    DEPLOY = "deploy"
    """The backend could not start it, its rollout failed, or its files could not be written."""
    INTERNAL = "internal"
    """A bug in the agent: logged with its traceback, retried like any other failure."""


@dataclass
class Failure:
    """Why an app is not running as desired, and when to try again."""

    version: str
    kind: FailureKind
    cause: str
    count: int
    retry_at: float


Builtins = Callable[[Sequence[Application], set[str]], list[Application]]
"""Given the specs of the desired apps and the built-in system apps the desired state names
(a node's `sysApps`), the system apps the agent adds itself (sysapps.py)."""


class Engine:
    """Owns the reconcile loop; `run` is the body of the agent's `engine` task."""

    def __init__(
        self,
        backend: Backend,
        store: LocalStore,
        fetcher: Fetcher,
        *,
        interval: float,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        wake_on_change: bool = True,
        objects: ObjectCache | None = None,
        builtins: Builtins | None = None,
        unused: Callable[[Application], list[str]] | None = None,
    ) -> None:
        self._unused = unused
        self._warnings: dict[str, list[str]] = {}
        self._backend = backend
        self._objects = objects
        self._builtins = builtins
        self._builtin_wants: dict[str, Want] = {}
        self._wake_on_change = wake_on_change
        self._store = store
        self._fetcher = fetcher
        self._interval = interval
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._clock = clock
        self._desired = desired_state.EMPTY
        self._wake = asyncio.Event()
        self._failures: dict[str, Failure] = {}
        self._listeners: list[Callable[[], None]] = []
        self.reconciles = 0
        self.settled = asyncio.Event()

    def reported_version(self, name: str, running: str) -> str:
        """The version to report for an app running at `running`: a built-in system app the
        desired state names is reported at the desired version, so that no delta remains for
        it (its real version is a digest of the agent's own spec)."""
        desired = self._desired.sysapps.get(name)
        if name in self._builtin_wants and desired is not None:
            return desired
        return running

    @property
    def wanted(self) -> dict[str, Want]:
        """The apps the current desired state asks for, with the agent's built-in system apps."""
        return {**planner.wanted(self._desired), **self._builtin_wants}

    def set_desired(self, desired: DesiredState) -> None:
        """A new desired state: reconcile at once (or at the next tick without `wake_on_change`).

        Failures of changed apps are forgotten.
        """
        self._desired = desired
        want = self.wanted
        for name in list(self._failures):
            if name not in want or want[name].version != self._failures[name].version:
                del self._failures[name]
        if self._wake_on_change:
            self.wake()
        else:
            self.settled.clear()  # not settled on the new state until the tick has run

    def wake(self, *, retry_fetches: bool = False) -> None:
        """Reconcile soon; with `retry_fetches`, apps waiting to fetch are retried now."""
        if retry_fetches:
            for failure in self._failures.values():
                if failure.kind is FailureKind.FETCH:
                    failure.retry_at = 0.0
        self.settled.clear()
        self._wake.set()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Called when the failures (and so the report) change."""
        self._listeners.append(listener)

    def warnings(self) -> dict[str, list[str]]:
        """Per wanted app, the fields of its spec the backend leaves unused."""
        return dict(self._warnings)

    def failures(self) -> dict[str, AppStats]:
        """Apps that could not be brought to their desired version, as Failed app stats."""
        return {
            name: AppStats(
                name=name, version=failure.version, status=AppStatus.FAILED, cause=failure.cause
            )
            for name, failure in self._failures.items()
        }

    async def run(self) -> None:
        """Reconcile on every wake-up, every interval, and when a backoff ends."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sleep_time())
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception:
                # A bug here must not end the loop: the apps run on, the next wake-up retries.
                log.exception("reconcile failed")

    async def reconcile(self) -> planner.Plan:
        """One reconcile; returns the last plan (settled unless something keeps changing)."""
        self.reconciles += 1
        started = self._clock()
        want = planner.wanted(self._desired)
        last = planner.Plan()
        for _ in range(MAX_ROUNDS):
            # Again each round: a function app's spec fetched in one round wants the proxy next.
            want = await self._with_builtins(planner.wanted(self._desired))
            last = await self._step(want)
            if last.settled:
                break
        if last.settled:
            await self._prune(want)
            self.settled.set()
        log.debug(
            "reconciled",
            extra={"apps": len(want), "ms": int((self._clock() - started) * 1000)},
        )
        return last

    async def _step(self, want: dict[str, Want]) -> planner.Plan:
        for name, (version, cause) in self._backend.rollout_failures().items():
            if (
                name in want
                and want[name].version == version
                and not self._failed_at(name, version)
            ):
                # A rollout resumed by the backend's start that failed.
                self._fail(want[name], FailureKind.DEPLOY, cause)
        # An app whose rollout failed runs at its version only on paper: it is deployed again
        # when its backoff ends.
        running = {
            name: stats.version
            for name, stats in self._backend.observe().items()
            if not self._failed_at(name, stats.version)
        }
        stored = await self._store.list_resources()
        specs = await self._specs(want, stored)
        if self._unused is not None:
            self._warnings = {
                app.name: found
                for app in want.values()
                if (spec := specs.get(app.key)) is not None and (found := self._unused(spec))
            }
        step = planner.plan(
            want,
            running,
            specs,
            stored,
            retry_at={name: f.retry_at for name, f in self._failures.items()},
            now=self._clock(),
        )
        for name, cause in step.invalid.items():
            self._fail(want[name], FailureKind.INVALID, cause)
        for name in step.remove:
            log.info("removing app", extra={"app": name})
            await self._backend.remove(name)
            self._forget(name)
        if step.fetch:
            await self._fetch(want, specs, step.fetch)
            return step
        for app in step.deploy:
            await self._deploy(app, specs[app.key])
        return step

    async def _with_builtins(self, want: dict[str, Want]) -> dict[str, Want]:
        """`want` with the built-in system apps its stored specs call for (agent.core.sysapps).

        A built-in's spec is saved in the store like a fetched one, so the planner finds it and
        the backend's bookkeeping can adopt it after a restart.
        """
        if self._builtins is None:
            return want
        stored = await self._store.list_resources()
        if any(w.key not in stored for w in want.values()):
            # A spec is still to be fetched (a new version of a function app, say): keep the
            # built-ins as they are until every spec is known, so none stops in between.
            return {**want, **self._builtin_wants}
        specs = await self._specs(want, stored)
        requested = set(self._desired.sysapps) & set(BUILTIN_SYSAPPS)
        found: dict[str, Want] = {}
        for app in self._builtins(list(specs.values()), requested):
            if (ResourceKind.APPLICATION, app.name, app.version) not in stored:
                await self._store.save_resource(app)
            found[app.name] = Want(app.name, app.version, system=True)
        if found != self._builtin_wants:
            self._builtin_wants = found
            self._changed()
        return {**want, **found}

    async def _specs(
        self, want: dict[str, Want], stored: set[ResourceKey]
    ) -> dict[ResourceKey, Application]:
        specs: dict[ResourceKey, Application] = {}
        for app in want.values():
            if app.key in stored:
                spec = await self._store.load_resource(*app.key)
                if isinstance(spec, Application):
                    specs[app.key] = spec
        return specs

    async def _fetch(
        self,
        want: dict[str, Want],
        specs: dict[ResourceKey, Application],
        keys: Sequence[ResourceKey],
    ) -> None:
        try:
            fetched = _exactly(keys, await self._fetcher.fetch(keys))
        except FetchError as exc:
            for app in _apps_needing(want, specs, keys):
                self._fail(app, FailureKind.FETCH, f"fetch: {exc}")
            return
        for resource in fetched:
            await self._store.save_resource(resource)

    async def _deploy(self, app: Want, spec: Application) -> None:
        if spec.name != app.name or spec.version != app.version:
            cause = f"the cloud sent {spec.name} version {spec.version} for {app.name}"
            self._fail(app, FailureKind.INVALID, cause)
            return
        try:
            deployment = await self._deployment(spec)
            if self._objects is not None:
                await self._objects.prepare(deployment.configs.values())
            log.info("deploying app", extra={"app": app.name, "version": app.version})
            await self._backend.apply(deployment)
        except ObjectError as exc:
            if exc.stale:  # an expired download URL: fetch the configurations again
                await self._refetch(spec)
                self._fail(app, FailureKind.FETCH, f"fetch: {exc}")
            else:
                self._fail(app, FailureKind.DEPLOY, str(exc))
            return
        except DeployError as exc:
            self._fail(app, FailureKind.DEPLOY, str(exc))
            return
        except OSError as exc:  # a full disk or an unwritable directory: retried with backoff
            self._fail(app, FailureKind.DEPLOY, f"cannot write the app's files: {exc}")
            return
        except Exception as exc:  # a bug: reported and retried like any failure, never Pending
            log.exception("deploying an app failed", extra={"app": app.name})
            self._fail(app, FailureKind.INTERNAL, f"internal error: {exc!r}")
            return
        self._forget(app.name)

    async def _deployment(self, spec: Application) -> Deployment:
        configs: dict[str, Configuration] = {}
        secrets: dict[str, Secret] = {}
        for kind, ref in spec.references():
            found = await self._store.load_resource(kind, ref.name, ref.version)
            if kind is ResourceKind.CONFIGURATION and isinstance(found, Configuration):
                configs[ref.name] = found
            elif kind is ResourceKind.SECRET and isinstance(found, Secret):
                secrets[ref.name] = found
            else:
                raise DeployError(f"{kind.value} {ref.name} version {ref.version} is not stored")
        return Deployment(spec, configs, secrets)

    async def _refetch(self, spec: Application) -> None:
        """Drop the stored configurations of `spec` that hold object items (stale URLs)."""
        stored = await self._store.list_resources()
        stale: set[ResourceKey] = set()
        for kind, ref in spec.references():
            if kind is ResourceKind.CONFIGURATION:
                config = await self._store.load_resource(kind, ref.name, ref.version)
                if config is not None and config.object_items():
                    stale.add((kind, ref.name, ref.version))
        await self._store.prune(stored - stale)

    async def _prune(self, want: dict[str, Want]) -> None:
        stored = await self._store.list_resources()
        keep = planner.needed(want, await self._specs(want, stored))
        removed = await self._store.prune(keep)
        if removed:
            log.debug("pruned resources", extra={"count": len(removed)})
        if self._objects is not None:
            configs: list[Configuration] = []
            for kind, name, version in keep:
                if kind is ResourceKind.CONFIGURATION:
                    config = await self._store.load_resource(kind, name, version)
                    if config is not None:
                        configs.append(config)
            dropped = await asyncio.to_thread(self._objects.prune, configs)
            if dropped:
                log.info("pruned cached objects", extra={"count": len(dropped)})

    def _fail(self, app: Want, kind: FailureKind, cause: str) -> None:
        previous = self._failures.get(app.name)
        count = previous.count + 1 if previous and previous.version == app.version else 1
        delay = backoff.delay(count, base=self._backoff_base, cap=self._backoff_cap)
        retry_at = self._clock() + delay
        self._failures[app.name] = Failure(app.version, kind, cause, count, retry_at)
        log.warning(
            "app not deployed",
            extra={
                "app": app.name,
                "version": app.version,
                "kind": kind.value,
                "cause": cause,
                "retry_in": delay,
            },
        )
        if previous is None or previous.cause != cause:
            self._changed()

    def _failed_at(self, name: str, version: str) -> bool:
        failure = self._failures.get(name)
        return failure is not None and failure.version == version

    def _forget(self, name: str) -> None:
        if self._failures.pop(name, None) is not None:
            self._changed()

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def _sleep_time(self) -> float:
        pending = [f.retry_at for f in self._failures.values()]
        if not pending:
            return self._interval
        return max(0.05, min(self._interval, min(pending) - self._clock()))


def _exactly(keys: Sequence[ResourceKey], fetched: list[Resource]) -> list[Resource]:
    """`fetched` if it is what was asked for; FetchError otherwise (nothing is stored)."""
    asked = set(keys)
    unasked = sorted(
        f"{_kind(r).value} {r.name} version {r.version}"
        for r in fetched
        if (_kind(r), r.name, r.version) not in asked
    )
    if unasked or len(fetched) != len(asked):
        raise FetchError(f"the cloud answered with other resources: {', '.join(unasked)}")
    return fetched


def _kind(resource: Resource) -> ResourceKind:
    if isinstance(resource, Application):
        return ResourceKind.APPLICATION
    if isinstance(resource, Configuration):
        return ResourceKind.CONFIGURATION
    return ResourceKind.SECRET


def _apps_needing(
    want: dict[str, Want], specs: dict[ResourceKey, Application], keys: Sequence[ResourceKey]
) -> list[Want]:
    """The apps whose spec or mounts are among `keys` (they wait for the fetch)."""
    wanted_keys = set(keys)
    found = []
    for app in want.values():
        needs = {app.key}
        spec = specs.get(app.key)
        if spec is not None:
            needs |= planner.needed({app.name: app}, specs)
        if needs & wanted_keys:
            found.append(app)
    return found
