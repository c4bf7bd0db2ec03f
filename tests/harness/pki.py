"""Certificates for tests: a CA like the cloud's, a loopback server cert and client certs."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from cloud.pki.ca import CertificateAuthority, IssuedCertificate, write_certificate_files

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class CertFiles:
    """A certificate and its key on disk, with the CN they carry."""

    common_name: str
    cert_file: Path
    key_file: Path


class HarnessPKI:
    """A throwaway PKI in `directory`: a CA, a loopback server cert and cached client certs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = CertificateAuthority.create("Baetyl-Py Test CA")
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.ca.cert_pem)
        self.server = self._write(
            "server",
            self.ca.issue_server(
                "localhost", dns_names=("localhost",), ip_addresses=("127.0.0.1",)
            ),
        )
        self._foreign_ca: CertificateAuthority | None = None
        self._cache: dict[str, CertFiles] = {}

    def node(self, nid: str) -> CertFiles:
        """Client certificate of node `nid` (CN = nid), made once per session."""
        return self._client(f"node-{nid}", nid, foreign=False)

    def cloud(self, replica: str = "r1") -> CertFiles:
        """Client certificate of cloud replica `replica` (CN `baetyl-cloud:<replica>`)."""
        return self._client(f"cloud-{replica}", f"baetyl-cloud:{replica}", foreign=False)

    def foreign(self, common_name: str) -> CertFiles:
        """Client certificate with CN `common_name` from an unrelated CA the broker distrusts."""
        return self._client(f"foreign-{common_name}", common_name, foreign=True)

    def ssl_context(self, cert: CertFiles | None) -> ssl.SSLContext:
        """Client TLS context that trusts our CA and presents `cert` if given."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        if cert is not None:
            context.load_cert_chain(cert.cert_file, cert.key_file)
        return context

    def _client(self, file_name: str, common_name: str, *, foreign: bool) -> CertFiles:
        file_name = _UNSAFE_FILE_CHARS.sub("_", file_name)
        cached = self._cache.get(file_name)
        if cached is not None:
            if cached.common_name != common_name:
                raise ValueError(f"{common_name!r} collides with {cached.common_name!r} on disk")
            return cached
        ca = self._foreign() if foreign else self.ca
        files = self._write(file_name, ca.issue_client(common_name))
        self._cache[file_name] = files
        return files

    def _foreign(self) -> CertificateAuthority:
        if self._foreign_ca is None:
            # Same CN as ours on purpose: only the key and signature may make the difference.
            self._foreign_ca = CertificateAuthority.create("Baetyl-Py Test CA")
        return self._foreign_ca

    def _write(self, name: str, issued: IssuedCertificate) -> CertFiles:
        cert_file, key_file = write_certificate_files(self.directory, name, issued)
        return CertFiles(issued.common_name, cert_file, key_file)
