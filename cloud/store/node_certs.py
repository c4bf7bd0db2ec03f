"""Queries over the node certificates the cloud signed and the install tokens already used."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError

from cloud.store.models import ConsumedInstallToken, NodeCertificate


@dataclass(frozen=True)
class CertificateRecord:
    """One signed node certificate, detached from the ORM."""

    namespace: str
    name: str
    serial: str
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None
    create_time: datetime


async def record(
    *, namespace: str, name: str, serial: str, not_before: datetime, not_after: datetime
) -> None:
    """Store a certificate just signed (serials are random 159-bit numbers, so never reused)."""
    await NodeCertificate.create(
        namespace=namespace, name=name, serial=serial, not_before=not_before, not_after=not_after
    )


async def of_node(namespace: str, name: str) -> list[CertificateRecord]:
    """The node's certificates, oldest first (revoked ones included)."""
    rows = await NodeCertificate.filter(namespace=namespace, name=name).order_by("id")
    return [
        CertificateRecord(
            namespace=row.namespace,
            name=row.name,
            serial=row.serial,
            not_before=row.not_before,
            not_after=row.not_after,
            revoked_at=row.revoked_at,
            create_time=row.create_time,
        )
        for row in rows
    ]


async def revoke(namespace: str, names: Iterable[str]) -> int:
    """Stamp `revoked_at` on the not yet revoked certificates of these nodes; how many."""
    wanted = list(names)
    if not wanted:
        return 0
    return int(
        await NodeCertificate.filter(
            namespace=namespace, name__in=wanted, revoked_at__isnull=True
        ).update(revoked_at=datetime.now(UTC))
    )


async def revoked_serials(now: datetime) -> list[int]:
    """Serials of the revoked certificates that have not expired yet (what a CRL must list)."""
    rows = await NodeCertificate.filter(revoked_at__isnull=False, not_after__gt=now).values_list(
        "serial", flat=True
    )
    return sorted(int(str(serial), 16) for serial in rows)


async def token_consumed(jti: str) -> bool:
    """Whether an install token with this id already activated a node."""
    return await ConsumedInstallToken.filter(jti=jti).exists()


async def consume_token(*, jti: str, namespace: str, name: str, expires_at: datetime) -> bool:
    """Mark an install token used; False when it already was (a concurrent activation won).

    The primary key decides between two concurrent activations with the same token: only one
    INSERT succeeds, so the loser's transaction is rolled back by its caller.
    """
    try:
        await ConsumedInstallToken.create(
            jti=jti, namespace=namespace, name=name, expires_at=expires_at
        )
    except IntegrityError:
        return False
    return True


async def purge_consumed(before: datetime) -> int:
    """Forget used tokens that expired before `before` (they are refused as expired anyway)."""
    return int(await ConsumedInstallToken.filter(expires_at__lt=before).delete())
