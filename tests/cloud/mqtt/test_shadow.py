"""Shadow reports, reads and delta pushes through the real bridge and a real Mosquitto."""

from __future__ import annotations

import asyncio

from agent.contracts.topics import Channel
from tests.cloud.mqtt.conftest import AgentFactory, labelled_node, make_node, native_app, unique
from tests.harness.cloud import CloudServer

UPDATE_ANSWERS = (Channel.SHADOW_UPDATE_ACCEPTED, Channel.SHADOW_UPDATE_REJECTED)
GET_ANSWERS = (Channel.SHADOW_GET_ACCEPTED, Channel.SHADOW_GET_REJECTED)

CORE = {"version": "1.0", "python": "3.11.7", "backend": "native"}


async def test_a_report_is_accepted_with_the_merged_state_and_the_next_version(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    nid = await make_node(cloud)
    name = nid.split(".", 1)[1]
    async with agent(nid) as node:
        report = {"state": {"reported": {"core": CORE}}, "clientToken": "t-1"}
        channel, answer = await node.ask(Channel.SHADOW_UPDATE, report, UPDATE_ANSWERS)
        assert channel is Channel.SHADOW_UPDATE_ACCEPTED, answer
        assert answer["state"] == {"reported": {"core": CORE}}
        assert answer["version"] == 2
        assert answer["clientToken"] == "t-1"
        assert set(answer["metadata"]["reported"]["core"]["version"]) == {"timestamp"}

    stored = await cloud.ok("GET", f"/v1/nodes/{name}/shadow")
    assert stored["state"]["reported"] == {"core": CORE}
    assert stored["version"] == 2
    view = await cloud.ok("GET", f"/v1/nodes/{name}")
    assert view["ready"] == 1  # reported just now, no presence known


async def test_versions_stay_contiguous_over_many_reports(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    nid = await make_node(cloud)
    async with agent(nid) as node:
        versions = []
        for step in range(10):
            report = {"state": {"reported": {"step": step}}, "clientToken": f"s{step}"}
            channel, answer = await node.ask(Channel.SHADOW_UPDATE, report, UPDATE_ANSWERS)
            assert channel is Channel.SHADOW_UPDATE_ACCEPTED, answer
            assert answer["clientToken"] == f"s{step}"
            versions.append(answer["version"])
    assert versions == list(range(2, 12))


async def test_a_report_naming_the_current_version_is_accepted(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    nid = await make_node(cloud)
    async with agent(nid) as node:
        report = {"state": {"reported": {"a": 1}}, "version": 1}
        channel, answer = await node.ask(Channel.SHADOW_UPDATE, report, UPDATE_ANSWERS)
        assert channel is Channel.SHADOW_UPDATE_ACCEPTED, answer
        assert answer["version"] == 2


async def test_an_app_created_over_rest_pushes_a_delta_to_exactly_the_matched_nodes(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    label = unique("role")
    matched = [await make_node(cloud, {"role": label}) for _ in range(2)]
    other = await make_node(cloud, {"role": "elsewhere"})
    async with agent(matched[0]) as first, agent(matched[1]) as second, agent(other) as third:
        app = await cloud.ok("POST", "/v1/apps", native_app(unique("app"), f"role={label}"))
        for node in (first, second):
            delta = await node.next(Channel.SHADOW_UPDATE_DELTA)
            # The version of the document that holds the change and its whole desired section
            # (decisions #111, #124), read from the write, not from the document.
            assert (delta["state"], delta["metadata"]) == ({}, {})
            _, doc = await node.ask(Channel.SHADOW_GET, {"clientToken": "read"}, GET_ANSWERS)
            assert doc["state"]["desired"]["apps"] == {app["name"]: app["version"]}
            assert delta["desired"] == doc["state"]["desired"]
            assert delta["version"] == doc["version"]
            assert delta["timestamp"] == doc["timestamp"]
        # The unmatched node's answer to its own request comes after any delta the cloud had
        # queued for it, so an empty queue here means none was sent.
        await third.ask(Channel.SHADOW_GET, {"clientToken": "probe"}, GET_ANSWERS)
        assert third.pending(Channel.SHADOW_UPDATE_DELTA) == 0


async def test_removing_an_app_pushes_an_empty_delta_that_moves_the_version(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    label, nid = await labelled_node(cloud)
    app = await cloud.ok("POST", "/v1/apps", native_app(unique("app"), f"role={label}"))
    async with agent(nid) as node:
        caught_up = {"state": {"reported": {"apps": {app["name"]: app["version"]}}}}
        _, accepted = await node.ask(Channel.SHADOW_UPDATE, caught_up, UPDATE_ANSWERS)
        await cloud.ok("DELETE", f"/v1/apps/{app['name']}")
        # The push of the app's creation may still arrive (it raced the connect): skip deltas
        # of versions the node has already seen.
        delta = await node.next(Channel.SHADOW_UPDATE_DELTA)
        while delta["version"] <= accepted["version"]:
            delta = await node.next(Channel.SHADOW_UPDATE_DELTA)
    # Nothing desired is missing, but the node must learn that the app is gone: the desired
    # section it carries no longer names it.
    assert delta["state"] == {}
    assert delta["version"] > accepted["version"]
    assert app["name"] not in delta["desired"].get("apps", {})


async def test_a_report_that_leaves_desired_unmet_is_followed_by_a_delta(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    label, nid = await labelled_node(cloud)
    app = await cloud.ok("POST", "/v1/apps", native_app(unique("app"), f"role={label}"))
    async with agent(nid) as node:
        report = {"state": {"reported": {"apps": {}}}}
        channel, answer = await node.ask(Channel.SHADOW_UPDATE, report, UPDATE_ANSWERS)
        assert channel is Channel.SHADOW_UPDATE_ACCEPTED
        delta = await node.next(Channel.SHADOW_UPDATE_DELTA)
        assert delta["state"] == {"apps": {app["name"]: app["version"]}}
        assert delta["desired"]["apps"] == {app["name"]: app["version"]}
        assert delta["version"] == answer["version"]

        caught_up = {"state": {"reported": {"apps": {app["name"]: app["version"]}}}}
        channel, _ = await node.ask(Channel.SHADOW_UPDATE, caught_up, UPDATE_ANSWERS)
        assert channel is Channel.SHADOW_UPDATE_ACCEPTED
        await node.ask(Channel.SHADOW_GET, {}, GET_ANSWERS)
        assert node.pending(Channel.SHADOW_UPDATE_DELTA) == 0


async def test_get_after_reconnect_returns_the_current_document(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    label, nid = await labelled_node(cloud)
    async with agent(nid) as node:
        report = {"state": {"reported": {"core": CORE}}}
        _, accepted = await node.ask(Channel.SHADOW_UPDATE, report, UPDATE_ANSWERS)
    app = await cloud.ok("POST", "/v1/apps", native_app(unique("app"), f"role={label}"))
    async with agent(nid) as node:
        channel, doc = await node.ask(Channel.SHADOW_GET, {"clientToken": "after"}, GET_ANSWERS)
    assert channel is Channel.SHADOW_GET_ACCEPTED, doc
    assert doc["clientToken"] == "after"
    assert doc["state"]["reported"] == {"core": CORE}
    assert doc["state"]["desired"]["apps"] == {app["name"]: app["version"]}
    assert doc["state"]["delta"] == {"apps": {app["name"]: app["version"]}}
    assert doc["version"] == accepted["version"] + 1
    assert set(doc["metadata"]) == {"desired", "reported"}


async def test_concurrent_reports_from_many_nodes_all_land(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    nids = [await make_node(cloud) for _ in range(5)]

    async def run(nid: str) -> list[int]:
        async with agent(nid) as node:
            got = []
            for step in range(4):
                report = {"state": {"reported": {"step": step}}}
                channel, answer = await node.ask(Channel.SHADOW_UPDATE, report, UPDATE_ANSWERS)
                assert channel is Channel.SHADOW_UPDATE_ACCEPTED, answer
                got.append(answer["version"])
            return got

    results = await asyncio.gather(*(run(nid) for nid in nids))
    assert all(versions == [2, 3, 4, 5] for versions in results)
    for nid in nids:
        doc = await cloud.ok("GET", f"/v1/nodes/{nid.split('.', 1)[1]}/shadow")
        assert doc["state"]["reported"] == {"step": 3}
        assert doc["version"] == 5
