"""`baetyl-cloud serve --mqtt-url …` as a user runs it: a real process bridged to a real broker."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp

from agent.contracts.topics import Channel
from tests.cloud.mqtt.conftest import AgentFactory, unique
from tests.harness.common import free_port
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI
from tools.kit.cloud import admin_token, serve_args, start_serve


async def test_serve_with_an_external_broker_answers_a_node(
    tmp_path: Path, mosquitto: MosquittoBroker, pki: HarnessPKI, agent: AgentFactory
) -> None:
    cert = pki.cloud("r2")
    port = free_port()
    data_dir = tmp_path / "cloud"
    argv = serve_args(
        data_dir,
        port,
        "--mqtt-url",
        f"mqtts://{mosquitto.host}:{mosquitto.port}",
        "--mqtt-ca",
        str(pki.ca_file),
        "--mqtt-cert",
        str(cert.cert_file),
        "--mqtt-key",
        str(cert.key_file),
        "--mqtt-replica",
        "r2",
    )
    url = f"http://127.0.0.1:{port}"
    process = await start_serve(argv, url=url, log_file=tmp_path / "cloud.log", limit=30)
    try:
        token = admin_token(data_dir)
        name = unique()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
            body = {"name": name, "labels": {}}
            async with session.post(f"http://127.0.0.1:{port}/v1/nodes", json=body) as answer:
                assert answer.status == 200
        async with agent(f"default.{name}") as node:
            channel, doc = await node.ask(
                Channel.SHADOW_GET,
                {"clientToken": "cli"},
                (Channel.SHADOW_GET_ACCEPTED, Channel.SHADOW_GET_REJECTED),
            )
        assert channel is Channel.SHADOW_GET_ACCEPTED, doc
        assert (doc["version"], doc["clientToken"]) == (1, "cli")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
