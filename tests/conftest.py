"""Project-wide fixtures: a test PKI, a real Mosquitto broker, a throwaway PostgreSQL cluster and
the agent wheel.

Implementations live in tests/harness/; this file only registers them with pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI
from tests.harness.postgres import PostgresCluster
from tests.harness.wheel import agent_wheel as build_agent_wheel


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> HarnessPKI:
    """Our CA with a loopback server certificate and cached node/cloud/foreign client certs."""
    return HarnessPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def mosquitto(pki: HarnessPKI) -> Iterator[MosquittoBroker]:
    """A running Mosquitto with mutual TLS and the platform ACL (cloud users r1 and r2)."""
    broker = MosquittoBroker(pki)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster started on first use of its address and removed after the session."""
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def agent_wheel() -> Path:
    """A wheel of the working tree (`baetyl_py-*.whl`), cached by a hash of the sources."""
    return build_agent_wheel()
