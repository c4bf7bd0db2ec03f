"""The real services of a fleet run: PostgreSQL, one Mosquitto, and `baetyl-cloud serve` replicas.

Each is an async context manager that stops what it started, however the run ends. The broker is
configured by the project's renderer (cloud.broker.mosquitto_config) with the bench CA; replicas
reach it by URL, as in production (docs/operations.md, "Several cloud replicas").
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloud.broker.managed import find_mosquitto
from cloud.broker.mosquitto_config import MosquittoSettings, render_acl, render_config
from fleetsim.mqtt import MqttClient, MqttError
from fleetsim.pki import BenchPKI
from fleetsim.workers import stop_process
from tests.harness.common import free_port, give_to, service_account, wait_for_port
from tests.harness.postgres import PostgresCluster
from tools.kit.cloud import BAETYL_CLOUD, serve_args
from tools.kit.procs import stop_child, tail

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class ServiceError(RuntimeError):
    """A service did not start; the message carries the tail of its log."""


@dataclass(frozen=True)
class Broker:
    """A running Mosquitto: where it listens, its log, its pid."""

    host: str
    port: int
    log_file: Path
    pid: int

    def log_has(self, text: str) -> bool:
        """Whether the broker logged `text` (for waiting on a replica's connection)."""
        try:
            return text in self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return False


@contextlib.asynccontextmanager
async def postgres() -> AsyncIterator[tuple[PostgresCluster, str]]:
    """A throwaway cluster (the test harness's: fsync off) and the DSN of database `fleet`."""
    cluster = PostgresCluster()
    try:
        dsn = await asyncio.to_thread(cluster.create_database, "fleet")
        yield cluster, dsn
    finally:
        await asyncio.to_thread(cluster.stop)


@contextlib.asynccontextmanager
async def mosquitto(
    pki: BenchPKI,
    *,
    replicas: Sequence[str],
    max_connections: int,
    probe: str,
    keep_logs: Path | None = None,
) -> AsyncIterator[Broker]:
    """Mosquitto with mutual TLS and the platform ACL, ready once `probe` (a nid) connects.

    Its log is copied to `keep_logs` (a directory) before its files are removed.
    """
    directory = Path(tempfile.mkdtemp(prefix="baetyl-bench-mosquitto-"))
    try:
        settings = await asyncio.to_thread(
            _broker_files, directory, pki, replicas=replicas, max_connections=max_connections
        )
        async with _broker_process(directory, settings, pki, probe) as broker:
            yield broker
    finally:
        if keep_logs is not None:
            await asyncio.to_thread(_keep_logs, keep_logs, directory)
        await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)


def _broker_files(
    directory: Path, pki: BenchPKI, *, replicas: Sequence[str], max_connections: int
) -> MosquittoSettings:
    """Write config, ACL and TLS files, all owned by the account the broker drops to as root."""
    account = service_account("mosquitto")
    directory.chmod(0o700)
    give_to(account, directory)
    settings = MosquittoSettings(
        cafile=directory / "ca.pem",
        certfile=directory / "server.pem",
        keyfile=directory / "server.key",
        acl_file=directory / "acl",
        pid_file=directory / "mosquitto.pid",
        log_file=directory / "mosquitto.log",
        persistence_dir=None,
        bind_address=HOST,
        port=free_port(HOST),
        max_connections=max_connections,
    )
    files = {
        settings.cafile: pki.ca_file.read_text(encoding="ascii"),
        settings.certfile: pki.server_cert.read_text(encoding="ascii"),
        settings.keyfile: pki.server_key.read_text(encoding="ascii"),
        settings.acl_file: render_acl(cloud_users=[f"baetyl-cloud:{r}" for r in replicas]),
        settings.log_file: "",
        directory / "mosquitto.conf": render_config(settings),
    }
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        give_to(account, path)
    return settings


def _keep_logs(target: Path, source: Path) -> None:
    """Copy every `*.log` file of `source` into `target` (created if needed)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.log"):
        shutil.copyfile(path, target / path.name)


@contextlib.asynccontextmanager
async def _broker_process(
    directory: Path, settings: MosquittoSettings, pki: BenchPKI, probe: str
) -> AsyncIterator[Broker]:
    stdio = directory / "stdio.log"
    with stdio.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            find_mosquitto(),
            "-c",
            str(directory / "mosquitto.conf"),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            await _wait_broker(process, settings, pki, probe)
        except ServiceError as exc:
            raise ServiceError(f"{exc}\n{tail(stdio, 40)}\n{tail(settings.log_file, 40)}") from None
        yield Broker(HOST, settings.port, settings.log_file, process.pid)
    finally:
        if process.returncode is None:
            process.terminate()
        await stop_process(process, grace=STOP_TIMEOUT)


async def _wait_broker(
    process: asyncio.subprocess.Process, settings: MosquittoSettings, pki: BenchPKI, probe: str
) -> None:
    """Until a mutual-TLS CONNECT is accepted: the whole chain, not just an open port."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.load_cert_chain(pki.node_file(probe))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise ServiceError(f"mosquitto exited with code {process.returncode}")
        try:
            client = await MqttClient.open(
                HOST,
                settings.port,
                context=context,
                client_id=probe,
                keepalive=10,
                on_message=lambda _topic, _payload: None,
                on_lost=lambda _exc: None,
                within=2,
            )
        except (OSError, MqttError, TimeoutError):
            await asyncio.sleep(0.1)
            continue
        client.close()
        return
    raise ServiceError(f"mosquitto did not accept a mutual-TLS connection in {START_TIMEOUT} s")


@dataclass(frozen=True)
class Replica:
    """One `baetyl-cloud serve` process."""

    name: str
    url: str
    process: asyncio.subprocess.Process
    data_dir: Path

    @property
    def pid(self) -> int:
        """Its process id (for CPU accounting)."""
        return self.process.pid

    @property
    def log_file(self) -> Path:
        """Its stderr (JSON log lines, warnings and above)."""
        return self.data_dir.parent / f"{self.name}.log"


class Cloud:
    """The replicas of a run: one database, one broker, one share group, one secret key."""

    def __init__(
        self,
        *,
        root: Path,
        db_url: str,
        broker: Broker,
        pki: BenchPKI,
        profile_dir: Path | None = None,
    ) -> None:
        """`profile_dir`: run each replica under cProfile, writing `<replica>.prof` there."""
        self.replicas: list[Replica] = []
        self._profile_dir = profile_dir
        self._root = root
        self._db_url = db_url
        self._broker = broker
        self._pki = pki

    @property
    def token(self) -> str:
        """The admin token of namespace `default`, written by the first replica."""
        return (self.replicas[0].data_dir / "admin.token").read_text(encoding="ascii").strip()

    async def start(self, name: str) -> Replica:
        """Start a replica and return once its REST port and its MQTT link are up."""
        data_dir = self._root / name
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.replicas:  # secrets are sealed with this key: every replica needs the same
            shutil.copy2(self.replicas[0].data_dir / "secret.key", data_dir / "secret.key")
        port = free_port(HOST)
        cert, key = self._pki.replica_files(name)
        profiler: list[str] = []
        if self._profile_dir is not None:
            self._profile_dir.mkdir(parents=True, exist_ok=True)
            profile = self._profile_dir / f"{name}.prof"
            profiler = [sys.executable, "-m", "cProfile", "-o", str(profile)]
        command = [
            *profiler,
            str(BAETYL_CLOUD),
            *serve_args(data_dir, port, log_level="warning"),
            "--db", self._db_url,
            "--mqtt-url", f"mqtts://{self._broker.host}:{self._broker.port}",
            "--mqtt-ca", str(self._pki.ca_file),
            "--mqtt-cert", str(cert),
            "--mqtt-key", str(key),
            "--mqtt-replica", name,
        ]  # fmt: skip
        log_file = self._root / f"{name}.log"
        with log_file.open("ab") as output:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        replica = Replica(name, f"http://{HOST}:{port}", process, data_dir)
        self.replicas.append(replica)
        try:
            await asyncio.to_thread(wait_for_port, HOST, port, timeout=START_TIMEOUT)
            await self._wait_link(replica)
        except Exception as exc:
            log = tail(log_file, 40)
            raise ServiceError(f"replica {name} did not start: {exc}\n{log}") from exc
        return replica

    async def stop_last(self) -> None:
        """Stop the most recently started replica (SIGTERM, SIGKILL after a deadline)."""
        replica = self.replicas.pop()
        await stop_child(replica.process, grace=STOP_TIMEOUT)

    async def close(self) -> None:
        """Stop every replica, newest first."""
        while self.replicas:
            await self.stop_last()

    async def _wait_link(self, replica: Replica) -> None:
        """Until the broker logged the replica's connection, plus a moment for its SUBSCRIBEs."""
        needle = f" as baetyl-cloud:{replica.name} ("
        deadline = time.monotonic() + START_TIMEOUT
        while not self._broker.log_has(needle):
            if replica.process.returncode is not None:
                raise ServiceError(f"exited with code {replica.process.returncode}")
            if time.monotonic() > deadline:
                raise ServiceError(f"its MQTT link did not come up in {START_TIMEOUT} s")
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)


@contextlib.asynccontextmanager
async def cloud(
    *,
    db_url: str,
    broker: Broker,
    pki: BenchPKI,
    keep_logs: Path | None = None,
    profile_dir: Path | None = None,
) -> AsyncIterator[Cloud]:
    """A `Cloud` in a temporary directory; every replica is stopped on the way out.

    The replicas' logs are copied to `keep_logs` (a directory) at the end.
    """
    with tempfile.TemporaryDirectory(prefix="baetyl-bench-cloud-") as root:
        replicas = Cloud(
            root=Path(root), db_url=db_url, broker=broker, pki=pki, profile_dir=profile_dir
        )
        try:
            yield replicas
        finally:
            await replicas.close()
            if keep_logs is not None:
                await asyncio.to_thread(_keep_logs, keep_logs, Path(root))
