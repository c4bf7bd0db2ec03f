"""A Baetyl body with container fields, deployed on a real native node through a real cloud:
it runs, and the app's status names the fields the native backend left unused (issue 16)."""

from __future__ import annotations

import socket
import sys

import aiohttp

from tests.agent.core.agent_kit import SLEEPER
from tests.e2e.conftest import AgentFactory, Cloud
from tests.e2e.test_scenarios import wait_processes, wait_ready, wait_running
from tools.kit.rest import Rest

ONLINE = 1


async def test_fields_a_native_node_does_not_use_are_warned_of_in_the_apps_status(
    edge_cloud: Cloud, edge_agents: AgentFactory
) -> None:
    cloud = edge_cloud
    await cloud.ctl("node", "create", "edge-1", "-l", "role=gw")
    agent = await edge_agents("edge-1")
    await wait_ready(cloud, "edge-1", ONLINE)
    body = {
        "name": "ported", "mode": "native", "selector": "role=gw",
        "createTime": "0001-01-01T00:00:00Z", "cronTime": "0001-01-01T00:00:00Z",
        "cronStatus": 0, "ota": {}, "replica": 0,
        "services": [{
            "name": "main", "image": "hub.example/ported:1", "hostname": "ported",
            "command": [sys.executable, "-c", SLEEPER], "replica": 1,
            "devices": [{"devicePath": "/dev/null"}], "type": "deployment",
        }],
    }  # fmt: skip
    async with aiohttp.ClientSession() as session:
        app = await Rest(session, cloud.url, cloud.token).ok("POST", "/v1/apps", body)
    assert app["replica"] == 1  # the service's, as Baetyl fills it
    await wait_processes(agent, "ported", 1)
    stats = await wait_running(cloud, "edge-1", "ported", app["version"])
    (instance,) = stats["instances"].values()
    assert (instance["appName"], instance["nodeName"]) == ("ported", socket.gethostname())
    assert instance["ip"] == ""  # a process shares the host's addresses
    assert stats["warnings"] == [
        "services 'main': image: a native service runs its command, not an image",
        "services 'main': hostname: a native process has the host's name",
        "services 'main': devices: a native process opens device paths itself, as the agent's user",
    ]
