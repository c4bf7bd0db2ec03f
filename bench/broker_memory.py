"""Broker memory under issue 12's retained-message attack: one node, 40 retained 5 MiB messages.

Starts `baetyl-cloud serve` with its managed Mosquitto on a fresh data directory, creates one node,
connects as that node (a certificate from the cloud's CA) and publishes the attack: 40 retained
5 MiB payloads on topics under its own prefix (`baetyl/v1/<nid>/junk/<i>`), then the same on the
six topics a node may publish to (`shadow/update`, ...). Prints the broker's resident memory
(VmRSS of the mosquitto process) before, after each round and once the cloud had a moment to clear
stray retained messages (the node-limits plugin refuses them first, decision #98). Not part
of `make bench`: it measures a security property, not speed.

Run: `.venv/bin/python bench/broker_memory.py`
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import ssl
import sys
import tempfile
import uuid
from pathlib import Path

import aiohttp
import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.contracts import topics
from agent.contracts.topics import Channel, Direction
from cloud.pki.ca import CertificateAuthority, write_certificate_files
from tests.harness.cloud_process import start_managed, stop_managed

MESSAGES = 40
PAYLOAD = 5 * 1024 * 1024


def rss_kib(pid: int) -> int:
    """Resident memory of `pid` in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="baetyl-broker-memory-"))
    root.chmod(0o711)  # noqa: ASYNC240 - a measurement script, nothing else runs
    data_dir = root / "cloud"
    cloud = await start_managed(data_dir)
    try:
        pid = int(cloud.broker_pid_file.read_text().strip())
        name = f"attacker-{uuid.uuid4().hex[:6]}"
        headers = {"Authorization": f"Bearer {cloud.admin_token}"}
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.post(f"{cloud.url}/v1/nodes", json={"name": name}) as answer,
        ):
            assert answer.status == 200, await answer.text()
        nid = f"default.{name}"
        pki = data_dir / "pki"
        ca = CertificateAuthority.load((pki / "ca.pem").read_bytes(), (pki / "ca.key").read_bytes())
        cert, key = write_certificate_files(root, "node", ca.issue_client(nid))
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.pem"))
        context.load_cert_chain(cert, key)
        payload = b"x" * PAYLOAD
        print(f"broker pid {pid}; VmRSS before: {rss_kib(pid) / 1024:.1f} MiB")
        async with aiomqtt.Client("127.0.0.1", cloud.mqtt_port, tls_context=context) as node:
            for index in range(MESSAGES):
                await node.publish(f"baetyl/v1/{nid}/junk/{index}", payload, qos=1, retain=True)
            print(
                f"after {MESSAGES} x {PAYLOAD >> 20} MiB retained on baetyl/v1/<nid>/junk/<i>: "
                f"{rss_kib(pid) / 1024:.1f} MiB"
            )
            own = [c for c in Channel if c.direction is Direction.TO_CLOUD]
            for index in range(MESSAGES):
                channel = own[index % len(own)]
                await node.publish(topics.build(nid, channel), payload, qos=1, retain=True)
            print(
                f"after {MESSAGES} x {PAYLOAD >> 20} MiB retained on the {len(own)} topics a node "
                f"may publish to: {rss_kib(pid) / 1024:.1f} MiB"
            )
        await asyncio.sleep(2)  # a measurement, not a test: give the cloud time to clear
        print(f"2 s later: {rss_kib(pid) / 1024:.1f} MiB")
    finally:
        await stop_managed(cloud)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="It takes no options; about 10 s."
    ).parse_args()
    asyncio.run(main())
