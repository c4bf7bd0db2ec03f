"""Install tokens: signed, bound to one node, expiring; anything else is refused with a reason."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Callable

import pytest

from cloud.installer import tokens
from cloud.installer.tokens import TokenClaims, TokenError

KEY = b"k" * 32
NOW = 1_800_000_000.0


def claims() -> TokenClaims:
    return TokenClaims(namespace="default", name="edge-1", expires=int(NOW) + 3600, jti="a" * 32)


def forged(payload: object, key: bytes = KEY) -> str:
    """A correctly signed token around any payload (to reach the checks after the MAC)."""
    raw = json.dumps(payload).encode()
    head = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    mac = tokens._mac(key, head)
    return f"{head}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_a_signed_token_gives_back_its_claims() -> None:
    fresh = tokens.new_claims("tenant-a", "edge-9", now=NOW, ttl=3600)
    token = tokens.sign(KEY, fresh)
    assert tokens.verify(KEY, token, now=NOW + 3599) == fresh
    assert fresh.nid == "tenant-a.edge-9"
    assert fresh.expires == int(NOW) + 3600
    assert len(fresh.jti) == 32
    assert tokens.new_claims("tenant-a", "edge-9", now=NOW, ttl=3600).jti != fresh.jti
    # URL-safe as it is: it goes into query strings and shell words unescaped.
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_an_expired_token_is_refused_saying_so() -> None:
    token = tokens.sign(KEY, claims())
    with pytest.raises(TokenError, match=r"expired 0 s ago.*GET /v1/nodes/edge-1/init"):
        tokens.verify(KEY, token, now=NOW + 3600)
    with pytest.raises(TokenError, match=r"expired 2\.0 h ago"):
        tokens.verify(KEY, token, now=NOW + 3 * 3600)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace("eyJ", "eyK", 1),  # a changed claim
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # a changed signature
        lambda t: forged({"e": 1, "jti": "x", "n": "other", "ns": "default"}, b"x" * 32),
        lambda t: t.split(".")[0] + "." + forged({"n": "a"}).split(".")[1],  # mixed halves
    ],
)
def test_a_tampered_token_is_refused(change: Callable[[str], str]) -> None:
    token = tokens.sign(KEY, claims())
    with pytest.raises(TokenError, match="not issued by this cloud or was altered"):
        tokens.verify(KEY, change(token), now=NOW)


def test_another_key_refuses_the_token() -> None:
    # Another cloud (another secret.key) cannot accept this cloud's tokens.
    with pytest.raises(TokenError, match="signature does not match"):
        tokens.verify(b"o" * 32, tokens.sign(KEY, claims()), now=NOW)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "malformed"),
        ("x" * 5000, "too long"),
        ("nodot", "two parts"),
        (".sig", "two parts"),
        ("head.", "two parts"),
        ("héad.sig", "not ASCII"),
        (forged("a string"), "not an object"),
        (forged({"ns": "default", "n": "edge-1", "e": 1}), "missing or mistyped"),
        (forged({"ns": "default", "n": "edge-1", "e": "soon", "jti": "x"}), "mistyped"),
        (forged({"ns": "default", "n": "edge-1", "e": True, "jti": "x"}), "mistyped"),
        (forged({"ns": "Bad_NS", "n": "edge-1", "e": 2**40, "jti": "x"}), "namespace"),
        (forged({"ns": "default", "n": "../etc", "e": 2**40, "jti": "x"}), "node name"),
    ],
)
def test_a_malformed_token_is_refused_with_the_reason(token: str, reason: str) -> None:
    with pytest.raises(TokenError, match=reason):
        tokens.verify(KEY, token, now=NOW)


def test_a_token_names_the_node_instance_it_was_issued_for() -> None:
    """A node re-created under the same name is another instance (decision #75)."""
    first = datetime.datetime(2026, 1, 1, 12, 0, 0, 1, tzinfo=datetime.UTC)
    again = first + datetime.timedelta(microseconds=1)
    assert tokens.instance_of(first) != tokens.instance_of(again)
    fresh = tokens.new_claims(
        "default", "edge-1", now=NOW, ttl=60, instance=tokens.instance_of(first)
    )
    assert tokens.verify(KEY, tokens.sign(KEY, fresh), now=NOW).instance == tokens.instance_of(
        first
    )
    # A token without the claim (made before it existed) binds to no instance at all.
    old = forged({"e": int(NOW) + 60, "jti": "x", "n": "edge-1", "ns": "default"})
    assert tokens.verify(KEY, old, now=NOW).instance == 0
