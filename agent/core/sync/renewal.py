"""Node certificate renewal over MQTT (DESIGN §10): a fresh key, a CSR, then a reconnect.

Once 2/3 of the certificate's lifetime has passed, the agent makes a new ECDSA P-256 key, sends a
`cert/renew` request with a CSR (CN = nid), checks the certificate it gets back, installs key and
certificate under their configured paths and makes the link reconnect with them. Apps are not
touched. The key never leaves the node.

Installing is crash-safe as a pair: both files are first written next to their targets as
`<file>.next` (key first, certificate last), then renamed into place (key first). `recover` —
run at start — finishes or discards an install that a crash interrupted, so the node never
restarts with a certificate and a key that do not belong together.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from agent.contracts.kit import backoff
from agent.contracts.kit.files import atomic_write, sync_directory
from agent.contracts.messages import CertRenewAccepted
from agent.contracts.topics import Channel
from agent.core import certinfo
from agent.core.sync.link import LinkDown, LinkSettings
from agent.core.sync.link_plugin import SyncLink
from agent.core.sync.requests import Rejected, Requests

log = logging.getLogger(__name__)

RENEW_AT: Final = 2 / 3  # of the lifetime (DESIGN §10)
RECHECK: Final = 3600.0  # long waits are cut into these: wall-clock time may jump meanwhile
MIN_GAP: Final = 30.0  # between two renewals, should the cloud issue certificates this short
RETRY_BASE: Final = 5.0
RETRY_CAP: Final = 600.0
RETRY_JITTER: Final = 0.5
STAGED: Final = ".next"
CERT_MODE: Final = 0o644
KEY_MODE: Final = 0o600


class RenewalError(Exception):
    """This renewal attempt failed; the current certificate stays in use."""


@dataclass(frozen=True)
class Lifetime:
    """What the renewal needs to know of a certificate: serial and validity (epoch seconds)."""

    serial: int
    not_before: float
    not_after: float

    @property
    def renew_at(self) -> float:
        """When 2/3 of the lifetime has passed."""
        return self.not_before + (self.not_after - self.not_before) * RENEW_AT

    @property
    def serial_hex(self) -> str:
        """The serial as `openssl x509 -serial` shows it, for logs."""
        return f"{self.serial:X}"


class CertRenewal:
    """The `sync-renew` task's body: renews the node certificate at 2/3 of its lifetime."""

    def __init__(
        self,
        settings: LinkSettings,
        requests: Requests,
        link: SyncLink,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._requests = requests
        self._link = link
        self._clock = clock
        self.renewals = 0
        self.failures = 0  # attempts that failed since the last renewal

    async def run(self) -> None:
        """Renew whenever due, until cancelled; failures are retried with backoff."""
        earliest = 0.0  # no attempt before this (backoff, or the gap after a renewal)
        while True:
            try:
                current = await asyncio.to_thread(read_lifetime, self._settings.cert_file)
            except RenewalError as exc:
                log.error("cannot read the node certificate", extra={"error": str(exc)})  # noqa: TRY400
                await asyncio.sleep(RECHECK)
                continue
            due = max(current.renew_at, earliest) - self._clock()
            if due > 0:
                log.debug("certificate renewal scheduled", extra={"in_seconds": round(due)})
                await asyncio.sleep(min(due, RECHECK))
                continue
            if current.not_after <= self._clock():
                log.error(
                    "the node certificate has expired; the broker will refuse it until the node "
                    "is activated again",
                    extra={"serial": current.serial_hex},
                )
            await self._link.wait_up()
            try:
                await self.renew(current)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: keep the old certificate, retry
                self.failures += 1
                delay = backoff.delay(
                    self.failures, base=RETRY_BASE, cap=RETRY_CAP, jitter=RETRY_JITTER
                )
                earliest = self._clock() + delay
                log.warning(
                    "certificate renewal failed",
                    extra={"error": str(exc) or type(exc).__name__, "retry_in": round(delay, 1)},
                )
            else:
                self.failures = 0
                earliest = self._clock() + MIN_GAP

    async def renew(self, current: Lifetime) -> Lifetime:
        """One renewal: key + CSR, ask the cloud, check, install, reconnect.

        Raises RenewalError (or OSError from the disk); the current pair then stays in use.
        """
        settings = self._settings
        key_pem, csr_pem = await asyncio.to_thread(new_key_and_csr, settings.nid)
        try:
            answer = await self._requests.ask(Channel.CERT_RENEW, {"csr": csr_pem.decode()})
            accepted = CertRenewAccepted.model_validate(answer.body)
        except Rejected as exc:
            raise RenewalError(f"the cloud refused: {exc}") from exc
        except (TimeoutError, LinkDown) as exc:
            raise RenewalError(f"no answer from the cloud: {exc or 'timed out'}") from exc
        except ValidationError as exc:
            raise RenewalError(f"the cloud sent an unusable answer: {exc}") from exc
        cert_pem = accepted.certificate.encode()
        renewed = await asyncio.to_thread(
            check_issued, cert_pem, key_pem, nid=settings.nid, ca_file=settings.ca_file
        )
        await asyncio.to_thread(install, settings.cert_file, settings.key_file, cert_pem, key_pem)
        self.renewals += 1
        log.info(
            "node certificate renewed; reconnecting with it",
            extra={
                "old_serial": current.serial_hex,
                "new_serial": renewed.serial_hex,
                "not_after": _iso(renewed.not_after),
            },
        )
        self._link.reconnect()
        return renewed


def read_lifetime(cert_file: Path) -> Lifetime:
    """Serial and validity of the certificate in `cert_file` (blocking)."""
    try:
        return _lifetime(certinfo.read_pem(cert_file.read_bytes()))
    except (OSError, ValueError) as exc:
        raise RenewalError(f"{cert_file}: {exc}") from exc


def new_key_and_csr(nid: str) -> tuple[bytes, bytes]:
    """A new P-256 key (PKCS#8 PEM) and a CSR for it with CN = nid (PEM); blocking."""
    from agent.core.sync import keys  # noqa: PLC0415 - cryptography (8 MB) only when renewing

    return keys.new_key_and_csr(nid)


def check_issued(cert_pem: bytes, key_pem: bytes, *, nid: str, ca_file: Path) -> Lifetime:
    """Refuse a certificate that would cut the node off: wrong CN or key, foreign CA, expired.

    The CA must be the one in `node.ca`, which the node already trusts: installing a
    certificate from another CA would leave the node with a pair the broker refuses.
    """
    from agent.core.sync import keys  # noqa: PLC0415 - cryptography (8 MB) only when renewing

    try:
        keys.check_pair(cert_pem, key_pem, nid=nid, ca_file=ca_file)
        lifetime = _lifetime(certinfo.read_pem(cert_pem))
    except ValueError as exc:  # IssuedCertificateError and CertificateError among them
        raise RenewalError(str(exc)) from exc
    if lifetime.not_after <= time.time():
        raise RenewalError(f"the renewed certificate expired on {_iso(lifetime.not_after)}")
    return lifetime


def install(cert_file: Path, key_file: Path, cert_pem: bytes, key_pem: bytes) -> None:
    """Put the new pair in place of the old one, crash-safely as a pair (blocking)."""
    atomic_write(_staged(key_file), key_pem, mode=KEY_MODE)
    # The staged certificate exists only once the staged key is complete: `recover` relies on it.
    atomic_write(_staged(cert_file), cert_pem, mode=CERT_MODE)
    _commit(cert_file, key_file)


def recover(cert_file: Path, key_file: Path) -> str | None:
    """Finish or undo an install that a crash interrupted; say which (None: nothing to do)."""
    if _staged(cert_file).exists():
        _commit(cert_file, key_file)
        return "completed an interrupted certificate renewal"
    if _staged(key_file).exists():
        _staged(key_file).unlink()
        sync_directory(key_file.parent)
        return "discarded an incomplete certificate renewal"
    return None


def _commit(cert_file: Path, key_file: Path) -> None:
    staged_key = _staged(key_file)
    if staged_key.exists():  # gone when a crash came after this rename
        staged_key.replace(key_file)
        sync_directory(key_file.parent)
    _staged(cert_file).replace(cert_file)
    sync_directory(cert_file.parent)


def _staged(path: Path) -> Path:
    return path.with_name(path.name + STAGED)


def _lifetime(info: certinfo.CertInfo) -> Lifetime:
    return Lifetime(serial=info.serial, not_before=info.not_before, not_after=info.not_after)


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat()
