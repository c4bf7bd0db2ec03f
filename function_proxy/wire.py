"""HTTP/1.1 as the proxy writes it: the request it sends a runtime and the answer it sends a
caller, each one byte string built in one go (DESIGN §9).

The proxy relays bytes instead of going through a web framework's request and response objects
on both sides: that costs a call three to four times less CPU (docs/benchmarks.md). Parsing is
llhttp's, through httptools; only writing is here, and it writes only what it built itself —
names it chose, and values the parser has already refused CR/LF in.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final
from urllib.parse import quote

INVOKE_ID: Final = "X-Baetyl-Invoke-Id"
"""The header that names one invocation end to end; Baetyl's `invokeid` is read too."""
LEGACY_INVOKE_ID: Final = "invokeid"
JSON: Final = b"application/json"
FORWARDED: Final = (b"content-type", b"accept")
"""The caller's headers a runtime gets (besides the invoke id), lower-cased as parsed."""
_ID_PREFIX: Final = os.urandom(8).hex().encode()
_id_numbers = itertools.count(1)
_REASONS: Final = {status.value: status.phrase.encode() for status in HTTPStatus}


@dataclass(slots=True)
class Call:
    """One request a caller sent the proxy, with its body read in full."""

    method: str
    path: str
    """Percent-encoded, as sent, without the query."""
    query: bytes
    headers: dict[bytes, bytes]
    """Lower-cased names; the first of repeated ones."""
    body: bytes
    keep_alive: bool = True


@dataclass(slots=True)
class Reply:
    """What the proxy answers a call."""

    status: int
    body: bytes
    content_type: bytes | None = None
    invoke_id: bytes | None = None


def invoke_id_of(headers: dict[bytes, bytes]) -> bytes:
    """The call's invoke id: the caller's (ours or Baetyl's header), else a new one — this
    process's random prefix and a counter, unique without a system call per call."""
    given = headers.get(b"x-baetyl-invoke-id") or headers.get(b"invokeid")
    return given if given else b"%s-%d" % (_ID_PREFIX, next(_id_numbers))


def error_body(code: str, message: str) -> bytes:
    """Baetyl's error body, `{"errCode", "message"}`."""
    return json.dumps({"errCode": code, "message": message}).encode()


def error_reply(status: int, code: str, message: str) -> Reply:
    """An error answer in Baetyl's shape."""
    return Reply(status, error_body(code, message), JSON)


def encode_reply(reply: Reply, keep_alive: bool) -> bytes:
    """The answer's bytes: status line, headers, body."""
    lines = [
        b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n"
        % (reply.status, _REASONS.get(reply.status, b"Unknown"), len(reply.body))
    ]
    if reply.content_type:
        lines.append(b"Content-Type: %s\r\n" % reply.content_type)
    if reply.invoke_id:
        lines.append(b"X-Baetyl-Invoke-Id: %s\r\n" % reply.invoke_id)
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    lines.append(reply.body)
    return b"".join(lines)


def encode_request(call: Call, address: str, function: str | None, invoke_id: bytes) -> bytes:
    """The call as a runtime gets it: `METHOD /{function}?{query}` with the forwarded headers,
    the invoke id and the body; always keep-alive (connections to runtimes are pooled)."""
    target = _target(function) if function else b"/"
    if call.query:
        target += b"?" + call.query
    lines = [
        b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nX-Baetyl-Invoke-Id: %s\r\n"
        % (call.method.encode(), target, address.encode(), len(call.body), invoke_id)
    ]
    for name in FORWARDED:
        value = call.headers.get(name)
        if value is not None:
            lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"\r\n")
    lines.append(call.body)
    return b"".join(lines)


@functools.lru_cache(maxsize=1024)
def _target(function: str) -> bytes:
    return b"/" + quote(function, safe="").encode()
