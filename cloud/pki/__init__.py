"""The cloud's certificate authority.

One CA signs the broker's, the cloud replicas' and every node's certificates (DESIGN §10).
"""

from cloud.pki.ca import (
    CertificateAuthority,
    IssuedCertificate,
    PKIError,
    write_certificate_files,
)

__all__ = ["CertificateAuthority", "IssuedCertificate", "PKIError", "write_certificate_files"]
