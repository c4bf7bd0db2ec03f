"""Bad input on every request channel: the right rejection code, nothing stored, bridge alive."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.contracts.topics import Channel
from tests.cloud.mqtt.conftest import STRICT_RATE, AgentFactory, make_node, unique
from tests.harness.cloud import CloudServer

UPDATE = Channel.SHADOW_UPDATE
GET = Channel.SHADOW_GET
RESOURCES = Channel.RESOURCES_GET
RENEW = Channel.CERT_RENEW
ANSWERS = {
    UPDATE: (Channel.SHADOW_UPDATE_ACCEPTED, Channel.SHADOW_UPDATE_REJECTED),
    GET: (Channel.SHADOW_GET_ACCEPTED, Channel.SHADOW_GET_REJECTED),
    RESOURCES: (Channel.RESOURCES_GET_ACCEPTED, Channel.RESOURCES_GET_REJECTED),
    RENEW: (Channel.CERT_RENEW_ACCEPTED, Channel.CERT_RENEW_REJECTED),
}


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


def _reported(value: Any, **extra: Any) -> bytes:
    return json.dumps({"state": {"reported": value}, **extra}).encode()


def _csr(common_name: str) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _renew(**fields: Any) -> bytes:
    return json.dumps({"clientToken": "c", **fields}).encode()


REF = {"kind": "application", "name": "some-app", "version": "1"}
APP_STATS = {"name": "a", "version": "1", "status": "Running"}
BUSY = {"ready": True, "percent": {"cpu": 250.0}}
OVER_ONE = {"ready": True, "percent": {"cpu": "1.5"}}
ODD_NETIO = {"ready": True, "netio": {"bytesOut": "1"}}
MANY_LABELS = {"hostname": "h", "labels": {f"k{i}": "v" for i in range(2000)}}
CASES: list[tuple[str, Channel, bytes, int]] = [
    ("not JSON", UPDATE, b"{not json", 400),
    ("empty payload", UPDATE, b"", 400),
    ("not UTF-8", UPDATE, b"\xff\xfe{}", 400),
    ("JSON array", UPDATE, b"[1, 2]", 400),
    ("JSON string", UPDATE, b'"state"', 400),
    ("no section", UPDATE, b'{"state": {}}', 400),
    ("no state", UPDATE, b'{"clientToken": "c"}', 400),
    ("section not an object", UPDATE, _reported(5), 400),
    ("version as string", UPDATE, _reported({}, version="3"), 400),
    ("version zero", UPDATE, _reported({}, version=0), 400),
    ("version boolean", UPDATE, _reported({}, version=True), 400),
    ("extra field", UPDATE, _reported({}, extra=1), 400),
    ("writes delta", UPDATE, b'{"state": {"delta": {}}}', 400),
    ("NaN value", UPDATE, b'{"state": {"reported": {"a": NaN}}}', 400),
    ("clientToken with a space", UPDATE, _reported({}, clientToken="a b"), 400),
    ("clientToken too long", UPDATE, _reported({}, clientToken="x" * 65), 400),
    ("clientToken a number", UPDATE, _reported({}, clientToken=7), 400),
    ("too deep", UPDATE, _reported(_nested(9)), 400),
    ("key too long", UPDATE, _reported({"k" * 129: 1}), 400),
    ("section too large", UPDATE, _reported({"blob": "x" * 140_000}), 413),
    # A payload over the node limit (320 KiB) never reaches the cloud through the broker's
    # node-limits plugin: tests/cloud/mqtt/test_without_node_limits.py has the cloud's own 413.
    ("writes desired", UPDATE, b'{"state": {"desired": {"apps": {}}}}', 403),
    ("writes desired and reported", UPDATE, b'{"state": {"desired": {}, "reported": {}}}', 403),
    ("stale version", UPDATE, _reported({"a": 1}, version=7), 409),
    ("apps a string", UPDATE, _reported({"apps": "x"}), 400),
    ("appstats a number", UPDATE, _reported({"appstats": 5}), 400),
    ("app version a number", UPDATE, _reported({"sysapps": {"a": 1}}), 400),
    ("app stats without a status", UPDATE, _reported({"appstats": {"a": {"name": "a"}}}), 400),
    (
        "app status unknown",
        UPDATE,
        _reported({"appstats": {"a": dict(APP_STATS, status="Up")}}),
        400,
    ),
    ("node info a list", UPDATE, _reported({"node": {"h": ["x"]}}), 400),
    ("node stats not ready", UPDATE, _reported({"nodestats": {"h": {"usage": {}}}}), 400),
    ("percent over 100", UPDATE, _reported({"nodestats": {"h": BUSY}}), 400),
    ("percent a fraction over 1", UPDATE, _reported({"nodestats": {"h": OVER_ONE}}), 400),
    ("netio of unknown keys", UPDATE, _reported({"nodestats": {"h": ODD_NETIO}}), 400),
    ("core without a version", UPDATE, _reported({"core": {"python": "3"}}), 400),
    ("nodeprops not strings", UPDATE, _reported({"nodeprops": {"k": {"x": 1}}}), 400),
    ("modeinfo a string", UPDATE, _reported({"modeinfo": "x"}), 400),
    ("node labels by the thousand", UPDATE, _reported({"node": {"h": MANY_LABELS}}), 400),
    ("get with a bad token", GET, b'{"clientToken": 5}', 400),
    ("get with an extra field", GET, b'{"what": "all"}', 400),
    ("get not JSON", GET, b"get", 400),
    ("no resources", RESOURCES, b'{"clientToken": "r", "resources": []}', 400),
    (
        "unknown resource kind",
        RESOURCES,
        json.dumps({"clientToken": "r", "resources": [{**REF, "kind": "volume"}]}).encode(),
        400,
    ),
    (
        "too many resources",
        RESOURCES,
        json.dumps({"clientToken": "r", "resources": [REF] * 65}).encode(),
        400,
    ),
    ("resources without a version", RESOURCES, b'{"clientToken": "r", "resources": [{}]}', 400),
    ("renew without a csr", RENEW, _renew(), 400),
    ("renew with an empty csr", RENEW, _renew(csr=""), 400),
    ("renew with a csr not a string", RENEW, _renew(csr=5), 400),
    ("renew with a csr too long", RENEW, _renew(csr="x" * 20_000), 400),
    ("renew with an extra field", RENEW, _renew(csr=_csr("default.x"), key="k"), 400),
    ("renew with a csr not PEM", RENEW, _renew(csr="-----BEGIN CERTIFICATE REQUEST-----"), 400),
    ("renew for another node", RENEW, _renew(csr=_csr("default.someone-else")), 400),
]


@pytest.mark.parametrize(("what", "channel", "payload", "code"), CASES, ids=[c[0] for c in CASES])
async def test_a_bad_request_is_rejected_and_changes_nothing(
    cloud: CloudServer,
    agent: AgentFactory,
    what: str,
    channel: Channel,
    payload: bytes,
    code: int,
) -> None:
    nid = await make_node(cloud)
    name = nid.split(".", 1)[1]
    async with agent(nid) as node:
        answer_channel, answer = await node.ask(channel, payload, ANSWERS[channel])
        assert answer_channel is ANSWERS[channel][1], (what, answer)
        assert answer["code"] == code, (what, answer)
        assert answer["message"]
        sent = json.loads(payload) if code != 413 and _is_json(payload) else None
        token = sent.get("clientToken") if isinstance(sent, dict) else None
        if isinstance(token, str) and " " not in token and len(token) <= 64:
            assert answer.get("clientToken") == token
        else:
            assert "clientToken" not in answer or channel is RESOURCES

        doc = await cloud.ok("GET", f"/v1/nodes/{name}/shadow")
        assert (doc["version"], doc["state"]["reported"]) == (1, {}), what

        good = _reported({"ok": True}, clientToken="good")
        answer_channel, answer = await node.ask(UPDATE, good, ANSWERS[UPDATE])
        assert answer_channel is Channel.SHADOW_UPDATE_ACCEPTED, answer
        assert (answer["version"], answer["clientToken"]) == (2, "good")


def _is_json(payload: bytes) -> bool:
    try:
        json.loads(payload)
    except ValueError:
        return False
    return True


async def test_an_unknown_node_is_answered_404_and_nothing_is_stored(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    nid = f"default.{unique('ghost')}"
    async with agent(nid) as node:
        for channel, payload in (
            (UPDATE, _reported({"a": 1}, clientToken="u")),
            (GET, b'{"clientToken": "g"}'),
            (RESOURCES, json.dumps({"clientToken": "r", "resources": [REF]}).encode()),
            (RENEW, _renew(csr=_csr(nid))),
        ):
            answer_channel, answer = await node.ask(channel, payload, ANSWERS[channel])
            assert answer_channel is ANSWERS[channel][1]
            assert answer["code"] == 404
    missing = await cloud.call("GET", f"/v1/nodes/{nid.split('.', 1)[1]}")
    assert missing.status == 404


async def test_a_deleted_node_is_answered_404(cloud: CloudServer, agent: AgentFactory) -> None:
    nid = await make_node(cloud)
    await cloud.ok("DELETE", f"/v1/nodes/{nid.split('.', 1)[1]}")
    async with agent(nid) as node:
        answer_channel, answer = await node.ask(UPDATE, _reported({"a": 1}), ANSWERS[UPDATE])
        assert (answer_channel, answer["code"]) == (Channel.SHADOW_UPDATE_REJECTED, 404)
        answer_channel, answer = await node.ask(RENEW, _renew(csr=_csr(nid)), ANSWERS[RENEW])
        assert (answer_channel, answer["code"]) == (Channel.CERT_RENEW_REJECTED, 404)


async def test_a_flooding_node_is_rate_limited_and_others_are_not(
    strict_cloud: CloudServer, agent: AgentFactory
) -> None:
    cloud = strict_cloud
    flooder, calm = await make_node(cloud), await make_node(cloud)
    async with agent(flooder) as node, agent(calm) as other:
        sent = 150  # far more than STRICT_RATE allows in the time they take to send
        for step in range(sent):
            await node.publish(GET, {"clientToken": f"f{step}"})
        codes: list[int] = []
        accepted = 0
        while accepted + len(codes) < sent:
            channel, answer = await node.next_of(ANSWERS[GET])
            if channel is Channel.SHADOW_GET_ACCEPTED:
                accepted += 1
            else:
                codes.append(answer["code"])
        assert codes
        assert set(codes) == {429}
        assert accepted >= STRICT_RATE  # the bucket starts full
        channel, _ = await other.ask(GET, {"clientToken": "calm"}, ANSWERS[GET])
        assert channel is Channel.SHADOW_GET_ACCEPTED


async def test_unknown_topic_suffixes_are_dropped_and_the_bridge_keeps_serving(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    nid = await make_node(cloud)
    async with agent(nid) as node:
        await node.client.publish(f"baetyl/v1/{nid}/shadow/bogus", b"{}", qos=1)
        await node.client.publish(f"baetyl/v1/{nid}/cmd/response", b"{", qos=1)
        channel, answer = await node.ask(UPDATE, _reported({"a": 1}), ANSWERS[UPDATE])
    assert channel is Channel.SHADOW_UPDATE_ACCEPTED, answer


async def test_a_report_is_checked_as_merged_so_partial_patches_pass(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    # Agents send recursive diffs: {"appstats": {"a": {"status": "Failed"}}} is no whole AppStats
    # but leaves one once merged; a patch that leaves garbage is refused and stores nothing.
    nid = await make_node(cloud)
    name = nid.split(".", 1)[1]
    async with agent(nid) as node:
        full = _reported({"apps": {"a": "1"}, "appstats": {"a": APP_STATS}})
        channel, answer = await node.ask(UPDATE, full, ANSWERS[UPDATE])
        assert channel is Channel.SHADOW_UPDATE_ACCEPTED, answer
        partial = _reported({"appstats": {"a": {"status": "Failed", "cause": "exit 1"}}})
        channel, answer = await node.ask(UPDATE, partial, ANSWERS[UPDATE])
        assert channel is Channel.SHADOW_UPDATE_ACCEPTED, answer
        before = await cloud.ok("GET", f"/v1/nodes/{name}/shadow")
        for bad in ({"appstats": {"a": {"status": "Exploded"}}}, {"appstats": {"a": None, "b": 1}}):
            channel, answer = await node.ask(UPDATE, _reported(bad), ANSWERS[UPDATE])
            assert (channel, answer["code"]) == (Channel.SHADOW_UPDATE_REJECTED, 400), answer
            assert "state.reported.appstats" in answer["message"]
        assert await cloud.ok("GET", f"/v1/nodes/{name}/shadow") == before
        removed = _reported({"apps": None, "appstats": {"a": None}})
        channel, answer = await node.ask(UPDATE, removed, ANSWERS[UPDATE])
        assert channel is Channel.SHADOW_UPDATE_ACCEPTED, answer
    view = await cloud.ok("GET", f"/v1/nodes/{name}")
    assert view["report"].get("apps", []) == []
    assert view["report"]["appstats"] == []


async def test_an_older_agents_node_stats_are_taken_and_shown_in_baetyls_formats(
    cloud: CloudServer, agent: AgentFactory
) -> None:
    # Agents before decision 150 wrote millicores and 0-100 numbers; the cloud still takes them
    # (an agent not yet upgraded, or rolled back), and an upgraded agent's diff goes over them.
    nid = await make_node(cloud)
    name = nid.split(".", 1)[1]
    old = {
        "ready": True,
        "usage": {"cpu": "250m", "memory": "512Mi"},
        "capacity": {"cpu": "4", "memory": "8Gi"},
        "percent": {"cpu": 6.25, "memory": 6.25},
    }
    async with agent(nid) as node:
        channel, answer = await node.ask(
            UPDATE, _reported({"nodestats": {"h": old}}), ANSWERS[UPDATE]
        )
        assert channel is Channel.SHADOW_UPDATE_ACCEPTED, answer
        shown = (await cloud.ok("GET", f"/v1/nodes/{name}"))["report"]["nodestats"]["h"]
        assert shown["usage"] == {"cpu": "0.25", "memory": str(512 * 2**20)}
        assert shown["percent"] == {"cpu": "0.0625", "memory": "0.0625"}
        upgraded = {
            "usage": {"cpu": "0.5"},
            "percent": {"cpu": "0.125"},
            "netio": {"netBytesSent": "2048", "netBytesRecv": "4096"},
        }
        patch = _reported({"nodestats": {"h": upgraded}})
        channel, answer = await node.ask(UPDATE, patch, ANSWERS[UPDATE])
        assert channel is Channel.SHADOW_UPDATE_ACCEPTED, answer
    shown = (await cloud.ok("GET", f"/v1/nodes/{name}/stats"))["report"]["nodestats"]["h"]
    assert shown["usage"] == {"cpu": "0.5", "memory": str(512 * 2**20)}
    assert shown["percent"] == {"cpu": "0.125", "memory": "0.0625"}
    assert shown["netio"] == {"netBytesSent": "2048", "netBytesRecv": "4096"}
