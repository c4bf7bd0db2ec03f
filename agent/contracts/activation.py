"""The activation exchange of `baetyl-init` with the cloud (REST, DESIGN §10, issue 6).

1. `GET /v1/active?token=T` → `ActivationInfo`: which node the install token is for (the token is
   checked, not consumed), so the node can put its nid in the CSR.
2. `POST /v1/active` with `ActivateRequest` → `ActivateResponse`: the cloud checks the token
   (HMAC, expiry, single use), signs the CSR (CN must be the nid), consumes the token.

The node's private key is generated on the node and never sent.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from agent.contracts.resources import Name, Namespace
from agent.contracts.wire import WireModel

Token = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
Pem = Annotated[str, StringConstraints(min_length=1, max_length=16 * 1024)]


class ActivationInfo(WireModel):
    """The node an install token activates, and until when (epoch seconds)."""

    namespace: Namespace
    name: Name
    nid: str
    expires: float


class ActivateRequest(WireModel):
    """The install token and the node's CSR (PEM, CN = nid)."""

    token: Token
    csr: Pem


class ActivateResponse(WireModel):
    """What the node needs to connect: its certificate, the CA, and where the broker is.

    `mqtt` is the `mqtts://host:port` nodes dial; `certificate` is valid for `validDays` days and
    is renewed over MQTT (`cert/renew`) once two thirds of that time has passed.
    """

    nid: str
    namespace: Namespace
    name: Name
    certificate: Pem
    ca: Pem
    mqtt: str
    valid_days: int
