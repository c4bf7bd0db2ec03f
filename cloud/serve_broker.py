"""`baetyl-cloud broker`: the managed broker on its own, for replicas that run apart.

On Kubernetes (deploy/kubernetes/cloud/) the cloud replicas are pods of their own and reach one
broker with `serve --mqtt-url`; none of them can rewrite that broker's ACL or CRL. This process
runs the same supervised Mosquitto as `serve` (cloud.broker.managed: certificates from the shared
CA, the ACL, the node-limits plugin) with every replica's user in the ACL, and follows the
deny list and the revoked certificates in the shared database instead of hearing them from an
in-process REST server: every `sync_interval` it reads both and reloads the broker when they
changed. A node deleted through any replica is therefore shut out within one interval, and a
node created again under an old name gets its old connection closed as with `serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from agent.contracts.shadow import DEFAULT_LIMITS
from cloud.broker.errors import BrokerError
from cloud.broker.managed import ManagedBroker
from cloud.settings import ManagedBrokerSettings
from cloud.store import denied as denied_store
from cloud.store import node_certs as cert_store
from cloud.store.db import close_store, open_store

log = logging.getLogger(__name__)
BROKER_REPLICA = "broker"
"""The broker process's own cloud user (`baetyl-cloud:broker`): its probe and its kicks."""


@dataclass(frozen=True)
class BrokerServeSettings:
    """What `baetyl-cloud broker` runs with.

    Attributes:
        data_dir: holds `pki/` (the shared CA: `ca.pem`, `ca.key`) and `mosquitto/`.
        db_url: the database the replicas share (the deny list and revoked certificates).
        broker: where Mosquitto listens and which names its certificate carries.
        replicas: the cloud replicas' names; each connects as `baetyl-cloud:<name>`.
        sync_interval: seconds between two reads of the deny list and revocations.
        node_payload_limit: the largest payload a node may publish (decision #98).
    """

    data_dir: Path
    db_url: str
    broker: ManagedBrokerSettings = field(default_factory=ManagedBrokerSettings)
    replicas: tuple[str, ...] = ()
    sync_interval: float = 5.0
    node_payload_limit: int = DEFAULT_LIMITS.node_payload_bytes


Access = tuple[tuple[str, ...], frozenset[int]]


async def read_access() -> Access:
    """The deny list (nids of deleted nodes) and the serials a CRL must list, from the store."""
    denied = await denied_store.all_nids()
    revoked = await cert_store.revoked_serials(datetime.now(UTC))
    return tuple(denied), frozenset(revoked)


async def follow_access(broker: ManagedBroker, interval: float, stop: asyncio.Event) -> None:
    """Reload `broker` whenever the stored access lists change, until `stop` is set.

    A failed read or reload (database away, broker restarting) is logged and tried again at the
    next interval: the broker keeps the lists it has, which only ever lag, never widen access
    beyond what the last successful read allowed.
    """
    applied: Access | None = None
    while not stop.is_set():
        try:
            current = await read_access()
            if current != applied:
                await broker.reload_acl(current[0], current[1])
                applied = current
        except (BrokerError, OSError, ConnectionError) as exc:
            log.warning("access sync failed; retrying", extra={"error": str(exc)})
        except Exception:
            # The store's own errors (a dropped connection) vary by driver; keep following.
            log.exception("access sync failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def serve_broker(settings: BrokerServeSettings) -> None:
    """Run the broker until SIGTERM/SIGINT, following the shared store's access lists."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await open_store(settings.db_url)
    try:
        denied, _ = await read_access()
        async with ManagedBroker(
            data_dir=settings.data_dir,
            settings=settings.broker,
            denied_nids=denied,
            node_payload_limit=settings.node_payload_limit,
            other_replicas=settings.replicas,
        ) as broker:
            log.info(
                "baetyl-cloud broker serving",
                extra={
                    "listen": f"{settings.broker.host}:{settings.broker.port}",
                    "replicas": list(settings.replicas),
                    "sync_interval": settings.sync_interval,
                },
            )
            follower = asyncio.create_task(
                follow_access(broker, settings.sync_interval, stop), name="broker-access-sync"
            )
            try:
                await stop.wait()
                log.info("baetyl-cloud broker stopping")
            finally:
                stop.set()
                await follower
    finally:
        await close_store()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
