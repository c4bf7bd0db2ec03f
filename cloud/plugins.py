"""The cloud's plug-in points: authentication, object storage and the PKI signer.

Each is chosen by name (`baetyl-cloud serve --auth/--object-store/--pki-signer`, the
`plugins` settings) among the entry points of its group, built-ins included (setup.cfg), and
made once when the cloud starts (`make_all`). A factory is called with the cloud's settings
(cloud.settings.CloudSettings) and returns an object satisfying the point's Protocol below;
docs/plugins.md is the guide. The protocols hold only what the product calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agent.contracts.kit.plugins import PluginError, PluginPoint
from cloud.objects.store import ObjectInfo
from cloud.services.context import Caller

if TYPE_CHECKING:
    from cloud.settings import CloudSettings

__all__ = [
    "AUTH",
    "OBJECT_STORAGE",
    "PKI_SIGNER",
    "Authenticator",
    "Caller",
    "CloudPlugins",
    "ObjectInfo",
    "ObjectStore",
    "ObjectUpload",
    "PkiSigner",
    "PluginError",
    "make_all",
]


class Authenticator(Protocol):
    """Says who calls a REST route, from the request's headers (every route but the anonymous
    ones: `/health`, `/v1/init/*`, `/v1/active`).

    The cloud then enforces the route's access with the caller's role (`read` tokens cannot
    write) and scopes everything to the caller's namespace, which must therefore come from the
    credential, never from the request's URL or body.
    """

    async def authenticate(self, headers: Mapping[str, str]) -> Caller:
        """The caller (namespace, role `admin` or `read`), or raise
        `cloud.errors.Unauthenticated` (401). `headers` look names up case-insensitively."""
        ...


class ObjectUpload(Protocol):
    """Bytes being stored under a name: `write` them, `finish` stores them, and leaving the
    `with` block without `finish` leaves nothing behind."""

    def write(self, chunk: bytes) -> None:
        """Append bytes (raise `agent.contracts.kit.files.TooLarge` to refuse more)."""
        ...

    def finish(self) -> tuple[ObjectInfo, str | None]:
        """Store the bytes and point the name at them; the object and the SHA-256 of the bytes
        the name pointed at before, if other (the service then sweeps)."""
        ...

    def __enter__(self) -> ObjectUpload: ...

    def __exit__(self, kind: object, value: object, traceback: object) -> None: ...


class ObjectStore(Protocol):
    """Objects per namespace: names (`bucket/object`) pointing at blobs named by SHA-256.

    A blob must stay readable while a configuration pins its digest, even after its name moved
    on: `sweep` is told which digests are pinned. Every method but `blob_location` may block
    (the services call them through `asyncio.to_thread`). Bad bucket or object names raise
    ValueError (a 400), as `agent.contracts.objects.check_bucket`/`check_object_name` do. The
    cloud enforces `--object-max-bytes` on uploads itself.
    """

    def upload(self, namespace: str, bucket: str, name: str) -> ObjectUpload:
        """Start storing bytes under `bucket/name`."""
        ...

    def info(self, namespace: str, bucket: str, name: str) -> ObjectInfo | None:
        """The object named `bucket/name`, or None."""
        ...

    def buckets(self, namespace: str) -> list[str]:
        """The buckets that hold at least one object, sorted."""
        ...

    def objects(self, namespace: str, bucket: str) -> list[ObjectInfo]:
        """The objects of a bucket, sorted by name."""
        ...

    def delete(self, namespace: str, bucket: str, name: str) -> ObjectInfo | None:
        """Remove the name (its blob stays until `sweep`); what it was, or None."""
        ...

    def sweep(self, namespace: str, pinned: set[str]) -> list[str]:
        """Delete the blobs no name and no digest of `pinned` refers to; their digests."""
        ...

    def blob_location(self, namespace: str, sha256: str, ttl: int) -> Path | str:
        """Where the blob's bytes are read: a file on this machine (the cloud sends it, and
        signs its own download URLs for nodes), or a URL the storage serves, valid `ttl`
        seconds. Computed without I/O: it runs on the event loop. ValueError for a malformed
        digest."""
        ...


class PkiSigner(Protocol):
    """Signs the client certificates of nodes (activation, renewal) and lists revocations.

    `cert_pem` is given to nodes as the CA they trust: it must also have signed the broker's
    server certificate. The managed broker's certificate comes from `DATA_DIR/pki`, so a
    signer with a CA of its own goes with an external broker (`--mqtt-url`) that trusts it.
    """

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate (PEM) nodes get with their certificate."""
        ...

    def sign_csr(
        self, csr_pem: bytes, *, expected_common_name: str | None = None, valid_days: int = 365
    ) -> bytes:
        """A clientAuth certificate (PEM) for the CSR's key, with CN `expected_common_name`
        (the nid); ValueError for a CSR it refuses (a 400). Only the key and the CN of a CSR
        may be used: a node must not obtain other names, usages or CA rights."""
        ...

    def crl(self, revoked_serials: Iterable[int]) -> bytes:
        """A CRL (PEM) listing `revoked_serials`, written to `DATA_DIR/pki/crl.pem` for an
        external broker's `crlfile`."""
        ...


AUTH = PluginPoint[Authenticator]("auth", "authentication plug-in", Authenticator, "--auth")
OBJECT_STORAGE = PluginPoint[ObjectStore](
    "object_storage", "object storage plug-in", ObjectStore, "--object-store"
)
PKI_SIGNER = PluginPoint[PkiSigner]("pki_signer", "PKI signer plug-in", PkiSigner, "--pki-signer")


@dataclass(frozen=True)
class CloudPlugins:
    """The cloud's plug-ins, made."""

    auth: Authenticator
    object_store: ObjectStore
    signer: PkiSigner


def make_all(settings: CloudSettings) -> CloudPlugins:
    """Make the plug-ins `settings` choose (blocking: a factory may load keys or build a
    client); PluginError names the one that cannot be used."""
    chosen = settings.plugins
    return CloudPlugins(
        auth=AUTH.make(chosen.auth, settings),
        object_store=OBJECT_STORAGE.make(settings.object_storage, settings),
        signer=PKI_SIGNER.make(chosen.pki_signer, settings),
    )
