"""Certificate renewal over MQTT (`cert/renew`, DESIGN §10): sign a node's fresh CSR for itself.

The node is the one of the topic (the broker ACL lets a node write only under its own prefix),
so the CSR's CN must be that node's nid: a node renews its own certificate and nobody else's.
Signing and recording go through cloud.services.node_certs, like activation, with the same
configured validity (`--node-cert-days`).
"""

from __future__ import annotations

from agent.contracts import names
from cloud.services import node_certs
from cloud.services.context import CloudContext
from cloud.services.node_certs import IssuedNodeCert


async def renew(ctx: CloudContext, namespace: str, name: str, csr_pem: str) -> IssuedNodeCert:
    """Sign `csr_pem` (CN must be `namespace.name`) and record the certificate.

    Raises NotFound for an unknown (or deleted) node and Invalid for a CSR that is malformed,
    badly signed, has a weak key or names another CN; nothing is recorded then.
    """
    nid = names.make_nid(namespace, name)
    return await node_certs.issue(ctx, namespace, name, csr_pem.encode(), expected_cn=nid)
