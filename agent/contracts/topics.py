"""MQTT topics of the edge-cloud protocol (DESIGN §4): builders, a strict parser, subscriptions.

Every topic is `baetyl/v1/{nid}/{channel}`. Building and parsing go through this module only, so a
nid with a wildcard or a misspelt channel is refused in one place with one clear message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from agent.contracts import names

PREFIX: Final = "baetyl/v1"
_WILDCARDS: Final = frozenset("+#")


class TopicError(ValueError):
    """A topic or topic part that is not part of the protocol."""


class Direction(enum.StrEnum):
    """Who publishes on a channel."""

    TO_CLOUD = "agent → cloud"
    TO_AGENT = "cloud → agent"


class Channel(enum.StrEnum):
    """The topic suffixes after `baetyl/v1/{nid}/`, one per message kind of DESIGN §4."""

    SHADOW_UPDATE = "shadow/update"
    SHADOW_UPDATE_ACCEPTED = "shadow/update/accepted"
    SHADOW_UPDATE_REJECTED = "shadow/update/rejected"
    SHADOW_UPDATE_DELTA = "shadow/update/delta"
    SHADOW_GET = "shadow/get"
    SHADOW_GET_ACCEPTED = "shadow/get/accepted"
    SHADOW_GET_REJECTED = "shadow/get/rejected"
    RESOURCES_GET = "resources/get"
    RESOURCES_GET_ACCEPTED = "resources/get/accepted"
    RESOURCES_GET_REJECTED = "resources/get/rejected"
    CMD_REQUEST = "cmd/request"
    CMD_RESPONSE = "cmd/response"
    CERT_RENEW = "cert/renew"
    CERT_RENEW_ACCEPTED = "cert/renew/accepted"
    CERT_RENEW_REJECTED = "cert/renew/rejected"
    PRESENCE = "presence"

    @property
    def direction(self) -> Direction:
        """Which side publishes on this channel."""
        return Direction.TO_AGENT if self in _TO_AGENT else Direction.TO_CLOUD

    @property
    def retained(self) -> bool:
        """Whether messages on this channel are published retained (only presence is)."""
        return self is Channel.PRESENCE


_TO_AGENT: Final = frozenset(
    {
        Channel.SHADOW_UPDATE_ACCEPTED,
        Channel.SHADOW_UPDATE_REJECTED,
        Channel.SHADOW_UPDATE_DELTA,
        Channel.SHADOW_GET_ACCEPTED,
        Channel.SHADOW_GET_REJECTED,
        Channel.RESOURCES_GET_ACCEPTED,
        Channel.RESOURCES_GET_REJECTED,
        Channel.CMD_REQUEST,
        Channel.CERT_RENEW_ACCEPTED,
        Channel.CERT_RENEW_REJECTED,
    }
)
_PLAIN: Final = frozenset({Channel.CMD_RESPONSE, Channel.PRESENCE})
"""Channels every cloud replica subscribes to without the shared group."""
_BY_SUFFIX: Final = {channel.value: channel for channel in Channel}


@dataclass(frozen=True)
class Topic:
    """A parsed protocol topic."""

    nid: str
    channel: Channel

    def __str__(self) -> str:
        return f"{PREFIX}/{self.nid}/{self.channel.value}"

    @property
    def namespace(self) -> str:
        """The tenant namespace part of the nid."""
        return self.nid.split(".", 1)[0]

    @property
    def node(self) -> str:
        """The node-name part of the nid."""
        return self.nid.split(".", 1)[1]


def build(nid: str, channel: Channel | str) -> str:
    """The topic string for `channel` of node `nid`; the nid is validated."""
    return str(Topic(_checked_nid(nid), _channel(channel)))


def parse(topic: str) -> Topic:
    """Parse a concrete (wildcard-free) protocol topic, or raise TopicError saying what is wrong."""
    if not isinstance(topic, str):
        raise TopicError(f"topic must be a string, not {type(topic).__name__}")
    if _WILDCARDS & set(topic):
        raise TopicError(f"topic {topic!r} contains an MQTT wildcard ('+' or '#')")
    head = PREFIX + "/"
    if not topic.startswith(head):
        raise TopicError(f"topic {topic!r} does not start with {head!r}")
    nid, slash, suffix = topic[len(head) :].partition("/")
    if not slash or not suffix:
        raise TopicError(f"topic {topic!r} has no channel after the node id")
    return Topic(_checked_nid(nid), _channel(suffix, topic=topic))


def agent_subscriptions(nid: str) -> tuple[str, ...]:
    """The topics an agent subscribes to: every cloud → agent channel under its own prefix."""
    checked = _checked_nid(nid)
    return tuple(str(Topic(checked, channel)) for channel in Channel if channel in _TO_AGENT)


def cloud_subscriptions(*, group: str) -> tuple[str, ...]:
    """The topic filters a cloud replica subscribes to.

    `group` is the deployment's secret share group (cloud.mqtt.share): there is no default,
    since a guessable one lets any node join the group and drop its share of the requests.

    Request channels use a shared subscription so that replicas split the load. Presence is
    subscribed plainly because shared subscriptions receive no retained messages, and so is
    `cmd/response`: the answer must reach the replica that sent the command, whichever it is.
    """
    if not group or _WILDCARDS & set(group) or "/" in group:
        raise TopicError(
            f"shared subscription group {group!r} must be non-empty without '/', '+', '#'"
        )
    filters = [
        f"$share/{group}/{PREFIX}/+/{channel.value}"
        for channel in Channel
        if channel.direction is Direction.TO_CLOUD and channel not in _PLAIN
    ]
    filters += [f"{PREFIX}/+/{channel.value}" for channel in Channel if channel in _PLAIN]
    return tuple(filters)


def node_filter(nid: str) -> str:
    """The filter `baetyl/v1/{nid}/#` that a node's broker ACL allows, for tools and tests."""
    return f"{PREFIX}/{_checked_nid(nid)}/#"


def _checked_nid(nid: str) -> str:
    if isinstance(nid, str) and _WILDCARDS & set(nid):
        raise TopicError(f"node id {nid!r} contains an MQTT wildcard ('+' or '#')")
    try:
        return names.check_nid(nid)
    except names.InvalidName as exc:
        raise TopicError(str(exc)) from exc


def _channel(suffix: Channel | str, *, topic: str | None = None) -> Channel:
    if isinstance(suffix, Channel):
        return suffix
    channel = _BY_SUFFIX.get(suffix)
    if channel is None:
        where = f" in topic {topic!r}" if topic else ""
        known = ", ".join(sorted(_BY_SUFFIX))
        raise TopicError(f"unknown channel {suffix!r}{where}; known channels: {known}")
    return channel
