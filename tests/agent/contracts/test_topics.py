"""Topic builders and the strict topic parser (DESIGN §4)."""

import pytest

from agent.contracts import topics
from agent.contracts.topics import Channel, Direction

NID = "default.edge-1"


@pytest.mark.parametrize("channel", list(Channel), ids=lambda c: c.value)
def test_every_channel_round_trips_through_build_and_parse(channel: Channel) -> None:
    text = topics.build(NID, channel)
    assert text == f"baetyl/v1/{NID}/{channel.value}"
    parsed = topics.parse(text)
    assert parsed == topics.Topic(NID, channel)
    assert (parsed.namespace, parsed.node) == ("default", "edge-1")
    assert str(parsed) == text


def test_channels_are_the_thirteen_of_the_design_and_the_three_of_certificate_renewal() -> None:
    assert {c.value for c in Channel} == {
        "shadow/update",
        "shadow/update/accepted",
        "shadow/update/rejected",
        "shadow/update/delta",
        "shadow/get",
        "shadow/get/accepted",
        "shadow/get/rejected",
        "resources/get",
        "resources/get/accepted",
        "resources/get/rejected",
        "cmd/request",
        "cmd/response",
        "presence",
        "cert/renew",
        "cert/renew/accepted",
        "cert/renew/rejected",
    }


@pytest.mark.parametrize(
    ("channel", "direction"),
    [
        (Channel.SHADOW_UPDATE, Direction.TO_CLOUD),
        (Channel.SHADOW_GET, Direction.TO_CLOUD),
        (Channel.RESOURCES_GET, Direction.TO_CLOUD),
        (Channel.CMD_RESPONSE, Direction.TO_CLOUD),
        (Channel.PRESENCE, Direction.TO_CLOUD),
        (Channel.SHADOW_UPDATE_DELTA, Direction.TO_AGENT),
        (Channel.SHADOW_GET_ACCEPTED, Direction.TO_AGENT),
        (Channel.RESOURCES_GET_REJECTED, Direction.TO_AGENT),
        (Channel.CMD_REQUEST, Direction.TO_AGENT),
        (Channel.CERT_RENEW, Direction.TO_CLOUD),
        (Channel.CERT_RENEW_ACCEPTED, Direction.TO_AGENT),
        (Channel.CERT_RENEW_REJECTED, Direction.TO_AGENT),
    ],
)
def test_channel_directions(channel: Channel, direction: Direction) -> None:
    assert channel.direction is direction


def test_only_presence_is_retained() -> None:
    assert [c for c in Channel if c.retained] == [Channel.PRESENCE]


@pytest.mark.parametrize(
    ("topic", "fragment"),
    [
        ("baetyl/v1/default.edge-1/shadow/updates", "unknown channel 'shadow/updates'"),
        ("baetyl/v1/default.edge-1/shadow", "unknown channel 'shadow'"),
        ("baetyl/v1/default.edge-1", "no channel"),
        ("baetyl/v1/default.edge-1/", "no channel"),
        ("baetyl/v2/default.edge-1/presence", "does not start with"),
        ("/baetyl/v1/default.edge-1/presence", "does not start with"),
        ("baetyl/v1/+/presence", "wildcard"),
        ("baetyl/v1/default.edge-1/#", "wildcard"),
        ("baetyl/v1/default/presence", "form '<namespace>.<node>'"),
        ("baetyl/v1/Default.edge-1/presence", "namespace 'Default'"),
        ("baetyl/v1/default.e/presence", "node name 'e'"),
        ("baetyl/v1/baetyl-cloud:r1/presence", "node id"),
    ],
)
def test_bad_topics_are_refused_with_a_clear_reason(topic: str, fragment: str) -> None:
    with pytest.raises(topics.TopicError, match=fragment.replace("(", r"\(").replace("+", r"\+")):
        topics.parse(topic)


@pytest.mark.parametrize("nid", ["default.a+b", "default.#", "nodot", "", "default.x/y"])
def test_build_refuses_bad_nids(nid: str) -> None:
    with pytest.raises(topics.TopicError):
        topics.build(nid, Channel.PRESENCE)


def test_build_refuses_unknown_channel_strings() -> None:
    with pytest.raises(topics.TopicError, match="unknown channel"):
        topics.build(NID, "shadow/delete")
    assert topics.build(NID, "presence") == f"baetyl/v1/{NID}/presence"


def test_agent_subscribes_to_every_cloud_to_agent_channel_of_its_own_nid_only() -> None:
    subs = topics.agent_subscriptions(NID)
    assert len(subs) == 10
    for sub in subs:
        parsed = topics.parse(sub)
        assert parsed.nid == NID
        assert parsed.channel.direction is Direction.TO_AGENT


def test_cloud_shares_requests_but_hears_every_presence_and_command_answer() -> None:
    subs = topics.cloud_subscriptions(group="g0123")
    shared = [s for s in subs if s.startswith("$share/")]
    assert sorted(shared) == sorted(
        f"$share/g0123/baetyl/v1/+/{c}"
        for c in ("shadow/update", "shadow/get", "resources/get", "cert/renew")
    )
    plain = sorted(set(subs) - set(shared))
    assert plain == ["baetyl/v1/+/cmd/response", "baetyl/v1/+/presence"]


@pytest.mark.parametrize("group", ["", "a/b", "g+", "#"])
def test_cloud_subscription_group_is_validated(group: str) -> None:
    with pytest.raises(topics.TopicError):
        topics.cloud_subscriptions(group=group)


def test_node_filter_covers_the_nodes_acl_prefix() -> None:
    assert topics.node_filter(NID) == f"baetyl/v1/{NID}/#"
