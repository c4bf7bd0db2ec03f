"""Baetyl's core configs of a node (`GET/PUT /v1/nodes/{name}/core/configs`).

All of Baetyl's keys are kept in the node's attributes and shown back. Two act on the agent:
`frequency` (seconds between reports) and `logLevel`, which go into the node's desired `core`
entry; the agent puts them in force without a restart and reports them back, which closes the
delta (agent.contracts.core_settings, decision #146). `version` names the agent version: one
other than the node runs must be a version whose wheel this cloud serves (`--dist-dir`); the
desired entry then carries that wheel's URL and sha256 and the agent upgrades itself, rolling
back by itself if the new version does not come up (decision #153).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from agent.contracts import shadow
from agent.contracts.core_settings import CORE, VERSION_KEY, CoreSettings
from agent.contracts.objects import HTTP_SOURCE, ObjectItem
from agent.contracts.version import VERSION
from cloud.errors import Invalid
from cloud.installer import dist
from cloud.services import install, node_shadow, nodes
from cloud.services.context import Caller, CloudContext
from cloud.services.nodes import NodeState
from cloud.store import nodes as store
from cloud.store.db import retry_on_conflict, transaction

CORE_CONFIGS: Final = "coreConfigs"
"""The attributes key the configs are kept under."""


@dataclass(frozen=True)
class CoreConfigs:
    """Baetyl's NodeCoreConfigs; `version` is the agent's."""

    version: str = ""
    frequency: int = 20
    apiport: int = 30050
    agentport: int = 30080
    log_level: str = "info"
    byte_unit: str = "KB"
    speed_limit: int = 0


def running_version(state: NodeState) -> str:
    """The agent version the node last reported, else this cloud's own."""
    core = _reported_core(state)
    version = core.get("version")
    return version if isinstance(version, str) and version else VERSION


def wanted_version(state: NodeState) -> str:
    """The agent version the desired `core` entry asks for, else the one the node runs."""
    desired = state.document["state"].get(shadow.DESIRED) or {}
    core = desired.get(CORE) if isinstance(desired, dict) else None
    version = core.get(VERSION_KEY) if isinstance(core, dict) else None
    return version if isinstance(version, str) and version else running_version(state)


def _reported_core(state: NodeState) -> dict[str, Any]:
    reported = state.document["state"].get(shadow.REPORTED) or {}
    core = reported.get("core") if isinstance(reported, dict) else None
    return core if isinstance(core, dict) else {}


@dataclass(frozen=True)
class CoreVersions:
    """The agent versions of a node: Baetyl's `[previous, current, latest]` and more."""

    current: str
    wanted: str
    previous: str = ""
    latest: str = ""
    available: list[str] = field(default_factory=list)
    upgrade: dict[str, Any] | None = None
    """The node's report of its last upgrade (`core.upgrade`)."""

    @property
    def versions(self) -> list[str]:
        """Baetyl's list: previous (if any), current, latest (if newer); without repeats."""
        listed: list[str] = []
        for version in (self.previous, self.current, self.latest):
            if version and version not in listed:
                listed.append(version)
        return listed


async def get(ctx: CloudContext, caller: Caller, name: str) -> CoreConfigs:
    """The node's core configs: what was set, Baetyl's defaults for the rest."""
    state = await nodes.get(ctx, caller, name)
    return _stored(state.record.attributes, wanted_version(state))


async def versions(ctx: CloudContext, caller: Caller, name: str) -> CoreVersions:
    """What runs, what was asked for, what ran before and what this cloud can serve."""
    state = await nodes.get(ctx, caller, name)
    served = await asyncio.to_thread(dist.wheels, ctx.settings.dist_dir)
    available = sorted(served, key=dist.version_key)
    upgrade = _reported_core(state).get("upgrade")
    report = upgrade if isinstance(upgrade, dict) else None
    previous = report.get("previous") if report and report.get("state") == "done" else ""
    current = running_version(state)
    latest = available[-1] if available else ""
    return CoreVersions(
        current=current,
        wanted=wanted_version(state),
        previous=previous if isinstance(previous, str) else "",
        latest=latest if latest and dist.version_key(latest) > dist.version_key(current) else "",
        available=available,
        upgrade=report,
    )


async def _wheel_item(ctx: CloudContext, version: str, running: str) -> ObjectItem:
    """The object item of `version`'s wheel on this cloud, or Invalid naming what is served."""
    served = await asyncio.to_thread(dist.wheels, ctx.settings.dist_dir)
    wheel = served.get(version)
    if wheel is None:
        offered = ", ".join(sorted(served, key=dist.version_key)) or "none"
        raise Invalid(
            f"version {version!r}: the node runs agent {running} and this cloud serves no wheel "
            f"of {version} (versions it serves: {offered}); put baetyl_py-{version}-*.whl "
            "into its dist directory (--dist-dir)"
        )
    sha256 = await asyncio.to_thread(dist.file_sha256, wheel)
    size = await asyncio.to_thread(lambda: wheel.stat().st_size)
    url = f"{install.init_url(ctx).rstrip('/')}/v1/init/dist/{wheel.name}"
    return ObjectItem(source=HTTP_SOURCE, url=url, sha256=sha256, size=size)


async def put(ctx: CloudContext, caller: Caller, name: str, wanted: CoreConfigs) -> CoreConfigs:
    """Keep `wanted` and send its `frequency` and `logLevel` to the node."""
    namespace = caller.namespace
    state = await nodes.get(ctx, caller, name)
    running = running_version(state)
    version = wanted.version or wanted_version(state)
    upgrade = version != running
    wheel = await _wheel_item(ctx, version, running) if upgrade else None
    kept = {k: v for k, v in asdict(wanted).items() if k != "version"}
    # The version goes to the node only when it is to change: a node that has not reported yet
    # is assumed to run this cloud's version, which must not read as an order to become it.
    settings = CoreSettings(
        frequency=wanted.frequency,
        log_level=wanted.log_level,
        version=version if upgrade else None,
        wheel=wheel,
    )

    async def attempt() -> node_shadow.Document | None:
        async with transaction():
            record = await nodes.require(namespace, name, for_update=True)
            if record.attributes.get(CORE_CONFIGS) != kept:
                await store.update(
                    namespace,
                    name,
                    labels=record.labels,
                    description=record.description,
                    sync_mode=record.sync_mode,
                    attributes={**record.attributes, CORE_CONFIGS: kept},
                    now=datetime.now(UTC),
                )
            return await node_shadow.write_entry(ctx, namespace, name, CORE, settings.to_section())

    written = await retry_on_conflict(attempt, attempts=node_shadow.WRITE_ATTEMPTS)
    if written is not None:
        await ctx.desired_changed(node_shadow.changed(namespace, name, written))
    return _stored({CORE_CONFIGS: kept}, version)


def _stored(attributes: dict[str, Any], version: str) -> CoreConfigs:
    kept = attributes.get(CORE_CONFIGS)
    fields = kept if isinstance(kept, dict) else {}
    known = {k: v for k, v in fields.items() if k in CoreConfigs.__dataclass_fields__}
    return CoreConfigs(**{**known, "version": version})
