"""Payload models of DESIGN §4: valid payloads round-trip, invalid ones are refused clearly."""

import json
from typing import Any

import pytest

from agent.contracts import messages
from agent.contracts.messages import PAYLOADS
from agent.contracts.resources import ResourceKind
from agent.contracts.topics import Channel
from agent.contracts.wire import PayloadError, WireModel

APP = {
    "name": "hello",
    "version": "v1",
    "mode": "native",
    "services": [{"name": "web", "command": ["python3", "-m", "http.server"]}],
}

VALID: list[tuple[Channel, dict[str, Any]]] = [
    (Channel.SHADOW_UPDATE, {"state": {"reported": {"apps": {"a": "1"}}}, "clientToken": "t-1"}),
    (Channel.SHADOW_UPDATE, {"state": {"reported": None}, "version": 3}),
    (
        Channel.SHADOW_UPDATE_ACCEPTED,
        {
            "state": {"reported": {"apps": {"a": "1"}}},
            "metadata": {"reported": {"apps": {"a": {"timestamp": 1.5}}}},
            "version": 4,
            "timestamp": 1.5,
            "clientToken": "t-1",
        },
    ),
    (
        Channel.SHADOW_UPDATE_REJECTED,
        {"code": 409, "message": "version conflict", "clientToken": "t"},
    ),
    (
        Channel.SHADOW_UPDATE_DELTA,
        {"state": {"apps": {"a": "2"}}, "metadata": {}, "version": 5, "timestamp": 2},
    ),
    (Channel.SHADOW_GET, {}),
    (Channel.SHADOW_GET, {"clientToken": "abc"}),
    (
        Channel.SHADOW_GET_ACCEPTED,
        {
            "state": {
                "desired": {"apps": {"a": "2"}},
                "reported": {},
                "delta": {"apps": {"a": "2"}},
            },
            "metadata": {"desired": {"apps": {"a": {"timestamp": 1}}}, "reported": {}},
            "version": 2,
            "timestamp": 1,
            "clientToken": "abc",
        },
    ),
    (Channel.SHADOW_GET_REJECTED, {"code": 404, "message": "unknown node"}),
    (
        Channel.RESOURCES_GET,
        {
            "clientToken": "r1",
            "resources": [{"kind": "application", "name": "hello", "version": "v1"}],
        },
    ),
    (
        Channel.RESOURCES_GET_ACCEPTED,
        {
            "clientToken": "r1",
            "values": [
                {"kind": "application", "name": "hello", "version": "v1", "value": APP},
                {
                    "kind": "configuration",
                    "name": "cfg",
                    "version": "7",
                    "value": {"name": "cfg", "version": "7", "data": {"conf.yml": "a: 1"}},
                },
                {
                    "kind": "secret",
                    "name": "sec",
                    "version": "8",
                    "value": {"name": "sec", "version": "8", "data": {"password": "x"}},
                },
            ],
        },
    ),
    (Channel.RESOURCES_GET_REJECTED, {"clientToken": "r1", "code": 404, "message": "no such app"}),
    (
        Channel.CMD_REQUEST,
        {"clientToken": "c1", "cmd": "logs", "args": {"app": "hello", "tailLines": 10}},
    ),
    (Channel.CMD_REQUEST, {"clientToken": "c2", "cmd": "ping"}),
    (Channel.CMD_RESPONSE, {"clientToken": "c1", "ok": True, "result": ["line 1", "line 2"]}),
    (Channel.CMD_RESPONSE, {"clientToken": "c1", "ok": False, "error": "no such app"}),
    (Channel.PRESENCE, {"online": True, "timestamp": 1700000000.5, "version": "0.1.0"}),
    (Channel.PRESENCE, {"online": False}),
]


def test_every_channel_has_a_payload_model() -> None:
    assert set(PAYLOADS) == set(Channel)


@pytest.mark.parametrize(("channel", "payload"), VALID, ids=lambda v: getattr(v, "value", ""))
def test_valid_payloads_decode_and_encode_back_to_the_same_json(
    channel: Channel, payload: dict[str, Any]
) -> None:
    model = PAYLOADS[channel].decode(json.dumps(payload).encode())
    again = PAYLOADS[channel].decode(model.to_bytes())
    assert again == model
    wire = model.to_wire()
    for key, value in payload.items():
        if key != "values":  # resource values gain their defaults; checked separately
            assert wire[key] == value


INVALID: list[tuple[Channel, Any, str]] = [
    (Channel.SHADOW_UPDATE, b"\xff\xfe", "not UTF-8"),
    (Channel.SHADOW_UPDATE, b"{not json", "Invalid JSON"),
    (Channel.SHADOW_UPDATE, b"[1, 2]", "object"),
    (Channel.SHADOW_UPDATE, {"state": {}}, "at least one section"),
    (
        Channel.SHADOW_UPDATE,
        {"state": {"reported": {}}, "extra": 1},
        "extra: unknown field; known here: clientToken, state, version",
    ),
    (Channel.SHADOW_UPDATE, {"state": {"delta": {}}}, "state.delta"),
    (Channel.SHADOW_UPDATE, {"state": {"reported": []}}, "state.reported"),
    (Channel.SHADOW_UPDATE, {"state": {"reported": {}}, "version": "3"}, "version"),
    (Channel.SHADOW_UPDATE, {"state": {"reported": {}}, "version": 0}, "version"),
    (Channel.SHADOW_UPDATE, {"state": {"reported": {}}, "clientToken": ""}, "clientToken"),
    (Channel.SHADOW_UPDATE, {"state": {"reported": {}}, "clientToken": "a b"}, "clientToken"),
    (Channel.SHADOW_UPDATE, {"state": {"reported": {}}, "clientToken": "x" * 65}, "clientToken"),
    (Channel.SHADOW_UPDATE_REJECTED, {"code": 200, "message": "ok"}, "code"),
    (
        Channel.SHADOW_UPDATE_DELTA,
        {"state": [], "metadata": {}, "version": 2, "timestamp": 1},
        "state",
    ),
    (
        Channel.SHADOW_UPDATE_DELTA,
        {"state": {"a": 1}, "metadata": {}, "version": 2, "timestamp": "now"},
        "timestamp",
    ),
    (
        Channel.SHADOW_GET_ACCEPTED,
        {
            "state": {"desired": {}, "reported": {}},
            "metadata": {"desired": {}, "reported": {}},
            "version": 1,
            "timestamp": 1,
        },
        "state.delta",
    ),
    (
        Channel.RESOURCES_GET,
        {"resources": [{"kind": "application", "name": "a1", "version": "1"}]},
        "clientToken",
    ),
    (Channel.RESOURCES_GET, {"clientToken": "t", "resources": []}, "resources"),
    (
        Channel.RESOURCES_GET,
        {"clientToken": "t", "resources": [{"kind": "pod", "name": "a1", "version": "1"}]},
        "kind",
    ),
    (
        Channel.RESOURCES_GET,
        {"clientToken": "t", "resources": [{"kind": "secret", "name": "A!", "version": "1"}]},
        "name",
    ),
    (
        Channel.RESOURCES_GET,
        {"clientToken": "t", "resources": [{"kind": "secret", "name": "s1", "version": ""}]},
        "version",
    ),
    (
        Channel.RESOURCES_GET,
        {"clientToken": "t", "resources": [{"kind": "secret", "name": "s1", "version": "1"}] * 65},
        "resources",
    ),
    (
        Channel.RESOURCES_GET_ACCEPTED,
        {
            "clientToken": "t",
            "values": [{"kind": "application", "name": "other", "version": "v1", "value": APP}],
        },
        "but the entry names 'other'",
    ),
    (
        Channel.RESOURCES_GET_ACCEPTED,
        {
            "clientToken": "t",
            "values": [{"kind": "configuration", "name": "hello", "version": "v1", "value": APP}],
        },
        "values.0.configuration.value",
    ),
    (Channel.RESOURCES_GET_REJECTED, {"code": 404, "message": "x"}, "clientToken"),
    (Channel.CMD_REQUEST, {"clientToken": "c", "cmd": "rm -rf"}, "cmd"),
    (Channel.CMD_RESPONSE, {"clientToken": "c", "ok": False}, "needs an error message"),
    (Channel.PRESENCE, {"online": "yes"}, "online"),
    (Channel.PRESENCE, {"online": True, "cpu": 3}, "cpu"),
    (Channel.PRESENCE, {"online": True, "timestamp": float("inf")}, "timestamp"),
]


@pytest.mark.parametrize(
    ("channel", "payload", "fragment"), INVALID, ids=lambda v: getattr(v, "value", "")
)
def test_invalid_payloads_raise_payload_error_naming_the_problem(
    channel: Channel, payload: Any, fragment: str
) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(PayloadError) as caught:
        PAYLOADS[channel].decode(raw)
    assert fragment in str(caught.value)
    assert caught.value.problems


def test_an_explicit_null_section_survives_encoding() -> None:
    update = messages.ShadowUpdate.decode(b'{"state": {"reported": null}}')
    assert update.state.sections() == {"reported": None}
    assert json.loads(update.to_bytes()) == {"state": {"reported": None}}


def test_an_absent_section_is_not_a_null_section() -> None:
    update = messages.ShadowUpdate.decode(b'{"state": {"reported": {"a": 1}}}')
    assert update.state.sections() == {"reported": {"a": 1}}
    assert "desired" not in update.to_wire()["state"]


def test_desired_section_parses_so_the_cloud_can_answer_403() -> None:
    update = messages.ShadowUpdate.decode(b'{"state": {"desired": {"apps": {}}}}')
    assert "desired" in update.state.sections()


def test_resource_values_are_typed_by_kind() -> None:
    payload = dict(VALID[10][1])
    accepted = messages.ResourcesGetAccepted.decode(json.dumps(payload))
    kinds = [(type(v).__name__, v.kind) for v in accepted.values]
    assert kinds == [
        ("ApplicationValue", ResourceKind.APPLICATION),
        ("ConfigurationValue", ResourceKind.CONFIGURATION),
        ("SecretValue", ResourceKind.SECRET),
    ]
    assert accepted.values[0].value.services[0].command == ["python3", "-m", "http.server"]


def test_wire_names_are_camel_case() -> None:
    request = messages.ResourcesGet(
        client_token="t",
        resources=[messages.ResourceRef(kind=ResourceKind.SECRET, name="s1", version="2")],
    )
    assert request.to_wire() == {
        "clientToken": "t",
        "resources": [{"kind": "secret", "name": "s1", "version": "2"}],
    }


@pytest.mark.parametrize("model", sorted(set(PAYLOADS.values()), key=lambda m: m.__name__))
def test_payload_errors_name_the_model(model: type[WireModel]) -> None:
    with pytest.raises(PayloadError, match=model.__name__):
        model.decode(b"null")
