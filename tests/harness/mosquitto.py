"""A real Mosquitto broker for tests, configured by cloud.broker.mosquitto_config (TLS + ACL).

The broker runs from a private directory outside pytest's tmp tree: pytest's directories are 0700
and owned by us, but a broker started as root drops to the `mosquitto` user and must still read
its ACL (re-read on SIGHUP) and certificates (reloaded on SIGHUP) and write its log and pid file.
So that directory, and everything in it, belongs to the account the broker ends up running as.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import aiomqtt

from cloud.broker import node_limits_plugin
from cloud.broker.account import broker_account, die_with_parent, spawn_identity
from cloud.broker.mosquitto_config import (
    MosquittoSettings,
    NodeLimits,
    render_acl,
    render_config,
)
from tests.harness.common import (
    HarnessError,
    free_port,
    give_to,
    service_account,
    stop_process,
    wait_until,
)
from tests.harness.pki import CertFiles, HarnessPKI
from tools.kit.procs import tail

CLOUD_USERS = ("baetyl-cloud:r1", "baetyl-cloud:r2")
START_TIMEOUT = 10.0
RELOAD_TIMEOUT = 5.0
_RELOAD_LINE = "Reloading config."
# MQTT 3.1.1 CONNECT: protocol "MQTT" level 4, clean session, keepalive 10 s, empty client id
# (the broker replaces it with the certificate CN anyway).
_CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 0x02, 0, 10, 0, 0])
_CONNACK_ACCEPTED = bytes([0x20, 2, 0, 0])
_DISCONNECT = bytes([0xE0, 0])


def find_mosquitto() -> str:
    """Path of the mosquitto binary, or a HarnessError saying how to install it."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise HarnessError(
            "mosquitto is not installed (looked in PATH and /usr/sbin); "
            "run `make system-deps` (Debian package `mosquitto`) and try again"
        )
    return found


class MosquittoBroker:
    """One Mosquitto process on a free loopback port with mutual TLS and the platform's ACL."""

    def __init__(
        self,
        pki: HarnessPKI,
        *,
        cloud_users: Sequence[str] = CLOUD_USERS,
        host: str = "127.0.0.1",
        node_limits: bool = True,
    ) -> None:
        """`node_limits=False` leaves the node-limits plugin out, as an external broker may."""
        self.host = host
        self._node_limits = node_limits
        self.port = 0
        self._pki = pki
        self._cloud_users = tuple(cloud_users)
        self._binary = find_mosquitto()
        self._account = service_account("mosquitto")
        self._process: subprocess.Popen[bytes] | None = None
        # The probe proves the whole chain (TLS, client certificate, CONNACK) before tests run.
        self._probe = pki.node("harness.probe")
        self._directory = Path(tempfile.mkdtemp(prefix="baetyl-mosquitto-"))
        self.log_file = self._directory / "mosquitto.log"
        self.acl_file = self._directory / "acl"
        self._stdio_file = self._directory / "stdio.log"
        self._config_file = self._directory / "mosquitto.conf"
        self._data_directory = self._directory / "data"

    def start(self, *, same_port: bool = False) -> None:
        """Start the broker and wait until it accepts an MQTT connection over mutual TLS.

        With `same_port` it comes back where it was (after `halt`), so clients reconnect.
        """
        self._prepare_directory()
        for _attempt in range(1 if same_port else 3):
            if not same_port:
                self.port = free_port(self.host)
            self._write_config()
            with self._stdio_file.open("ab") as stdio:
                self._process = subprocess.Popen(
                    [self._binary, "-c", str(self._config_file)],
                    stdin=subprocess.DEVNULL,
                    stdout=stdio,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C in the terminal must not skip our teardown
                    # A pytest killed by a timeout must not leave its broker behind (as the
                    # managed broker with its cloud, decision #74). Started from the main
                    # thread only (fixtures), so the signal is tied to the process's life.
                    preexec_fn=die_with_parent(os.getpid()),  # noqa: PLW1509
                    **spawn_identity(broker_account()),  # type: ignore[arg-type]
                )
            if wait_until(self._accepts_mqtt, timeout=START_TIMEOUT, alive=self._alive):
                return
            stop_process(self._process)
            if "Address already in use" not in self._logs():
                break  # only a port taken meanwhile is worth another try
        exit_code = self._process.returncode if self._process else None
        what = (
            f"exited with code {exit_code} before accepting connections"
            if exit_code not in (None, -signal.SIGTERM)
            else f"did not accept mutual-TLS MQTT connections within {START_TIMEOUT} s"
        )
        raise HarnessError(
            f"mosquitto on {self.host}:{self.port} {what}\n--- broker output ---\n{self._logs()}"
        )

    def halt(self) -> None:
        """Stop the broker process only (an outage); `start(same_port=True)` brings it back."""
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    def stop(self) -> None:
        """Stop the broker (SIGTERM, SIGKILL after a deadline) and remove its directory."""
        try:
            if self._process is not None:
                stop_process(self._process)
        finally:
            shutil.rmtree(self._directory, ignore_errors=True)

    def set_denied(self, nids: Iterable[str]) -> None:
        """Rewrite the ACL with `nids` denied everything and make the running broker reload it."""
        process = self._running()
        self._write(self.acl_file, render_acl(cloud_users=self._cloud_users, denied_nids=nids))
        before = self._reloads()
        process.send_signal(signal.SIGHUP)
        # The broker logs the line and then re-reads the ACL in the same pass of its single-threaded
        # loop, so every packet it handles after the line was written sees the new ACL.
        if not wait_until(
            lambda: self._reloads() > before, timeout=RELOAD_TIMEOUT, alive=self._alive
        ):
            raise HarnessError(
                f"mosquitto did not log {_RELOAD_LINE!r} within {RELOAD_TIMEOUT} s after SIGHUP\n"
                f"--- broker output ---\n{self._logs()}"
            )

    def client(
        self,
        cert: CertFiles | None,
        *,
        identifier: str | None = None,
        protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V311,
        timeout: float = 5,
    ) -> aiomqtt.Client:
        """An aiomqtt client for this broker presenting `cert` (None: no client certificate).

        Call it inside the running event loop (aiomqtt binds the loop on construction) and use it
        as `async with`. The broker sets the client id to the CN whatever `identifier` says.
        """
        return aiomqtt.Client(
            self.host,
            self.port,
            identifier=identifier,
            protocol=protocol,
            timeout=timeout,
            tls_context=self._pki.ssl_context(cert),
        )

    def _prepare_directory(self) -> None:
        self._directory.chmod(0o700)
        give_to(self._account, self._directory)
        for name, source in (
            ("ca.pem", self._pki.ca_file),
            ("server.pem", self._pki.server.cert_file),
            ("server.key", self._pki.server.key_file),
        ):
            self._write(self._directory / name, source.read_text(encoding="utf-8"))
        self._write(self.acl_file, render_acl(cloud_users=self._cloud_users))
        # Created up front so it belongs to the broker's account whichever step opens it first.
        self._write(self.log_file, "")
        self._data_directory.mkdir(mode=0o700, exist_ok=True)
        give_to(self._account, self._data_directory)

    def _write_config(self) -> None:
        # The node-limits plugin, as in production (decision #98).
        limits = NodeLimits(plugin=node_limits_plugin.build(self._directory))
        settings = MosquittoSettings(
            cafile=self._directory / "ca.pem",
            certfile=self._directory / "server.pem",
            keyfile=self._directory / "server.key",
            acl_file=self.acl_file,
            pid_file=self._directory / "mosquitto.pid",
            log_file=self.log_file,
            persistence_dir=self._data_directory,  # as in production
            bind_address=self.host,
            port=self.port,
            node_limits=limits if self._node_limits else None,
        )
        self._write(self._config_file, render_config(settings))

    def _write(self, path: Path, text: str) -> None:
        # Write-then-rename, so a broker reloading at that moment never reads half a file.
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.chmod(0o600)
        give_to(self._account, temporary)
        temporary.replace(path)

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            raise HarnessError(f"mosquitto is not running\n--- broker output ---\n{self._logs()}")
        return self._process

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _accepts_mqtt(self) -> bool:
        context = self._pki.ssl_context(self._probe)
        try:
            with (
                socket.create_connection((self.host, self.port), timeout=1) as raw,
                context.wrap_socket(raw, server_hostname=self.host) as tls,
            ):
                tls.sendall(_CONNECT)
                answer = _read_exactly(tls, len(_CONNACK_ACCEPTED))
                if answer != _CONNACK_ACCEPTED:
                    raise HarnessError(
                        f"mosquitto refused the harness probe {self._probe.common_name!r}: "
                        f"CONNACK {answer.hex()}\n--- broker output ---\n{self._logs()}"
                    )
                tls.sendall(_DISCONNECT)
                return True
        except (OSError, ssl.SSLError):
            return False

    def _reloads(self) -> int:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace").count(_RELOAD_LINE)
        except FileNotFoundError:
            return 0

    def _logs(self) -> str:
        stdio, log = tail(self._stdio_file, 20), tail(self.log_file, 40)
        return f"{stdio}\n--- {self.log_file.name} ---\n{log}"


def _read_exactly(sock: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    deadline = time.monotonic() + 2
    while len(data) < size and time.monotonic() < deadline:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data
