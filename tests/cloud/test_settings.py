"""The addresses the cloud gives installing nodes: explicit, derived, or refused as unknown."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.contracts.version import VERSION
from cloud.settings import CloudSettings, InstallSettings, MqttSettings


def mqtt(host: str) -> MqttSettings:
    return MqttSettings(host=host, port=8883, ca_file=Path(), cert_file=Path(), key_file=Path())


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", "http://127.0.0.1:9004"), ("::1", "http://[::1]:9004"), ("0.0.0.0", None)],
)
def test_the_init_url_defaults_to_the_listen_address_unless_it_is_a_wildcard(
    host: str, expected: str | None
) -> None:
    assert CloudSettings(data_dir=Path("d"), host=host).init_url == expected
    given = InstallSettings(init_url="https://cloud.example")
    assert CloudSettings(data_dir=Path("d"), host=host, install=given).init_url == given.init_url


@pytest.mark.parametrize(
    ("broker", "expected"),
    [
        (None, None),
        (mqtt("broker.example"), "mqtts://broker.example:8883"),
        (mqtt("fd00::1"), "mqtts://[fd00::1]:8883"),
        (mqtt("::"), None),
    ],
)
def test_the_node_broker_address_defaults_to_the_clouds_own(
    broker: MqttSettings | None, expected: str | None
) -> None:
    assert CloudSettings(data_dir=Path("d"), mqtt=broker).node_mqtt_url == expected
    given = InstallSettings(node_mqtt_url="mqtts://edge-gw:8883")
    settings = CloudSettings(data_dir=Path("d"), mqtt=broker, install=given)
    assert settings.node_mqtt_url == "mqtts://edge-gw:8883"


def test_dist_dir_and_image_have_defaults() -> None:
    settings = CloudSettings(data_dir=Path("/srv/cloud"))
    assert settings.dist_dir == Path("/srv/cloud/dist")
    assert settings.pki_dir == Path("/srv/cloud/pki")
    assert settings.agent_image == f"baetyl-py/agent:{VERSION}"
    custom = InstallSettings(dist_dir=Path("/w"), agent_image="reg/agent:2")
    settings = CloudSettings(data_dir=Path("/srv/cloud"), install=custom)
    assert (settings.dist_dir, settings.agent_image) == (Path("/w"), "reg/agent:2")
