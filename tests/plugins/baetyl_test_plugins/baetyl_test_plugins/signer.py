"""PKI signer plug-in `test-own-ca`: a CA of its own in `DATA_DIR/test-signer/`, so that the
certificates it signs are told apart from those of the built-in `ca` by their issuer."""

from __future__ import annotations

from cloud.pki.ca import CertificateAuthority
from cloud.settings import CloudSettings

COMMON_NAME = "Baetyl-Py Test Signer CA"


def own_ca(settings: CloudSettings) -> CertificateAuthority:
    """The signer's CA, created on first use and loaded after."""
    directory = settings.data_dir / "test-signer"
    cert, key = directory / "ca.pem", directory / "ca.key"
    if cert.exists():
        return CertificateAuthority.load(cert.read_bytes(), key.read_bytes())
    ca = CertificateAuthority.create(COMMON_NAME)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key.touch(mode=0o600)
    key.write_bytes(ca.key_pem)
    cert.write_bytes(ca.cert_pem)
    return ca
