"""The local cluster's certificates: one CA, the API server's serving certificate, a client
certificate for each component (Kubernetes reads user and groups from CN and O) and the service
account signing key. Made with the product's own CA (`cloud.pki.ca`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agent.contracts.kit import files
from cloud.pki.ca import CertificateAuthority, write_certificate_files
from tools.kube.layout import NODE_NAME, SERVICE_IP, ClusterLayout

# name of the files -> (CN, groups): who each client is to the API server's RBAC.
CLIENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("baetyl-kube-admin", ("system:masters",)),
    "controller-manager": ("system:kube-controller-manager", ()),
    "scheduler": ("system:kube-scheduler", ()),
    "kubelet": (f"system:node:{NODE_NAME}", ("system:nodes",)),
    # Bound to system:node-proxier by the API server's bootstrap policy.
    "kube-proxy": ("system:kube-proxy", ()),
    # The API server's identity toward the kubelet (logs, exec).
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", ("system:masters",)),
}
APISERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class Pair:
    """A certificate and its key."""

    cert: Path
    key: Path


def ca_file(layout: ClusterLayout) -> Path:
    """The CA certificate every component trusts."""
    return layout.pki / "ca.pem"


def client(layout: ClusterLayout, name: str) -> Pair:
    """The client pair `name` of CLIENTS."""
    return Pair(layout.pki / f"{name}.pem", layout.pki / f"{name}.key")


def serving(layout: ClusterLayout, name: str) -> Pair:
    """A serving pair: `apiserver` or `kubelet-serving`."""
    return Pair(layout.pki / f"{name}.pem", layout.pki / f"{name}.key")


def service_account_keys(layout: ClusterLayout) -> Pair:
    """The service account token signing key (`key`) and its public half (`cert`)."""
    return Pair(layout.pki / "sa.pub", layout.pki / "sa.key")


def make_all(layout: ClusterLayout, node_ip: str) -> None:
    """Write a fresh PKI into the layout's `pki/` (an existing one is kept: `up` after `down`
    reuses it, and kubeconfigs handed out stay valid)."""
    if ca_file(layout).exists():
        return
    layout.pki.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create("baetyl-py local kube CA")
    for name, (common_name, groups) in CLIENTS.items():
        write_certificate_files(
            layout.pki, name, ca.issue_client(common_name, organizations=groups)
        )
    write_certificate_files(
        layout.pki,
        "apiserver",
        ca.issue_server(
            "kube-apiserver",
            dns_names=APISERVER_NAMES,
            ip_addresses=("127.0.0.1", SERVICE_IP, node_ip),
        ),
    )
    write_certificate_files(
        layout.pki,
        "kubelet-serving",
        ca.issue_server(NODE_NAME, dns_names=(NODE_NAME,), ip_addresses=(node_ip, "127.0.0.1")),
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = service_account_keys(layout)
    files.atomic_write(
        keys.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    files.atomic_write(
        keys.cert,
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        mode=0o644,
    )
    # Written last: its presence says the PKI is complete.
    files.atomic_write(ca_file(layout), ca.cert_pem, mode=0o644)
