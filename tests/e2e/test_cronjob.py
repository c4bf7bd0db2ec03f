"""A `workload: cronjob` app through a real cloud onto a real native agent (issue 16, decision
#152): its program runs at the next time of `* * * * *` and the node reports the run, its
result and the next time, with no warning that the schedule is unused."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import AgentFactory, Cloud, Json, eventually
from tests.e2e.test_scenarios import reported_app, wait_ready
from tools.kit.rest import Rest

pytestmark = pytest.mark.timeout(240)

ONLINE = 1
FIRST_RUN = 90.0
"""The first time of `* * * * *` comes within a minute of the app reaching the node."""


def ticker(out: Path) -> Json:
    """A Baetyl-style cronjob body whose program notes when it ran, UTC, in `out`."""
    script = (
        "import datetime, os\n"
        f"with open({str(out)!r}, 'a') as f:\n"
        "    f.write(datetime.datetime.now(datetime.UTC).isoformat() + '\\n')\n"
    )
    return {
        "name": "ticker", "mode": "native", "selector": "role=gw",
        "workload": "cronjob", "cronTime": "* * * * *", "cronStatus": 0,
        "jobConfig": {"completions": 0, "backoffLimit": 6, "restartPolicy": "Never"},
        "services": [{"name": "tick", "command": [sys.executable, "-c", script]}],
    }  # fmt: skip


async def test_a_cronjob_app_runs_on_its_schedule_on_a_native_node(
    edge_cloud: Cloud, edge_agents: AgentFactory, tmp_path: Path
) -> None:
    cloud = edge_cloud
    await cloud.ctl("node", "create", "edge-1", "-l", "role=gw")
    agent = await edge_agents("edge-1")
    await wait_ready(cloud, "edge-1", ONLINE)
    out = tmp_path / "ticks"
    async with aiohttp.ClientSession() as session:
        app = await Rest(session, cloud.url, cloud.token).ok("POST", "/v1/apps", ticker(out))

    def ran() -> list[str] | None:
        return out.read_text().split() if out.exists() else None

    (first, *_) = await eventually(
        ran, limit=FIRST_RUN, what="the first scheduled run", detail=lambda: agent.log()[-3000:]
    )
    ran_at = datetime.fromisoformat(first)

    async def reported() -> Json | None:
        stats = await reported_app(cloud, "edge-1", "ticker")
        job = (stats or {}).get("cronJob") or {}
        return stats if job.get("lastResult") == "Succeeded" else None

    stats = await eventually(reported, limit=30, what="the run reported")
    assert (stats["version"], stats["status"], stats["warnings"]) == (
        app["version"],
        "Running",
        [],
    )
    job = stats["cronJob"]
    scheduled = datetime.fromisoformat(job["lastScheduleTime"])
    assert scheduled.second == 0
    # It ran at its minute, not at whatever time the app reached the node.
    assert timedelta(0) <= ran_at - scheduled < timedelta(seconds=30)
    assert datetime.fromisoformat(job["nextScheduleTime"]) > scheduled
    assert (job["schedule"], job["skipped"], job["missed"]) == ("* * * * *", 0, 0)
    (instance,) = stats["instances"].values()
    assert instance["status"] == "Succeeded"
