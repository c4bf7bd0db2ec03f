"""Rendering of the broker configuration and ACL, and the shipped deploy/mosquitto files."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from agent.contracts import messages, shadow
from agent.contracts.resources import CONFIG_DATA_MAX_BYTES
from agent.contracts.shadow import DEFAULT_LIMITS
from agent.contracts.topics import Channel, Direction
from cloud.broker.mosquitto_config import (
    DEFAULT_MESSAGE_SIZE_LIMIT,
    PRODUCTION_CLOUD_USERS,
    MosquittoSettings,
    production_settings,
    render_acl,
    render_config,
)

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "mosquitto"


def _settings(**changes: Any) -> MosquittoSettings:
    base = MosquittoSettings(
        cafile=Path("/b/ca.pem"),
        certfile=Path("/b/server.pem"),
        keyfile=Path("/b/server.key"),
        acl_file=Path("/b/acl"),
        pid_file=Path("/b/mosquitto.pid"),
        log_file=Path("/b/mosquitto.log"),
    )
    return dataclasses.replace(base, **changes)


def _directives(text: str) -> list[tuple[str, str]]:
    """The (option, value) lines of a Mosquitto file, comments and blank lines dropped."""
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            option, _, value = line.partition(" ")
            pairs.append((option, value))
    return pairs


def _options(text: str) -> dict[str, str]:
    return dict(_directives(text))


def test_config_has_one_mutual_tls_listener_with_cn_identity() -> None:
    options = _options(render_config(_settings(port=18883, bind_address="127.0.0.1")))
    assert options["per_listener_settings"] == "true"
    assert options["listener"] == "18883 127.0.0.1"
    assert [option for option, _ in _directives(render_config(_settings()))].count("listener") == 1
    assert options["require_certificate"] == "true"
    assert options["use_identity_as_username"] == "true"
    assert options["use_username_as_clientid"] == "true"
    assert options["tls_version"] == "tlsv1.2"
    assert options["allow_anonymous"] == "false"
    assert options["cafile"] == "/b/ca.pem"
    assert options["certfile"] == "/b/server.pem"
    assert options["keyfile"] == "/b/server.key"
    assert options["acl_file"] == "/b/acl"


def test_listener_options_follow_the_listener_line() -> None:
    # With per_listener_settings, security options before `listener` would not apply to it.
    names = [option for option, _ in _directives(render_config(_settings()))]
    listener = names.index("listener")
    for option in ("cafile", "require_certificate", "allow_anonymous", "acl_file"):
        assert names.index(option) > listener, option


def test_config_sets_queue_limits_deliberately() -> None:
    options = _options(render_config(_settings()))
    assert options["max_queued_messages"] == "100000"
    assert options["max_queued_bytes"] == "0"
    assert options["max_inflight_messages"] == "100"
    assert options["max_connections"] == "-1"
    assert int(options["message_size_limit"]) == DEFAULT_MESSAGE_SIZE_LIMIT


def test_config_turns_nagle_off_so_answers_do_not_wait_for_delayed_acks() -> None:
    assert _options(render_config(_settings()))["set_tcp_nodelay"] == "true"


def _filled_section(prefix: str) -> dict[str, int]:
    """A section of many tiny leaves, as large as the shadow limit allows: metadata is largest."""
    section: dict[str, int] = {}
    size = 2  # the braces
    while True:
        key = f"{prefix}{len(section)}"
        entry = len(f'"{key}":1') + (1 if section else 0)
        if size + entry > DEFAULT_LIMITS.max_section_bytes:
            assert len(json.dumps(section, separators=(",", ":"))) == size
            return section
        section[key] = 1
        size += entry


def test_message_size_limit_fits_the_largest_messages_of_the_protocol() -> None:
    # The largest shadow/get/accepted: full desired and reported sections that share no key, so
    # the delta is as large as desired, with a metadata stamp on every one of their leaves.
    now = 1_764_200_000.123456
    doc = shadow.new_document(now)
    doc = shadow.apply_update(doc, "desired", _filled_section("d"), version=None, now=now)
    doc = shadow.apply_update(doc, "reported", _filled_section("r"), version=None, now=now)
    largest_get = messages.ShadowGetAccepted.decode(
        json.dumps({**doc, "clientToken": "x" * 64})
    ).to_bytes()
    # The largest resources/get/accepted: one configuration at its size limit.
    config = {
        "name": "c" * 63,
        "version": "v" * 64,
        "data": {"k": "x" * (CONFIG_DATA_MAX_BYTES - 10)},
    }
    largest_resources = messages.ResourcesGetAccepted.decode(
        json.dumps(
            {
                "clientToken": "x" * 64,
                "values": [
                    {
                        "kind": "configuration",
                        "name": config["name"],
                        "version": config["version"],
                        "value": config,
                    }
                ],
            }
        )
    ).to_bytes()
    assert len(largest_get) > 3 * DEFAULT_LIMITS.max_section_bytes  # the case really is large
    assert len(largest_get) < DEFAULT_MESSAGE_SIZE_LIMIT
    assert len(largest_resources) < DEFAULT_MESSAGE_SIZE_LIMIT


def test_config_logs_to_a_file_and_writes_a_pid_file() -> None:
    options = _options(render_config(_settings(user="broker")))
    assert options["log_dest"] == "file /b/mosquitto.log"
    assert options["pid_file"] == "/b/mosquitto.pid"
    assert options["user"] == "broker"


def test_persistence_is_off_without_a_directory() -> None:
    options = _options(render_config(_settings(persistence_dir=None)))
    assert options["persistence"] == "false"
    assert "persistence_location" not in options


def test_persistence_location_ends_with_a_slash() -> None:
    options = _options(render_config(_settings(persistence_dir=Path("/var/lib/b/data"))))
    assert options["persistence"] == "true"
    assert options["persistence_location"] == "/var/lib/b/data/"


def test_rendering_leaves_no_placeholder() -> None:
    text = render_config(_settings()) + render_acl(
        cloud_users=["baetyl-cloud:r1"], denied_nids=["default.n1"]
    )
    assert not re.search(r"\$\{?\w", text.replace("$share", ""))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"bind_address": "0.0.0.0 evil"}, "bind_address"),
        ({"cafile": Path("relative/ca.pem")}, "absolute"),
        ({"acl_file": Path("/b/acl\nallow_anonymous true")}, "newlines"),
        ({"max_queued_messages": -1}, "max_queued_messages"),
        ({"max_connections": 0}, "max_connections"),
        ({"user": "root\nlistener 1883"}, "user"),
        ({"message_size_limit": -5}, "message_size_limit"),
    ],
)
def test_bad_settings_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(**changes)


NODE_PATTERNS = [
    (
        "pattern",
        f"{'write' if c.direction is Direction.TO_CLOUD else 'read'} baetyl/v1/%u/{c.value}",
    )
    for c in Channel
]


def test_node_patterns_are_exactly_the_protocol_channels() -> None:
    """Nodes publish the six agent → cloud channels (presence included) and read the rest."""
    writes = sorted(v for o, v in NODE_PATTERNS if v.startswith("write"))
    assert writes == [
        "write baetyl/v1/%u/cert/renew",
        "write baetyl/v1/%u/cmd/response",
        "write baetyl/v1/%u/presence",
        "write baetyl/v1/%u/resources/get",
        "write baetyl/v1/%u/shadow/get",
        "write baetyl/v1/%u/shadow/update",
    ]
    assert len(NODE_PATTERNS) == 16


def test_acl_gives_cloud_users_everything_and_denied_nids_nothing() -> None:
    text = render_acl(
        cloud_users=["baetyl-cloud:r1", "baetyl-cloud:r2"],
        denied_nids=["default.gone", "tenant-b.old-node"],
    )
    assert _directives(text) == [
        ("user", "baetyl-cloud:r1"),
        ("topic", "readwrite #"),
        ("user", "baetyl-cloud:r2"),
        ("topic", "readwrite #"),
        ("user", "default.gone"),
        ("topic", "deny #"),
        ("user", "tenant-b.old-node"),
        ("topic", "deny #"),
        *NODE_PATTERNS,
    ]


def test_acl_without_denied_nids_has_only_cloud_users_and_the_node_pattern() -> None:
    assert _directives(render_acl(cloud_users=["baetyl-cloud:r1"])) == [
        ("user", "baetyl-cloud:r1"),
        ("topic", "readwrite #"),
        *NODE_PATTERNS,
    ]


def test_acl_lists_each_name_once() -> None:
    text = render_acl(
        cloud_users=["baetyl-cloud:r1", "baetyl-cloud:r1"],
        denied_nids=["default.gone", "default.gone"],
    )
    assert [value for option, value in _directives(text) if option == "user"] == [
        "baetyl-cloud:r1",
        "default.gone",
    ]


@pytest.mark.parametrize(
    "user",
    [
        "default.node-a",  # a nid must never become a superuser
        "baetyl-cloud",
        "baetyl-cloud:",
        "baetyl-cloud:r 1",
        "baetyl-cloud:r1\ntopic readwrite #",
        "baetyl-cloud:#",
        "baetyl-cloud:+",
        "baetyl-cloud:%u",
    ],
)
def test_bad_cloud_users_are_refused(user: str) -> None:
    with pytest.raises(ValueError, match="cloud user"):
        render_acl(cloud_users=[user])


@pytest.mark.parametrize(
    "nid",
    ["node-a", "default.node a", "default.node-a\nuser x", "default.#", "Default.node", "a:b.c"],
)
def test_bad_denied_nids_are_refused(nid: str) -> None:
    with pytest.raises(ValueError, match="denied node id"):
        render_acl(cloud_users=["baetyl-cloud:r1"], denied_nids=[nid])


def test_production_settings_listen_on_all_addresses_with_persistence() -> None:
    settings = production_settings()
    assert settings.port == 8883
    assert settings.bind_address == "0.0.0.0"
    assert settings.persistence_dir is not None
    for path in (settings.cafile, settings.certfile, settings.keyfile, settings.acl_file):
        assert path.is_relative_to("/etc/baetyl/broker")
    for path in (settings.pid_file, settings.log_file, settings.persistence_dir):
        assert path.is_relative_to("/var/lib/baetyl/broker")


def test_shipped_config_is_the_rendered_production_config() -> None:
    shipped = (DEPLOY / "mosquitto.conf").read_text(encoding="utf-8")
    assert shipped == render_config(production_settings()), (
        "deploy/mosquitto/mosquitto.conf is out of date: regenerate it (deploy/mosquitto/README.md)"
    )


def test_shipped_acl_is_the_rendered_production_acl() -> None:
    assert PRODUCTION_CLOUD_USERS == ("baetyl-cloud:cloud-0",)
    shipped = (DEPLOY / "acl").read_text(encoding="utf-8")
    assert shipped == render_acl(cloud_users=["baetyl-cloud:cloud-0"]), (
        "deploy/mosquitto/acl is out of date: regenerate it (deploy/mosquitto/README.md)"
    )
