"""The reconcile plan: desired + observed + what the store holds → what to do next (pure).

No I/O and no clock: everything the plan depends on is an argument, so every rule is a table
test. The engine runs a plan, then plans again with what it learnt (fetched specs can name
configurations that must be fetched too), until nothing is left to fetch.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field

from agent.contracts.desired import BUILTIN_SYSAPPS, DesiredState
from agent.contracts.resources import Application, ResourceKind

ResourceKey = tuple[ResourceKind, str, str]


@dataclass(frozen=True, order=True)
class Want:
    """An app the desired state asks for, at one version."""

    name: str
    version: str
    system: bool = False

    @property
    def key(self) -> ResourceKey:
        """The app spec's key in the local store."""
        return (ResourceKind.APPLICATION, self.name, self.version)


@dataclass(frozen=True)
class Plan:
    """What to do now, in this order: remove, fetch, deploy.

    `blocked` maps apps that must not be retried yet (backoff) to the time they may be;
    `invalid` maps apps whose spec cannot run to the reason, reported as their cause.
    """

    remove: tuple[str, ...] = ()
    fetch: tuple[ResourceKey, ...] = ()
    deploy: tuple[Want, ...] = ()
    blocked: Mapping[str, float] = field(default_factory=dict)
    invalid: Mapping[str, str] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        """Nothing left to do now (blocked apps wait for their time)."""
        return not (self.remove or self.fetch or self.deploy)


def wanted(desired: DesiredState) -> dict[str, Want]:
    """The apps of a desired state (`apps` and `sysapps`) by name; a system app wins a tie.
    The built-in system apps a node's `sysApps` asks for are left to the engine's builtins."""
    found: dict[str, Want] = {}
    for apps, system in ((desired.apps, False), (desired.sysapps, True)):
        found.update((name, Want(name, version, system)) for name, version in apps.items())
    for name in BUILTIN_SYSAPPS:  # the agent's own: never fetched (the engine adds them)
        found.pop(name, None)
    return found


def plan(
    want: Mapping[str, Want],
    running: Mapping[str, str],
    specs: Mapping[ResourceKey, Application],
    stored: Set[ResourceKey],
    *,
    retry_at: Mapping[str, float],
    now: float,
) -> Plan:
    """Plan one step of a reconcile.

    Args:
        want: the desired apps by name (`wanted`).
        running: app name → version the backend runs now.
        specs: the app specs loaded from the store, by key.
        stored: every resource key the store holds.
        retry_at: app name → time before which a failed app is not retried.
        now: the current time (same clock as `retry_at`).
    """
    remove = tuple(sorted(name for name in running if name not in want))
    fetch: list[ResourceKey] = []
    deploy: list[Want] = []
    blocked: dict[str, float] = {}
    invalid: dict[str, str] = {}
    for name in sorted(want):
        app = want[name]
        if running.get(name) == app.version:
            continue
        if retry_at.get(name, 0.0) > now:
            blocked[name] = retry_at[name]
            continue
        spec = specs.get(app.key)
        if spec is None:
            if app.key not in stored:
                fetch.append(app.key)
            else:
                invalid[name] = f"the stored spec of {name} version {app.version} is unusable"
            continue
        needs, problem = _needs(spec)
        if problem:
            invalid[name] = problem
            continue
        missing = [key for key in needs if key not in stored]
        if missing:
            fetch.extend(key for key in missing if key not in fetch)
            continue
        deploy.append(app)
    return Plan(tuple(remove), tuple(fetch), tuple(deploy), blocked, invalid)


def needed(want: Mapping[str, Want], specs: Mapping[ResourceKey, Application]) -> set[ResourceKey]:
    """Every resource key the desired apps use: what the store must keep."""
    keep: set[ResourceKey] = set()
    for app in want.values():
        keep.add(app.key)
        spec = specs.get(app.key)
        if spec is not None:
            keep.update(_needs(spec)[0])
    return keep


def _needs(spec: Application) -> tuple[list[ResourceKey], str]:
    """The configurations and secrets a spec mounts, or why it cannot name them."""
    keys: list[ResourceKey] = []
    for kind, ref in spec.references():
        if not ref.version:
            return [], f"volume of {kind.value} {ref.name} names no version"
        keys.append((kind, ref.name, ref.version))
    return keys, ""
