"""Run and supervise the embedded Mosquitto of `baetyl-cloud serve` (DESIGN §10-§11).

The broker's files live in `DATA_DIR/mosquitto/`, rendered from the same templates as
`deploy/mosquitto/`; its TLS material comes from `DATA_DIR/pki/` (cloud.broker.pki_files).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from agent.contracts.kit import backoff, files
from agent.contracts.shadow import DEFAULT_LIMITS
from cloud.broker import leftover, node_limits_plugin
from cloud.broker.account import (
    BROKER_USER,
    broker_account,
    check_reachable,
    die_with_parent,
    let_search,
    spawn_identity,
)
from cloud.broker.errors import BrokerError
from cloud.broker.mosquitto_config import (
    CLOUD_USER_PREFIX,
    MosquittoSettings,
    NodeLimits,
    check_cloud_user,
    render_acl,
    render_config,
)
from cloud.broker.pki_files import (
    CRL_NAME,
    CloudPKIFiles,
    crl_serials,
    ensure_cloud_pki,
    load_or_create_ca,
)
from cloud.pki.ca import CertificateAuthority, IssuedCertificate, write_certificate_files
from cloud.settings import ManagedBrokerSettings, MqttSettings

__all__ = ["BrokerError", "ManagedBroker", "find_mosquitto"]
log = logging.getLogger(__name__)
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
RELOAD_TIMEOUT = 5.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
BACKOFF_JITTER = 0.2
"""Restarts wait 0.5 s doubling to 30 s, up to 20 % less: replicas on one machine do not
restart their brokers in lockstep."""
STABLE_AFTER = 60.0
"""A broker that stayed up this long (seconds) restarts with the shortest delay again."""
_POLL = 0.05
_RELOAD_LINE = b"Reloading config."
# MQTT 3.1.1 CONNECT: protocol "MQTT" level 4, clean session, keepalive 10 s, empty client id
# (the broker sets the client id to the certificate CN anyway).
_CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 0x02, 0, 10, 0, 0])
_CONNACK_ACCEPTED = bytes([0x20, 2, 0, 0])
_DISCONNECT = bytes([0xE0, 0])
_UNSPECIFIED = frozenset({"0.0.0.0", "::"})  # noqa: S104 - compared, not bound
"""prctl(2) option: the signal the kernel sends a process when its parent thread dies."""


def find_mosquitto() -> str:
    """Path of the mosquitto binary (PATH, then /usr/sbin), or a BrokerError saying what to do."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise BrokerError(
            "mosquitto is not installed (looked in PATH and /usr/sbin): install it with "
            "`apt-get install mosquitto`, or use an external broker with --mqtt-url"
        )
    return found


class ManagedBroker:
    """A local Mosquitto with mutual TLS and the platform ACL, restarted whenever it dies.

    Use as `async with ManagedBroker(data_dir=..., settings=...) as broker:`; entering creates what
    is missing (CA, certificates, config, ACL), starts the broker and returns once it accepts a
    mutual-TLS MQTT connection; leaving stops it (SIGTERM, SIGKILL after STOP_TIMEOUT).
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        settings: ManagedBrokerSettings | None = None,
        denied_nids: Iterable[str] = (),
        node_payload_limit: int = DEFAULT_LIMITS.node_payload_bytes,
        other_replicas: Iterable[str] = (),
    ) -> None:
        """Check the arguments; nothing is written or started before `async with`.

        `settings` default to ManagedBrokerSettings(); `denied_nids` are deleted nodes to shut
        out from the start (see `reload_acl`); `node_payload_limit` is the largest payload the
        node-limits plugin lets a node publish (decision #98); `other_replicas` are the names of
        cloud replicas that connect from elsewhere (`serve --mqtt-url`), each let in with full
        access as `baetyl-cloud:<name>` (the broker of `baetyl-cloud broker`).
        """
        options = settings or ManagedBrokerSettings()
        host = options.host
        self._data_dir = data_dir.absolute()
        self._pki_dir = self._data_dir / "pki"
        self._dir = self._data_dir / "mosquitto"
        self._bridge = options.bridge
        self._replica = options.bridge.replica
        self._user = check_cloud_user(f"{CLOUD_USER_PREFIX}{self._replica}")
        self._users = (
            self._user,
            *(check_cloud_user(f"{CLOUD_USER_PREFIX}{name}") for name in other_replicas),
        )
        self._server_names = options.server_names
        self._denied = tuple(denied_nids)
        render_acl(cloud_users=self._users, denied_nids=self._denied)  # validates the nids
        self._settings = MosquittoSettings(
            cafile=self._dir / "ca.pem",
            certfile=self._dir / "server.pem",
            keyfile=self._dir / "server.key",
            acl_file=self._dir / "acl",
            pid_file=self._dir / "mosquitto.pid",
            log_file=self._dir / "mosquitto.log",
            persistence_dir=self._dir / "data",
            crl_file=self._dir / "crl.pem",
            bind_address=host,
            port=options.port,
            user=BROKER_USER,
        )
        # Validated now; the plugin's real path is known once it is built (`_prepare`).
        self._node_limits = NodeLimits(
            plugin=self._dir / "plugin.so", max_payload=node_payload_limit
        )
        self._config_file = self._dir / "mosquitto.conf"
        self._stdio_file = self._dir / "stdio.log"
        # Clients dial a concrete address; a wildcard listener is reachable on loopback.
        self._client_host = "127.0.0.1" if host in _UNSPECIFIED else host
        self._binary = ""
        self._account: pwd.struct_passwd | None = None
        self._pki: CloudPKIFiles | None = None
        self._ca: CertificateAuthority | None = None
        self._revoked: frozenset[int] | None = None
        """Revoked node certificate serials; None until known (then from `pki/crl.pem`)."""
        self._kicks: dict[int, datetime.datetime] = {}
        """Serials (and expiry) of the certificates `_kick` used, revoked in the CRL too."""
        self._probe_context: ssl.SSLContext | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._started_at = 0.0
        self._restarts = 0
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """Pid of the running broker process, None while it is down."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    @property
    def restarts(self) -> int:
        """How many times the supervisor restarted the broker after it died."""
        return self._restarts

    @property
    def directory(self) -> Path:
        """`DATA_DIR/mosquitto/`: config, ACL, certificates copy, log, pid and persistence."""
        return self._dir

    def mqtt_settings(self) -> MqttSettings:
        """How this replica's MQTT bridge reaches the broker (its own client certificate)."""
        if self._pki is None:
            raise BrokerError("the managed broker is not started: use it inside `async with`")
        return MqttSettings(
            host=self._client_host,
            port=self._settings.port,
            ca_file=self._pki.ca_file,
            cert_file=self._pki.client_cert_file,
            key_file=self._pki.client_key_file,
            bridge=self._bridge,
        )

    async def __aenter__(self) -> ManagedBroker:
        """Prepare the files, start the broker, wait until it serves, start the supervisor."""
        self._binary = find_mosquitto()
        self._account = await asyncio.to_thread(broker_account)
        await self._start()
        self._supervisor = asyncio.create_task(
            self._supervise(), name=f"managed-broker:{self._replica}"
        )
        log.info(
            "managed broker started",
            extra={
                "listen": f"{self._settings.bind_address}:{self._settings.port}",
                "broker_pid": self.pid,
                "directory": str(self._dir),
            },
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Cancel the supervisor, then stop the broker."""
        supervisor, self._supervisor = self._supervisor, None
        try:
            if supervisor is not None:
                supervisor.cancel()
                await asyncio.wait([supervisor])
                if not supervisor.cancelled() and supervisor.exception() is not None:
                    log.error("broker supervisor failed", exc_info=supervisor.exception())
        finally:
            if self._process is not None:
                await _stop(self._process)
                log.info("managed broker stopped", extra={"exit_code": self._process.returncode})

    async def reload_acl(
        self, denied_nids: Iterable[str], revoked_serials: Iterable[int] | None = None
    ) -> None:
        """Shut out `denied_nids` (deleted nodes) and refuse `revoked_serials`, effective now.

        The CRL and the ACL are rewritten and the broker gets SIGHUP (Mosquitto 2.0 re-reads
        both); this returns once the broker logged the reload, so what it handles afterwards
        sees them. A nid that leaves the deny list (a node created again under that name) is
        first disconnected: with its old certificates already refused, the cloud connects once
        as that nid, which makes the broker close any connection still open under it (an old
        agent muted by the deny list), and only then lifts the deny. The lists replace the
        previous ones (None keeps the revoked serials) and are kept for restarts. Raises
        ValueError for an invalid nid (nothing changes) and BrokerError if the broker does not
        confirm a reload within RELOAD_TIMEOUT.
        """
        denied = tuple(denied_nids)
        render_acl(cloud_users=self._users, denied_nids=denied)  # validates the nids
        if revoked_serials is not None:
            self._revoked = frozenset(revoked_serials)
        lifted = [nid for nid in self._denied if nid not in denied]
        if lifted and self.pid is not None:
            await self._apply(denied + tuple(lifted))
            for nid in lifted:
                await self._kick(nid)
        self._denied = denied
        await self._apply(denied)
        log.info("broker ACL reloaded", extra={"denied_nids": list(denied)})

    async def _apply(self, denied: tuple[str, ...]) -> None:
        """Write the CRL and an ACL denying `denied`, SIGHUP the broker, wait for its reload."""
        await asyncio.to_thread(self._write_access, denied)
        process = self._process
        if process is None or process.returncode is not None:
            return  # the supervisor's next start reads the new files
        offset = await asyncio.to_thread(_size, self._settings.log_file)
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_TIMEOUT
        exited = asyncio.ensure_future(process.wait())
        try:
            while not exited.done():
                if await asyncio.to_thread(_contains_after, self._settings.log_file, offset):
                    return
                if time.monotonic() >= deadline:
                    raise BrokerError(
                        f"mosquitto did not confirm the ACL reload within {RELOAD_TIMEOUT} s\n"
                        f"{await self._logs()}"
                    )
                await asyncio.wait([exited], timeout=_POLL)
        finally:
            exited.cancel()

    def _write_access(self, denied: tuple[str, ...]) -> None:
        """Blocking: the CRL (revoked node certificates and kick certificates) and the ACL."""
        assert self._ca is not None
        now = datetime.datetime.now(datetime.UTC)
        self._kicks = {serial: end for serial, end in self._kicks.items() if end > now}
        if self._revoked is None:
            # First start: what the last run published, until the store's list arrives.
            self._revoked = crl_serials(self._pki_dir / CRL_NAME, self._ca)
        assert self._settings.crl_file is not None
        self._write(self._settings.crl_file, self._ca.crl(self._revoked | set(self._kicks)))
        acl = render_acl(cloud_users=self._users, denied_nids=denied)
        self._write(self._settings.acl_file, acl.encode())

    async def _kick(self, nid: str) -> None:
        """Close any connection open under `nid` by connecting as `nid` once (client takeover).

        The broker forces the client id to the certificate CN, so a new connection with CN `nid`
        makes it drop the old one; clean session discards the old session's subscriptions. The
        certificate is made for this one connection, never written outside a private temporary
        directory, and revoked in the CRL right after.
        """
        assert self._ca is not None
        issued = await asyncio.to_thread(self._ca.issue_client, nid, valid_days=1)
        self._kicks[issued.serial_number] = issued.not_after
        context = await asyncio.to_thread(_client_context, self._pki_dir, issued)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self._client_host,
                    self._settings.port,
                    ssl=context,
                    server_hostname=self._client_host,
                ),
                timeout=RELOAD_TIMEOUT,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise BrokerError(
                f"could not connect as {nid} to close its old connection: {exc}"
            ) from exc
        try:
            writer.write(_CONNECT)
            await writer.drain()
            answer = await asyncio.wait_for(
                reader.readexactly(len(_CONNACK_ACCEPTED)), timeout=RELOAD_TIMEOUT
            )
            if answer != _CONNACK_ACCEPTED:
                raise BrokerError(f"the broker refused the connection as {nid}: {answer.hex()}")
            writer.write(_DISCONNECT)
            await writer.drain()
        except (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError) as exc:
            raise BrokerError(f"closing the old connection of {nid} failed: {exc}") from exc
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        log.info("closed any old connection of a re-created node", extra={"nid": nid})

    async def _start(self) -> None:
        """(Re)write every file, replace a stale broker, spawn ours, wait until it serves TLS."""
        await asyncio.to_thread(self._prepare)
        await leftover.replace_stale(self._settings.pid_file, self._binary, self._config_file)
        stdio = await asyncio.to_thread(_open_append, self._stdio_file)
        identity = spawn_identity(self._account)
        try:
            process = await asyncio.create_subprocess_exec(
                self._binary,
                "-c",
                str(self._config_file),
                stdin=subprocess.DEVNULL,
                stdout=stdio,
                stderr=subprocess.STDOUT,
                # A Ctrl-C in the terminal must reach the cloud only, which then stops the broker
                # in order, instead of the supervisor seeing it die and restarting it.
                start_new_session=True,
                # The broker dies with the cloud, even with a kill -9 that runs no cleanup.
                preexec_fn=die_with_parent(os.getpid()),
                **identity,  # type: ignore[arg-type]
            )
        finally:
            stdio.close()
        self._process = process
        self._started_at = time.monotonic()
        try:
            await self._wait_ready(process)
        except BaseException:
            await _stop(process)
            raise

    async def _wait_ready(self, process: asyncio.subprocess.Process) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        exited = asyncio.ensure_future(process.wait())
        try:
            await self._poll_ready(process, exited, deadline)
        finally:
            exited.cancel()

    async def _poll_ready(
        self, process: asyncio.subprocess.Process, exited: asyncio.Future[int], deadline: float
    ) -> None:
        while True:
            if process.returncode is not None:
                raise BrokerError(
                    f"mosquitto exited with code {process.returncode} before accepting "
                    f"connections on {self._client_host}:{self._settings.port}\n"
                    f"{await self._logs()}"
                )
            if await self._accepts_mqtt():
                return
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"mosquitto did not accept a mutual-TLS MQTT connection on "
                    f"{self._client_host}:{self._settings.port} within {START_TIMEOUT} s\n"
                    f"{await self._logs()}"
                )
            await asyncio.wait([exited], timeout=_POLL)

    async def _accepts_mqtt(self) -> bool:
        assert self._probe_context is not None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self._client_host,
                    self._settings.port,
                    ssl=self._probe_context,
                    server_hostname=self._client_host,
                ),
                timeout=1,
            )
        except (OSError, ssl.SSLError, TimeoutError):
            return False
        try:
            writer.write(_CONNECT)
            await writer.drain()
            answer = await asyncio.wait_for(reader.readexactly(len(_CONNACK_ACCEPTED)), timeout=2)
            if answer != _CONNACK_ACCEPTED:
                raise BrokerError(
                    f"mosquitto refused the start probe: CONNACK {answer.hex()}\n"
                    f"{await self._logs()}"
                )
            writer.write(_DISCONNECT)
            await writer.drain()
        except (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        return True

    async def _supervise(self) -> None:
        """Wait for the broker to die and start it again, with backoff, for as long as we run."""
        failures = 0
        while True:
            process = self._process
            assert process is not None
            code = await process.wait()
            uptime = time.monotonic() - self._started_at
            if uptime >= STABLE_AFTER:
                failures = 0
            log.warning(
                "mosquitto exited unexpectedly",
                extra={"broker_pid": process.pid, "exit_code": code, "uptime": round(uptime, 1)},
            )
            while True:
                delay = backoff.delay(
                    failures + 1, base=BACKOFF_BASE, cap=BACKOFF_CAP, jitter=BACKOFF_JITTER
                )
                failures += 1
                log.info(
                    "restarting mosquitto",
                    extra={"restart_delay": round(delay, 3), "attempt": failures},
                )
                await asyncio.sleep(delay)
                try:
                    await self._start()
                except Exception:
                    log.exception("mosquitto restart failed", extra={"attempt": failures})
                    continue
                break
            self._restarts += 1
            log.warning(
                "mosquitto restarted",
                extra={"broker_pid": self.pid, "restarts": self._restarts},
            )

    def _prepare(self) -> None:
        """Blocking: the PKI, then `DATA_DIR/mosquitto/` usable by the broker's account."""
        pki = ensure_cloud_pki(
            self._pki_dir,
            broker_host=self._settings.bind_address,
            replica=self._replica,
            extra_names=self._server_names,
        )
        self._pki = pki
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_file))
        context.load_cert_chain(pki.probe_cert_file, pki.probe_key_file)
        self._probe_context = context
        account = self._account
        self._dir.mkdir(mode=0o700, exist_ok=True)
        if account is not None:
            let_search(account, self._data_dir)
            check_reachable(account, self._data_dir, self._dir)
            os.chown(self._dir, account.pw_uid, account.pw_gid)
        # Copies rather than references: the broker's account reads them (also on SIGHUP)
        # without being given access to the PKI directory and the CA key in it.
        for target, source in (
            (self._settings.cafile, pki.ca_file),
            (self._settings.certfile, pki.broker_cert_file),
            (self._settings.keyfile, pki.broker_key_file),
        ):
            self._write(target, source.read_bytes())
        self._ca = load_or_create_ca(self._pki_dir)
        self._write_access(self._denied)
        try:
            plugin = node_limits_plugin.build(self._dir)
        except node_limits_plugin.PluginBuildError as exc:
            raise BrokerError(str(exc)) from None
        limits = dataclasses.replace(self._node_limits, plugin=plugin)
        self._settings = dataclasses.replace(self._settings, node_limits=limits)
        self._write(self._config_file, render_config(self._settings).encode())
        assert self._settings.persistence_dir is not None
        self._settings.persistence_dir.mkdir(mode=0o700, exist_ok=True)
        # Created up front so it belongs to the broker's account whichever side opens it first.
        self._settings.log_file.touch(mode=0o600, exist_ok=True)
        if account is not None:
            for path in (self._settings.persistence_dir, self._settings.log_file):
                os.chown(path, account.pw_uid, account.pw_gid)

    def _write(self, path: Path, data: bytes) -> None:
        # Atomic, so a broker reloading at that moment never reads half a file; owner-only and
        # owned by the broker's account, which reads it after dropping root.
        account = self._account
        owner = None if account is None else (account.pw_uid, account.pw_gid)
        files.atomic_write(path, data, mode=0o600, owner=owner)

    async def _logs(self) -> str:
        def read() -> str:
            return (
                f"--- {self._stdio_file} ---\n{_tail(self._stdio_file, 10)}\n"
                f"--- {self._settings.log_file} ---\n{_tail(self._settings.log_file, 30)}"
            )

        return await asyncio.to_thread(read)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, SIGKILL after STOP_TIMEOUT, and reap the process."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=STOP_TIMEOUT)
        except TimeoutError:
            log.warning("mosquitto ignored SIGTERM, killing it", extra={"broker_pid": process.pid})
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    await process.wait()


def _client_context(directory: Path, issued: IssuedCertificate) -> ssl.SSLContext:
    """Blocking: a client TLS context for `issued` (the ssl module loads keys from files only)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(directory / "ca.pem"))
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        cert, key = write_certificate_files(Path(scratch), "kick", issued)
        context.load_cert_chain(cert, key)
    return context


def _open_append(path: Path) -> BinaryIO:
    return path.open("ab")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _contains_after(path: Path, offset: int) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return _RELOAD_LINE in handle.read()
    except FileNotFoundError:
        return False


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])
