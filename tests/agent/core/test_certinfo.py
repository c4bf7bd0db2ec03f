"""The small certificate reader agrees with `cryptography` on CN, serial and validity."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.certinfo import CertificateError, read_der, read_pem

KEY = ec.generate_private_key(ec.SECP256R1())
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def certificate(
    common_names: list[str], serial: int, not_before: datetime.datetime, days: int
) -> x509.Certificate:
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Baetyl-Py")]
        + [x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in common_names]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")]))
        .public_key(KEY.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + datetime.timedelta(days=days))
        .sign(KEY, hashes.SHA256())
    )


@settings(max_examples=40, deadline=None)
@given(
    cn=st.from_regex(r"\A[a-z0-9-]{1,20}\.[a-z0-9-]{1,30}\Z"),
    serial=st.integers(1, 2**159 - 1),
    # Both UTCTime (before 2050) and GeneralizedTime (from 2050) validity encodings.
    start=st.integers(0, 3_000_000_000),
    days=st.integers(1, 20_000),
)
def test_it_reads_what_cryptography_reads(cn: str, serial: int, start: int, days: int) -> None:
    made = certificate([cn], serial, EPOCH + datetime.timedelta(seconds=start), days)
    info = read_pem(made.public_bytes(serialization.Encoding.PEM))
    assert info.common_names == (cn,)
    assert info.serial == made.serial_number
    assert info.not_before == made.not_valid_before_utc.timestamp()
    assert info.not_after == made.not_valid_after_utc.timestamp()


def test_several_or_no_common_names_are_all_returned() -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    two = certificate(["a.b", "c.d"], 7, now, 1).public_bytes(serialization.Encoding.PEM)
    none = certificate([], 7, now, 1).public_bytes(serialization.Encoding.PEM)
    assert read_pem(two).common_names == ("a.b", "c.d")
    assert read_pem(none).common_names == ()


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    ],
)
def test_garbage_is_a_clear_error(pem: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - CertificateError is a ValueError
        read_pem(pem)


def test_truncated_der_is_a_certificate_error() -> None:
    der = certificate(["a.b"], 1, EPOCH, 1).public_bytes(serialization.Encoding.DER)
    for cut in (1, 10, len(der) // 2, len(der) - 1):
        with pytest.raises(CertificateError):
            read_der(der[:cut])
