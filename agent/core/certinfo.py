"""The few facts the agent reads from its certificate at start: CN, serial and validity.

A small DER reader instead of `cryptography`, because importing `cryptography.x509` costs the
agent about 8 MB of resident memory on every start, while the key and CSR work that really needs
it happens only when a renewal is due (DESIGN §8's small footprint; docs/performance-notes.md).
Only the fields named here are read; nothing is verified — the TLS stack does that when
connecting.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from dataclasses import dataclass
from typing import Final

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL)
_SEQUENCE: Final = 0x30
_SET: Final = 0x31
_INTEGER: Final = 0x02
_OID: Final = 0x06
_UTC_TIME: Final = 0x17
_GENERALIZED_TIME: Final = 0x18
_VERSION_TAG: Final = 0xA0
_COMMON_NAME_OID: Final = bytes([0x55, 0x04, 0x03])  # 2.5.4.3
_TEXT: Final = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1"}
_WIDE_TEXT: Final = {0x1E: "utf-16-be", 0x1C: "utf-32-be"}


class CertificateError(ValueError):
    """Not a PEM certificate this reader understands."""


@dataclass(frozen=True)
class CertInfo:
    """Subject common names, serial number and validity (epoch seconds) of a certificate."""

    common_names: tuple[str, ...]
    serial: int
    not_before: float
    not_after: float


def read_pem(pem: bytes) -> CertInfo:
    """The facts of the first certificate in `pem`, or CertificateError."""
    match = _PEM.search(pem)
    if match is None:
        raise CertificateError("no PEM certificate found")
    try:
        der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CertificateError(f"the PEM body is not base64: {exc}") from exc
    return read_der(der)


def read_der(der: bytes) -> CertInfo:
    """The facts of a DER certificate, or CertificateError."""
    try:
        certificate = _expect(der, 0, _SEQUENCE)[0]
        tbs = _expect(certificate, 0, _SEQUENCE)[0]
        tag, value, pos = _element(tbs, 0)
        if tag == _VERSION_TAG:
            tag, value, pos = _element(tbs, pos)
        if tag != _INTEGER:
            raise CertificateError("the serial number is missing")
        serial = int.from_bytes(value, "big", signed=True)
        pos = _element(tbs, pos)[2]  # signature algorithm
        pos = _element(tbs, pos)[2]  # issuer
        validity, pos = _expect(tbs, pos, _SEQUENCE)
        before_tag, before, after_pos = _element(validity, 0)
        after_tag, after, _ = _element(validity, after_pos)
        subject = _expect(tbs, pos, _SEQUENCE)[0]
        return CertInfo(
            common_names=tuple(_common_names(subject)),
            serial=serial,
            not_before=_time(before_tag, before),
            not_after=_time(after_tag, after),
        )
    except IndexError:
        raise CertificateError("the certificate is truncated") from None


def _element(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, value, position after it) of the DER element at `pos`."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise CertificateError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise CertificateError("the certificate is truncated")
    return tag, data[pos:end], end


def _expect(data: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    found, value, end = _element(data, pos)
    if found != tag:
        raise CertificateError(f"expected DER tag {tag:#x}, found {found:#x}")
    return value, end


def _common_names(name: bytes) -> list[str]:
    found = []
    pos = 0
    while pos < len(name):
        relative, pos = _expect(name, pos, _SET)
        inner = 0
        while inner < len(relative):
            attribute, inner = _expect(relative, inner, _SEQUENCE)
            oid, value_pos = _expect(attribute, 0, _OID)
            if oid == _COMMON_NAME_OID:
                tag, value, _ = _element(attribute, value_pos)
                found.append(_text(tag, value))
    return found


def _text(tag: int, value: bytes) -> str:
    encoding = _TEXT.get(tag) or _WIDE_TEXT.get(tag)
    if encoding is None:
        raise CertificateError(f"unsupported string type {tag:#x} in the subject")
    return value.decode(encoding, errors="replace")


def _time(tag: int, value: bytes) -> float:
    text = value.decode("ascii", errors="replace")
    if tag == _UTC_TIME:
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != _GENERALIZED_TIME:
        raise CertificateError(f"unsupported time type {tag:#x}")
    if not text.endswith("Z") or len(text) != 15:
        raise CertificateError(f"unsupported time {value!r}")
    moment = datetime.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=datetime.UTC)
    return moment.timestamp()
