"""The cloud's shared-subscription group: a secret derived from `secret.key` (decision #73).

Mosquitto never checks SUBSCRIBE against its ACL, so any node that knows the group name can join
`$share/<group>/baetyl/v1/+/shadow/get`, be handed its turn of every tenant's requests and drop
them. The name is therefore not configurable and not fixed: it is derived from the deployment's
`secret.key` with HKDF, so every replica (they share `secret.key`) joins the same group, and no
node, which never sees the key, can guess it.
"""

from __future__ import annotations

from typing import Final

from cloud.secretbox import SecretBox

HKDF_INFO: Final = b"baetyl mqtt share group"
"""The HKDF `info` that derives the group name from `secret.key`."""
GROUP_BYTES: Final = 16
"""128 bits: not guessable, short enough for every topic filter."""


def share_group(secrets: SecretBox) -> str:
    """The `$share/<group>/…` name of this deployment: `g` and 32 hex digits."""
    return "g" + secrets.derive_key(HKDF_INFO, length=GROUP_BYTES).hex()
