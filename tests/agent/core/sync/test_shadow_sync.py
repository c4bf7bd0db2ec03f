"""The shadow sync on its own against the real cloud and the session Mosquitto: polling timing.

The agent's other parts are left out so that the sync's own behaviour shows: here the node has
nothing new to report after connecting, so no report answer can tell it of a desired change.
What is timed is compared by counters and their order (`PollingReads`) or against the sync's own
schedule, never against a guess of where a tick is, so a loaded machine cannot fail these tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.contracts.desired import DesiredState
from agent.contracts.messages import CommandRequest
from agent.core.store import LocalStore
from agent.core.sync.link import LinkSettings
from agent.core.sync.shadow_sync import ShadowSync
from tests.agent.core.agent_kit import PollingReads, app_body, python_service
from tests.harness.cloud import CloudServer
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI
from tools.kit.waiting import eventually

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(60)]

INTERVAL = 1.0  # the polling sync's report interval


@dataclass
class Node:
    """One node of the cloud, a polling ShadowSync for it, and the desired states it handed on."""

    name: str
    sync: ShadowSync
    adopted: list[DesiredState]
    props: dict[str, str]
    """What the node reports as its properties; change it and call `report_soon`."""
    reads: PollingReads
    builds: list[float] = field(default_factory=list)
    """The loop time of each report the sync built (one per tick while connected)."""
    on_build: list[Callable[[], None]] = field(default_factory=list)
    """Called inside each build, after the report's content was taken."""


@pytest.fixture
async def polling_node(
    cloud: CloudServer,
    mosquitto: MosquittoBroker,
    pki: HarnessPKI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Node]:
    """A new node (label `run=<its name>`) whose sync polls every second, running."""
    name = f"n-{uuid.uuid4().hex[:10]}"
    await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": {"run": name}})
    nid = f"default.{name}"
    cert = pki.node(nid)
    store = LocalStore(tmp_path / "store")
    await store.open()

    props = {"fixed": "yes"}
    builds: list[float] = []
    on_build: list[Callable[[], None]] = []

    async def reported() -> dict[str, Any]:
        builds.append(asyncio.get_running_loop().time())
        content = {"nodeprops": dict(props)}  # unless a test changes it: one report, then none
        for hook in on_build:
            hook()
        return content

    async def commands(request: CommandRequest) -> Any:
        raise ValueError(f"no commands here ({request.cmd})")

    settings = LinkSettings(
        host=mosquitto.host,
        port=mosquitto.port,
        nid=nid,
        ca_file=pki.ca_file,
        cert_file=cert.cert_file,
        key_file=cert.key_file,
        keepalive=5,
        timeout=5,
    )
    adopted: list[DesiredState] = []
    sync = ShadowSync(
        settings,
        store,
        report_interval=INTERVAL,
        reported=reported,
        on_desired=adopted.append,
        commands=commands,
        poll=True,
    )
    await sync.load()
    reads = PollingReads(sync)
    with reads.watch(monkeypatch):
        task = asyncio.create_task(sync.run(), name=f"sync-{name}")
        try:
            yield Node(name, sync, adopted, props, reads, builds, on_build)
        finally:
            await sync.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_polling_reads_the_shadow_at_every_tick_even_with_nothing_to_report(
    cloud: CloudServer, polling_node: Node
) -> None:
    sync, reads = polling_node.sync, polling_node.reads

    async def reported_once() -> bool:
        return sync.reports_sent == 1

    await eventually(reported_once, what="the report after connecting")
    ticks = reads.ticks
    await eventually(lambda: _more(lambda: reads.ticks, ticks), what="a tick")
    run = polling_node.name
    app = await cloud.ok(
        "POST", "/v1/apps", app_body(f"poll-{run}", f"run={run}", python_service("pass"))
    )

    async def adopted() -> bool:
        return any(app["name"] in desired.apps for desired in polling_node.adopted)

    await eventually(adopted, what="the change read at a tick")
    assert reads.ignored_deltas >= 1, "the cloud pushed a delta for the change"
    # Every read came from a tick or the connect: the delta made none, a tick's read found it.
    assert reads.stray_reads == []
    assert reads.reads >= 2
    assert sync.reports_sent == 1  # no report answer told it: the tick's own read did


async def test_polling_sends_a_report_asked_for_early_only_at_the_next_tick(
    polling_node: Node,
) -> None:
    """Every build asks for an early report of a new change: reports still follow the ticks.

    A polling sync builds a report at each tick only: however it is asked, k builds span at
    least k - 2 intervals of its own schedule (a late tick only moves the later ones further
    away, so load cannot make this fail). A sync that honoured the early request would build
    again after the 0.2 s report gap, five times as often.
    """
    sync = polling_node.sync

    async def reported(count: int) -> bool:
        return sync.reports_sent >= count

    await eventually(lambda: reported(1), what="the report after connecting")
    first = len(polling_node.builds)

    def ask_early() -> None:
        polling_node.props["changed"] = str(len(polling_node.builds))
        sync.report_soon()

    polling_node.on_build.append(ask_early)
    sent = sync.reports_sent
    builds = 5

    async def built() -> bool:
        return len(polling_node.builds) > first + builds

    await eventually(built, what=f"{builds + 1} builds asked for early reports")
    await eventually(lambda: reported(sent + builds), what="the reports asked for, at the ticks")
    window = polling_node.builds[first : first + builds + 1]
    assert len(window) == builds + 1
    span = window[-1] - window[0]
    assert span >= (builds - 1) * INTERVAL - 0.05, (
        f"{builds + 1} builds within {span:.2f} s: an early report did not wait for its tick"
    )


async def _more(count: Callable[[], int], than: int) -> bool:
    return count() > than
