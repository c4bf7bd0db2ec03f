"""Project-wide fixtures: a test PKI, a real Mosquitto broker, a throwaway PostgreSQL cluster and
the agent wheel.

Implementations live in tests/harness/; this file only registers them with pytest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.harness import kube
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI
from tests.harness.postgres import PostgresCluster
from tests.harness.wheel import agent_wheel as build_agent_wheel

# Hypothesis profiles. `dev` is Hypothesis' default (random examples, deadline and health checks
# on: a local run keeps exploring). `ci` keeps the example counts but makes a run repeatable and
# load-proof: CI machines are shared, so a wall-clock deadline or the too_slow health check fails
# a correct test when another job takes the cores (a fresh clone once failed that way in
# tests/agent/core/sync/test_diff.py); derandomize gives every run the same examples, and
# print_blob lets a failure be replayed locally with @reproduce_failure.
settings.register_profile("dev")
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def hypothesis_profile(environ: Mapping[str, str]) -> str:
    """HYPOTHESIS_PROFILE when set, else `ci` when CI is set to a true value, else `dev`."""
    chosen = environ.get("HYPOTHESIS_PROFILE")
    if chosen:
        return chosen
    if environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}:
        return "ci"
    return "dev"


settings.load_profile(hypothesis_profile(os.environ))


SLOW_DIRS = ("e2e", "bench")  # whole processes, installs and benchmark runs: minutes in all


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the end-to-end and benchmark smoke tests `slow` (`make test-fast` skips them), and
    every test using the local Kubernetes `kube` (`make test` runs those in their own process)."""
    tests_dir = Path(__file__).parent
    for item in items:
        if "kube_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kube)
        relative = item.path.relative_to(tests_dir) if item.path.is_relative_to(tests_dir) else None
        if relative is not None and relative.parts[0] in SLOW_DIRS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kube.KubeCluster]:
    """The local Kubernetes (tools/kube): a control plane and one real node, for the session."""
    yield from kube.running_cluster(tmp_path_factory.mktemp("kube"))


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> HarnessPKI:
    """Our CA with a loopback server certificate and cached node/cloud/foreign client certs."""
    return HarnessPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def mosquitto(pki: HarnessPKI) -> Iterator[MosquittoBroker]:
    """A running Mosquitto with mutual TLS and the platform ACL (cloud users r1 and r2)."""
    yield from _running(MosquittoBroker(pki))


@pytest.fixture(scope="session")
def mosquitto_without_node_limits(pki: HarnessPKI) -> Iterator[MosquittoBroker]:
    """The same broker without the node-limits plugin, as an operator's own broker may run."""
    yield from _running(MosquittoBroker(pki, node_limits=False))


def _running(broker: MosquittoBroker) -> Iterator[MosquittoBroker]:
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
