"""Encryption of secret data at rest: AES-256-GCM with a key file in the cloud data directory.

Each sealed value is bound to its row (`namespace/name` as associated data), so a ciphertext copied
onto another secret does not decrypt.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.contracts.kit import files

KEY_BYTES = 32
NONCE_BYTES = 12


class SecretBoxError(ValueError):
    """A key file or sealed value that cannot be used."""


class SecretBox:
    """Seals and opens secret data (a map of strings) with one AES-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SecretBoxError(f"the secret key must be {KEY_BYTES} bytes, got {len(key)}")
        self._key = key
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, path: Path) -> SecretBox:
        """Read the key file, or create it (mode 0600) on first start."""
        if not path.exists():
            files.atomic_write(path, secrets.token_bytes(KEY_BYTES), mode=0o600)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SecretBoxError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
        return cls(path.read_bytes())

    def derive_key(self, info: bytes, *, length: int = KEY_BYTES) -> bytes:
        """A key for another purpose, derived from this one with HKDF-SHA256 and `info`.

        Replicas share `secret.key` already (sealed secrets need it), so keys derived from it are
        shared too without another file to copy; a distinct `info` per purpose keeps them apart.
        """
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(
            self._key
        )

    def seal(self, data: dict[str, str], *, bound_to: str) -> str:
        """Encrypt `data`; the result is ASCII text safe for any database column."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        plain = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        sealed = self._aead.encrypt(nonce, plain, bound_to.encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, *, bound_to: str) -> dict[str, str]:
        """Decrypt what `seal` made for the same `bound_to`."""
        try:
            raw = base64.b64decode(sealed, validate=True)
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], bound_to.encode())
        except (ValueError, InvalidTag) as exc:
            raise SecretBoxError(f"cannot decrypt the secret data of {bound_to}") from exc
        value = json.loads(plain)
        if not isinstance(value, dict):
            raise SecretBoxError(f"the secret data of {bound_to} is not an object")
        return {str(k): str(v) for k, v in value.items()}
