"""Certificates of the simulated fleet, cached between runs.

A bench CA is made once under the cache directory; every certificate it signs lives in a
directory named after its fingerprint, so a new CA never meets stale leaves. Each node gets one
EC P-256 client certificate (CN = nid) in a single PEM file with its key: 10,000 of them take
seconds to make, and reruns only read them.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloud.pki.ca import CertificateAuthority, IssuedCertificate, write_certificate_files

CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "baetyl-py" / "bench"
# Leaves are valid 365 days; remake them well before, so a cached fleet never fails a handshake.
MAX_AGE_S = 300 * 86400
_CHUNK = 500

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchPKI:
    """Paths of the cached CA, broker, replica and node certificates."""

    ca_file: Path
    """The CA certificate: the broker's `cafile` and what every client trusts."""
    directory: Path
    """`CACHE/<CA fingerprint>/`: every leaf signed by this CA."""

    @property
    def server_cert(self) -> Path:
        """The broker's server certificate (SANs localhost and 127.0.0.1)."""
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        """Its key."""
        return self.directory / "server.key"

    def node_file(self, nid: str) -> Path:
        """Certificate and key of node `nid` in one PEM file."""
        return self.directory / "nodes" / f"{nid}.pem"

    def replica_files(self, replica: str) -> tuple[Path, Path]:
        """Certificate and key of cloud replica `replica` (CN `baetyl-cloud:<replica>`)."""
        return self.directory / f"cloud-{replica}.pem", self.directory / f"cloud-{replica}.key"


def ensure_pki(
    nids: Sequence[str],
    replicas: Sequence[str],
    *,
    cache: Path = CACHE_DIR,
    progress: Progress | None = None,
) -> BenchPKI:
    """Load or make the bench CA and every certificate that is missing or getting old."""
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = _load_or_create_ca(cache)
    fingerprint = hashlib.sha256(ca.cert_pem).hexdigest()[:16]  # of the PEM: stable per CA
    pki = BenchPKI(ca_file=cache / "ca.pem", directory=cache / fingerprint)
    (pki.directory / "nodes").mkdir(parents=True, exist_ok=True, mode=0o700)
    if _stale(pki.server_cert):
        issued = ca.issue_server("localhost", dns_names=("localhost",), ip_addresses=("127.0.0.1",))
        write_certificate_files(pki.directory, "server", issued)
    for replica in replicas:
        cert, _key = pki.replica_files(replica)
        if _stale(cert):
            write_certificate_files(
                pki.directory, f"cloud-{replica}", ca.issue_client(f"baetyl-cloud:{replica}")
            )
    missing = [nid for nid in nids if _stale(pki.node_file(nid))]
    if missing:
        _issue_nodes(ca, pki, missing, progress)
    return pki


def _load_or_create_ca(cache: Path) -> CertificateAuthority:
    cert_file, key_file = cache / "ca.pem", cache / "ca.key"
    if cert_file.exists() and key_file.exists():
        return CertificateAuthority.load(cert_file.read_bytes(), key_file.read_bytes())
    ca = CertificateAuthority.create("Baetyl-Py Bench CA")
    key_file.write_bytes(ca.key_pem)
    key_file.chmod(0o600)
    cert_file.write_bytes(ca.cert_pem)
    return ca


def _stale(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime > MAX_AGE_S
    except FileNotFoundError:
        return True


def _issue_nodes(
    ca: CertificateAuthority, pki: BenchPKI, nids: list[str], progress: Progress | None
) -> None:
    """Sign the node certificates on every core: the key generation dominates."""
    ca_pems = (ca.cert_pem, ca.key_pem)
    chunks = [nids[start : start + _CHUNK] for start in range(0, len(nids), _CHUNK)]
    done = 0
    with concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = [pool.submit(_issue_chunk, ca_pems, pki, chunk) for chunk in chunks]
        for future in concurrent.futures.as_completed(futures):
            done += future.result()
            if progress is not None and (done == len(nids) or done % 2500 < _CHUNK):
                progress(f"node certificates: {done}/{len(nids)} made")


def _issue_chunk(ca_pems: tuple[bytes, bytes], pki: BenchPKI, nids: list[str]) -> int:
    ca = CertificateAuthority.load(*ca_pems)
    for nid in nids:
        _write_node(pki.node_file(nid), ca.issue_client(nid))
    return len(nids)


def _write_node(path: Path, issued: IssuedCertificate) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(issued.cert_pem + issued.key_pem)
    temporary.replace(path)
