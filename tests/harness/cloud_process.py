"""`baetyl-cloud serve` as its own process, bridged to a broker by URL, as an operator runs it
(started and awaited with `tools.kit.cloud`, the kit the demo and the benchmarks use too)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.harness.common import free_port
from tests.harness.pki import CertFiles
from tools.kit.cloud import admin_token, serve_args, start_serve
from tools.kit.procs import stop_child

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class ReplicaSpec:
    """One replica's command line: its name, files, database and broker.

    Attributes:
        replica: the replica name; `cert` must carry CN `baetyl-cloud:<replica>`.
        data_dir: the server's data directory (secret.key, admin.token).
        db_url: the database URL given to `--db`.
        broker: the broker's `mqtts://HOST:PORT`.
        ca_file, cert: the broker's CA and this replica's client certificate.
        log_file: where the server's stderr (its JSON log) goes.
    """

    replica: str
    data_dir: Path
    db_url: str
    broker: str
    ca_file: Path
    cert: CertFiles
    log_file: Path


@dataclass
class CloudProcess:
    """A running `baetyl-cloud serve` and the URL of its REST API."""

    spec: ReplicaSpec
    url: str
    process: asyncio.subprocess.Process

    @property
    def admin_token(self) -> str:
        """The first-start admin token the server wrote into its data directory."""
        return admin_token(self.spec.data_dir)

    def log(self) -> str:
        """Everything the server logged so far."""
        return self.spec.log_file.read_text(encoding="utf-8", errors="replace")

    async def stop(self) -> int:
        """SIGTERM, SIGKILL after STOP_TIMEOUT; returns the exit code."""
        return await stop_child(self.process, grace=STOP_TIMEOUT)


@asynccontextmanager
async def running_replica(spec: ReplicaSpec) -> AsyncIterator[CloudProcess]:
    """Start a replica, wait until its MQTT link is up and it answers /health; kill it after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = serve_args(
        spec.data_dir, port,
        "--db", spec.db_url,
        "--mqtt-url", spec.broker,
        "--mqtt-ca", str(spec.ca_file),
        "--mqtt-cert", str(spec.cert.cert_file),
        "--mqtt-key", str(spec.cert.key_file),
        "--mqtt-replica", spec.replica,
    )  # fmt: skip
    process = await start_serve(argv, url=url, log_file=spec.log_file, limit=START_TIMEOUT)
    try:
        yield CloudProcess(spec, url, process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@dataclass
class ManagedCloud:
    """A running `baetyl-cloud serve` with its own (managed) Mosquitto."""

    data_dir: Path
    url: str
    mqtt_port: int
    process: asyncio.subprocess.Process
    log_file: Path

    @property
    def admin_token(self) -> str:
        """The first-start admin token the server wrote into its data directory."""
        return admin_token(self.data_dir)

    @property
    def broker_pid_file(self) -> Path:
        """Where the managed broker writes its pid."""
        return self.data_dir / "mosquitto" / "mosquitto.pid"

    def log(self) -> str:
        """Everything the server logged so far."""
        return self.log_file.read_text(encoding="utf-8", errors="replace")


async def start_managed(data_dir: Path, *, mqtt_port: int | None = None) -> ManagedCloud:
    """Start `baetyl-cloud serve` with its managed broker and wait until its link is up.

    `data_dir`'s parents must be searchable by the broker's account (not pytest's tmp_path).
    The caller stops it (`stop_managed`), or kills it to test what a crash leaves behind.
    """
    port = free_port()
    broker_port = mqtt_port or free_port()
    log_file = data_dir.parent / f"{data_dir.name}.log"
    url = f"http://127.0.0.1:{port}"
    argv = serve_args(data_dir, port, "--mqtt-listen", f"127.0.0.1:{broker_port}")
    process = await start_serve(argv, url=url, log_file=log_file, limit=START_TIMEOUT)
    return ManagedCloud(data_dir, url, broker_port, process, log_file)


async def stop_managed(running: ManagedCloud) -> None:
    """SIGTERM, SIGKILL after STOP_TIMEOUT (no-op once it exited)."""
    await stop_child(running.process, grace=STOP_TIMEOUT)
