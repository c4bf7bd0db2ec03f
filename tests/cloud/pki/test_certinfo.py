"""Reading uploaded certificates: the facts shown, canonical PEM, and key/certificate matching."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes

from cloud.pki.certinfo import CertificateError, read_certificate
from tests.cloud.pki.selfsigned import KeyType, key_text, make_pair, new_key


@pytest.mark.parametrize(
    ("key_type", "algorithm"),
    [("ec", "ECDSA-SHA256"), ("rsa", "SHA256-RSA"), ("ed25519", "Ed25519")],
)
def test_facts_of_a_certificate_use_baetyl_names(key_type: KeyType, algorithm: str) -> None:
    pair = make_pair("svc.example.test", key_type=key_type, serial=123456789)
    info = read_certificate(pair.cert_pem)
    digest = pair.cert.fingerprint(hashes.SHA256()).hex().upper()
    assert info.fields() == {
        "signatureAlgorithm": algorithm,
        "effectiveTime": "2024-01-02T03:04:05Z",
        "expiredTime": "2034-01-02T03:04:05Z",
        "serialNumber": "123456789",
        "issuer": "svc.example.test",
        "fingerPrint": ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
    }
    assert info.check_key(pair.key_pem) == pair.key_pem


def test_issuer_is_the_signing_ca_and_the_chain_is_kept() -> None:
    ca = make_pair("Test Root CA", key_type="rsa")
    leaf = make_pair("leaf.example.test", issuer=ca)
    info = read_certificate("some text before\n" + leaf.cert_pem + ca.cert_pem)
    assert info.issuer == "Test Root CA"
    assert info.pem == leaf.cert_pem + ca.cert_pem  # canonical: stray text dropped
    assert info.check_key(leaf.key_pem)
    with pytest.raises(CertificateError, match="does not match"):
        info.check_key(ca.key_pem)  # the chain's CA key is not the leaf's key


def test_an_ec_key_with_its_parameters_block_is_accepted() -> None:
    pair = make_pair()
    with_params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    assert read_certificate(pair.cert_pem).check_key(with_params + pair.key_pem) == pair.key_pem


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no PEM block"),
        ("not a certificate", "no PEM block"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a valid X.509"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n", "not terminated"),
    ],
)
def test_bad_certificates_are_refused_naming_the_field(text: str, fragment: str) -> None:
    with pytest.raises(CertificateError, match=fragment) as caught:
        read_certificate(text)
    assert str(caught.value).startswith("certificate: ")


def test_a_private_key_in_the_certificate_field_is_refused() -> None:
    pair = make_pair()
    with pytest.raises(CertificateError, match="only CERTIFICATE PEM blocks") as caught:
        read_certificate(pair.cert_pem + pair.key_pem)
    assert "PRIVATE KEY" in str(caught.value)
    assert pair.key_pem.splitlines()[1] not in str(caught.value)


@pytest.mark.parametrize(
    ("make_key", "fragment"),
    [
        (lambda: "", "exactly one PEM private key"),
        (lambda: key_text(new_key()), "does not match"),
        (lambda: key_text(new_key("rsa")), "does not match"),
        (lambda: key_text(new_key(), password=b"pw"), "encrypted private keys"),
        (lambda: key_text(new_key()) + key_text(new_key()), "exactly one"),
        (lambda: make_pair().cert_pem, "only one PEM private key"),
        (lambda: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a usable"),
    ],
)
def test_keys_that_do_not_belong_to_the_certificate_are_refused(
    make_key: object, fragment: str
) -> None:
    info = read_certificate(make_pair().cert_pem)
    assert callable(make_key)
    with pytest.raises(CertificateError, match=fragment) as caught:
        info.check_key(make_key())
    assert str(caught.value).startswith("key: ")


def test_the_leaf_is_not_in_the_repr() -> None:
    info = read_certificate(make_pair().cert_pem)
    assert "_leaf" not in repr(info)
