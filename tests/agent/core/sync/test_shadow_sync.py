"""The shadow sync on its own against the real cloud and the session Mosquitto: polling timing.

The agent's other parts are left out so that the sync's own behaviour shows: here the node has
nothing new to report after connecting, so no report answer can tell it of a desired change.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.contracts.messages import CommandRequest
from agent.core.store import LocalStore
from agent.core.sync import shadow_sync
from agent.core.sync.link import LinkSettings
from agent.core.sync.shadow_sync import ShadowSync
from tests.agent.core.agent_kit import app_body, eventually, python_service
from tests.harness.cloud import CloudServer
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(60)]

POLLED = "polling the shadow"
IGNORED_DELTA = "ignored a delta: polling"


@dataclass
class Node:
    """One node of the cloud, a polling ShadowSync for it, and the desired states it handed on."""

    name: str
    sync: ShadowSync
    adopted: list[dict[str, Any]]
    props: dict[str, str]
    """What the node reports as its properties; change it and call `report_soon`."""


@pytest.fixture
async def polling_node(
    cloud: CloudServer, mosquitto: MosquittoBroker, pki: HarnessPKI, tmp_path: Path
) -> AsyncIterator[Node]:
    """A new node (label `run=<its name>`) whose sync polls every second, running."""
    name = f"n-{uuid.uuid4().hex[:10]}"
    await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": {"run": name}})
    nid = f"default.{name}"
    cert = pki.node(nid)
    store = LocalStore(tmp_path / "store")
    await store.open()

    props = {"fixed": "yes"}

    async def reported() -> dict[str, Any]:
        return {"nodeprops": dict(props)}  # unless a test changes it: one report, then none

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
    adopted: list[dict[str, Any]] = []
    sync = ShadowSync(
        settings,
        store,
        report_interval=1.0,
        reported=reported,
        on_desired=adopted.append,
        commands=commands,
        poll=True,
    )
    await sync.load()
    task = asyncio.create_task(sync.run(), name=f"sync-{name}")
    try:
        yield Node(name, sync, adopted, props)
    finally:
        await sync.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_polling_reads_the_shadow_at_every_tick_even_with_nothing_to_report(
    cloud: CloudServer, polling_node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=shadow_sync.__name__)
    sync = polling_node.sync

    async def reported_once() -> bool:
        return sync.reports_sent == 1

    await eventually(reported_once, timeout=5, what="the report after connecting")
    polls = _logged(caplog, POLLED)
    await eventually(lambda: _logged_more(caplog, POLLED, polls), timeout=3, what="a tick")
    await asyncio.sleep(0.2)  # that tick's read is done; the next tick is 0.8 s away
    caplog.clear()
    run = polling_node.name
    app = await cloud.ok(
        "POST", "/v1/apps", app_body(f"poll-{run}", f"run={run}", python_service("pass"))
    )
    await eventually(lambda: _logged_more(caplog, IGNORED_DELTA, 0), timeout=3, what="the delta")
    await asyncio.sleep(0.2)  # a pushing sync has read the shadow by now
    assert not any(app["name"] in desired.get("apps", {}) for desired in polling_node.adopted)

    async def adopted() -> bool:
        return any(app["name"] in desired.get("apps", {}) for desired in polling_node.adopted)

    await eventually(adopted, timeout=3, what="the change read at the next tick")
    assert _logged(caplog, POLLED) >= 1
    assert sync.reports_sent == 1  # no report answer told it: the tick's own read did


async def test_polling_sends_a_report_asked_for_early_only_at_the_next_tick(
    polling_node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=shadow_sync.__name__)
    sync = polling_node.sync

    async def reported(count: int) -> bool:
        return sync.reports_sent == count

    await eventually(lambda: reported(1), timeout=5, what="the report after connecting")
    polls = _logged(caplog, POLLED)
    await eventually(lambda: _logged_more(caplog, POLLED, polls), timeout=3, what="a tick")
    await asyncio.sleep(0.25)  # past the tick's report gap; the next tick is ≈ 0.75 s away
    polling_node.props["changed"] = "now"
    sync.report_soon()
    await asyncio.sleep(0.35)  # a pushing sync has sent it by now
    assert sync.reports_sent == 1, "an early report would tell of desired changes early"
    await eventually(lambda: reported(2), timeout=3, what="the report at the next tick")


def _logged(caplog: pytest.LogCaptureFixture, message: str) -> int:
    return sum(record.getMessage() == message for record in caplog.records)


async def _logged_more(caplog: pytest.LogCaptureFixture, message: str, than: int) -> bool:
    return _logged(caplog, message) > than
