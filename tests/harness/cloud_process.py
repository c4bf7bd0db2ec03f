"""`baetyl-cloud serve` as its own process, bridged to a broker by URL, as an operator runs it.

The server logs to a file, not a pipe: a pipe nobody drains blocks the server once it is full.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.harness.common import free_port, stop_async_process, tail
from tests.harness.pki import CertFiles

BIN = Path(sys.executable).parent / "baetyl-cloud"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
_LINK_UP = "MQTT link up"
_POLL = 0.05


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
        return (self.spec.data_dir / "admin.token").read_text(encoding="ascii").strip()

    def log(self) -> str:
        """Everything the server logged so far."""
        return self.spec.log_file.read_text(encoding="utf-8", errors="replace")

    async def stop(self) -> int:
        """SIGTERM, SIGKILL after STOP_TIMEOUT; returns the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        assert self.process.returncode is not None
        return self.process.returncode


@asynccontextmanager
async def running_replica(spec: ReplicaSpec) -> AsyncIterator[CloudProcess]:
    """Start a replica, wait until its MQTT link is up and it answers /health; kill it after."""
    port = free_port()
    with spec.log_file.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            BIN,
            "serve",
            "--data-dir", str(spec.data_dir),
            "--db", spec.db_url,
            "--listen", f"127.0.0.1:{port}",
            "--mqtt-url", spec.broker,
            "--mqtt-ca", str(spec.ca_file),
            "--mqtt-cert", str(spec.cert.cert_file),
            "--mqtt-key", str(spec.cert.key_file),
            "--mqtt-replica", spec.replica,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )  # fmt: skip
    running = CloudProcess(spec, f"http://127.0.0.1:{port}", process)
    try:
        await _wait_ready(running)
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _wait_ready(running: CloudProcess) -> None:
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while _LINK_UP not in running.log():
                if running.process.returncode is not None:
                    raise AssertionError(f"exited with code {running.process.returncode}")
                await asyncio.sleep(_POLL)
            async with aiohttp.ClientSession() as session:
                while not await _healthy(session, running.url):
                    await asyncio.sleep(_POLL)
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(
            f"replica {running.spec.replica} did not start ({exc or 'timed out'})\n"
            f"--- its log ---\n{tail(running.spec.log_file)}"
        ) from exc


async def _healthy(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url + "/health") as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


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
        return (self.data_dir / "admin.token").read_text(encoding="ascii").strip()

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
    offset = log_file.stat().st_size if log_file.exists() else 0
    with log_file.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            BIN,
            "serve",
            "--data-dir", str(data_dir),
            "--listen", f"127.0.0.1:{port}",
            "--mqtt-listen", f"127.0.0.1:{broker_port}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )  # fmt: skip
    running = ManagedCloud(data_dir, f"http://127.0.0.1:{port}", broker_port, process, log_file)
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while _LINK_UP not in running.log()[offset:]:
                if process.returncode is not None:
                    raise AssertionError(f"exited with code {process.returncode}")
                await asyncio.sleep(_POLL)
            async with aiohttp.ClientSession() as session:
                while not await _healthy(session, running.url):
                    await asyncio.sleep(_POLL)
    except (AssertionError, TimeoutError) as exc:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise AssertionError(
            f"the managed cloud did not start ({exc or 'timed out'})\n"
            f"--- its log ---\n{tail(log_file)}"
        ) from exc
    return running


async def stop_managed(running: ManagedCloud) -> None:
    """SIGTERM, SIGKILL after STOP_TIMEOUT (no-op once it exited)."""
    await stop_async_process(running.process, timeout=STOP_TIMEOUT)
