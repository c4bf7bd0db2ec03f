"""Fixtures of the agent tests: the real cloud bridged to the session Mosquitto (SQLite store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.settings import MqttSettings
from tests.cloud.mqtt.conftest import agent, mqtt_settings, running_cloud
from tests.harness.cloud import CloudServer
from tests.harness.pki import HarnessPKI

__all__ = ["agent", "cloud", "mqtt_settings"]


@pytest.fixture
async def cloud(
    tmp_path: Path, mqtt_settings: MqttSettings, pki: HarnessPKI
) -> AsyncIterator[CloudServer]:
    """A running cloud bridged to the session Mosquitto, signing node certificates with the CA
    that broker trusts (so a node the cloud activates can connect)."""
    async with running_cloud(tmp_path / "cloud", None, mqtt_settings, ca=pki.ca) as server:
        yield server
