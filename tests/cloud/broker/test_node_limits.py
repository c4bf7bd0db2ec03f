"""The node-limits plugin on a real Mosquitto (decision #98, issue 12 finding 4).

Mosquitto's own size and retain settings are global; the plugin holds every client that is not a
cloud replica to `NodeLimits`: 320 KiB per payload, retained messages only on presence, presence at
most 1 KiB. "Dropped" is proven with a sentinel published after the refused message by the same
client, on a topic the observer subscribes to: QoS 1 messages of one publisher arrive in order, so
once the sentinel is in, a message that got through would be in too.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import aiomqtt
import pytest

from agent.contracts.shadow import DEFAULT_LIMITS, PRESENCE_MAX_BYTES
from cloud.broker import node_limits_plugin
from cloud.broker.mosquitto_config import NodeLimits
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI

NODE = "default.limited-node"
LIMIT = DEFAULT_LIMITS.node_payload_bytes
TIMEOUT = 10.0


def topic(nid: str, channel: str) -> str:
    return f"baetyl/v1/{nid}/{channel}"


def sentinel() -> bytes:
    return f"sentinel-{uuid.uuid4().hex}".encode()


async def received_before(client: aiomqtt.Client, mark: bytes) -> list[tuple[str, int, bool]]:
    """(topic, payload size, retain) of each message that arrives before the one carrying `mark`."""
    seen: list[tuple[str, int, bool]] = []
    async with asyncio.timeout(TIMEOUT):
        async for message in client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            if payload == mark:
                return seen
            seen.append((message.topic.value, len(payload), message.retain))
    raise AssertionError("the subscriber stopped before the sentinel arrived")


@pytest.mark.parametrize(
    "protocol",
    [aiomqtt.ProtocolVersion.V311, aiomqtt.ProtocolVersion.V5],
    ids=["mqtt311", "mqtt5"],
)
async def test_a_node_cannot_publish_more_than_its_limit_but_up_to_it(
    mosquitto: MosquittoBroker, pki: HarnessPKI, protocol: aiomqtt.ProtocolVersion
) -> None:
    nid = f"default.n-{uuid.uuid4().hex[:8]}"
    update = topic(nid, "shadow/update")
    mark = sentinel()
    async with (
        mosquitto.client(pki.cloud("r1")) as cloud,
        mosquitto.client(pki.node(nid), protocol=protocol) as node,
    ):
        await cloud.subscribe(update, qos=1)
        await node.publish(update, b"x" * (LIMIT + 1), qos=1)
        await node.publish(update, b"y" * LIMIT, qos=1)
        await node.publish(update, b"z" * (4 * 1024 * 1024), qos=1)
        await node.publish(update, mark, qos=1)
        assert await received_before(cloud, mark) == [(update, LIMIT, False)]


async def test_the_cloud_may_publish_far_more_than_a_node(
    mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    """A configuration answer of several MiB must still reach the node."""
    nid = f"default.n-{uuid.uuid4().hex[:8]}"
    answer = topic(nid, "resources/get/accepted")
    mark = sentinel()
    async with (
        mosquitto.client(pki.cloud("r1")) as cloud,
        mosquitto.client(pki.node(nid)) as node,
    ):
        await node.subscribe(answer, qos=1)
        await cloud.publish(answer, b"c" * (4 * 1024 * 1024), qos=1)
        await cloud.publish(answer, mark, qos=1)
        assert await received_before(node, mark) == [(answer, 4 * 1024 * 1024, False)]


async def test_a_node_retains_nothing_but_a_small_presence(
    mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    nid = f"default.n-{uuid.uuid4().hex[:8]}"
    presence = topic(nid, "presence")
    async with mosquitto.client(pki.node(nid)) as node:
        for channel in ("shadow/update", "shadow/get", "resources/get", "cmd/response"):
            await node.publish(topic(nid, channel), b'{"small":true}', qos=1, retain=True)
        await node.publish(presence, b"p" * PRESENCE_MAX_BYTES, qos=1, retain=True)
        await node.publish(presence, b"q" * (PRESENCE_MAX_BYTES + 1), qos=1, retain=True)
        await node.publish(presence, b"r" * (PRESENCE_MAX_BYTES + 1), qos=1)
    # A subscriber arriving later gets the retained messages first, then the sentinel.
    mark = sentinel()
    async with mosquitto.client(pki.cloud("r1")) as cloud:
        await cloud.subscribe(f"baetyl/v1/{nid}/#", qos=1)
        await cloud.publish(topic(nid, "cmd/request"), mark, qos=1)
        assert await received_before(cloud, mark) == [(presence, PRESENCE_MAX_BYTES, True)]


async def test_a_refused_publish_is_reported_to_an_mqtt5_client(
    mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    """Not a silent drop for clients that can hear why: PUBACK carries "not authorized"."""
    cert = pki.node(f"default.n-{uuid.uuid4().hex[:8]}")
    command = [
        "mosquitto_pub",
        *("-h", mosquitto.host, "-p", str(mosquitto.port), "-V", "5", "-q", "1"),
        *("--cafile", str(pki.ca_file), "--cert", str(cert.cert_file), "--key", str(cert.key_file)),
        *("-t", topic(cert.common_name, "shadow/update"), "-s"),
    ]
    result = await asyncio.to_thread(
        subprocess.run, command, input=b"x" * (LIMIT + 1), capture_output=True, timeout=TIMEOUT
    )
    assert b"Not authorized" in result.stderr, result


async def test_without_the_plugin_a_node_is_bounded_only_by_the_global_limit(
    mosquitto_without_node_limits: MosquittoBroker, pki: HarnessPKI
) -> None:
    """The external-broker case the cloud's own checks are for (docs/security/broker.md)."""
    nid = f"default.n-{uuid.uuid4().hex[:8]}"
    update = topic(nid, "shadow/update")
    mark = sentinel()
    broker = mosquitto_without_node_limits
    async with (
        broker.client(pki.cloud("r1")) as cloud,
        broker.client(pki.node(nid)) as node,
    ):
        await cloud.subscribe(update, qos=1)
        await node.publish(update, b"x" * (LIMIT + 1), qos=1)
        await node.publish(update, mark, qos=1)
        assert await received_before(cloud, mark) == [(update, LIMIT + 1, False)]


def test_the_plugin_source_compiles_without_warnings(tmp_path: Path) -> None:
    compiler = node_limits_plugin.find_compiler()
    assert compiler is not None, "make system-deps installs gcc"
    output = str(tmp_path / "p.so")
    result = subprocess.run(
        [compiler, *node_limits_plugin.CFLAGS, "-Werror", "-x", "c", "-o", output, "-"],
        input=node_limits_plugin.source_text(),
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()


def test_a_build_is_reused_and_replaces_older_ones(tmp_path: Path) -> None:
    stale = tmp_path / "baetyl_node_limits-0000000000000000.so"
    stale.write_bytes(b"an older build")
    first = node_limits_plugin.build(tmp_path)
    built_at = first.stat().st_mtime_ns
    assert node_limits_plugin.build(tmp_path) == first
    assert first.stat().st_mtime_ns == built_at
    assert sorted(tmp_path.iterdir()) == [first]
    assert first.stat().st_mode & 0o777 == 0o644  # the broker's account loads it


def test_without_a_compiler_the_error_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with pytest.raises(node_limits_plugin.PluginBuildError, match="gcc libc6-dev"):
        node_limits_plugin.build(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_compiler_failure_is_reported_with_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "cc"
    broken.write_text("#!/bin/sh\necho 'node_limits.c:1: error: broken on purpose' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    with pytest.raises(node_limits_plugin.PluginBuildError, match="broken on purpose"):
        node_limits_plugin.build(tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # no half-written plugin left


@pytest.mark.parametrize("field", ["max_payload", "presence_max_payload"])
@pytest.mark.parametrize("value", [0, -1, 2**32])
def test_limits_the_plugin_would_refuse_are_refused_when_rendering(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        NodeLimits(plugin=Path("/plugin.so"), **{field: value})
