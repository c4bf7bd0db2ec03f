"""Baetyl's core configs of a node (`GET/PUT /v1/nodes/{name}/core/configs`).

All of Baetyl's keys are kept in the node's attributes and shown back. Two act on the agent:
`frequency` (seconds between reports) and `logLevel`, which go into the node's desired `core`
entry; the agent puts them in force without a restart and reports them back, which closes the
delta (agent.contracts.core_settings, decision #146). `version` names the agent version; until
agent upgrades exist here, only the version the node runs (or, before it reports, this cloud's
own) is accepted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from agent.contracts import shadow
from agent.contracts.core_settings import CORE, CoreSettings
from agent.contracts.version import VERSION
from cloud.errors import Invalid
from cloud.services import node_shadow, nodes
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
    reported = state.document["state"].get(shadow.REPORTED) or {}
    core = reported.get("core") if isinstance(reported, dict) else None
    version = core.get("version") if isinstance(core, dict) else None
    return version if isinstance(version, str) and version else VERSION


async def get(ctx: CloudContext, caller: Caller, name: str) -> CoreConfigs:
    """The node's core configs: what was set, Baetyl's defaults for the rest."""
    state = await nodes.get(ctx, caller, name)
    return _stored(state.record.attributes, running_version(state))


async def put(ctx: CloudContext, caller: Caller, name: str, wanted: CoreConfigs) -> CoreConfigs:
    """Keep `wanted` and send its `frequency` and `logLevel` to the node."""
    namespace = caller.namespace
    state = await nodes.get(ctx, caller, name)
    running = running_version(state)
    if wanted.version and wanted.version not in (running, VERSION):
        raise Invalid(
            f"version {wanted.version!r}: the node runs agent {running} and this cloud has "
            f"{VERSION}; upgrading agents is not offered yet"
        )
    kept = {k: v for k, v in asdict(wanted).items() if k != "version"}
    settings = CoreSettings(frequency=wanted.frequency, log_level=wanted.log_level)

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
    return _stored({CORE_CONFIGS: kept}, running)


def _stored(attributes: dict[str, Any], version: str) -> CoreConfigs:
    kept = attributes.get(CORE_CONFIGS)
    fields = kept if isinstance(kept, dict) else {}
    known = {k: v for k, v in fields.items() if k in CoreConfigs.__dataclass_fields__}
    return CoreConfigs(**{**known, "version": version})
