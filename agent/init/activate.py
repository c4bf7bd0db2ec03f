"""The activation exchange with the cloud over HTTP (agent.contracts.activation).

Plain `urllib` and blocking calls: baetyl-init is a short-lived command with nothing else to do
meanwhile, and the node needs no HTTP library beyond the standard one for it. Every failure
becomes an InitError that tells the user what to do.
"""

from __future__ import annotations

import email.utils
import json
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, TypeVar

from agent.contracts.activation import ActivateRequest, ActivateResponse, ActivationInfo
from agent.contracts.wire import PayloadError, WireModel
from agent.init.errors import ClockSkew, CloudUnreachable, InitError, TokenRefused

MAX_CLOCK_SKEW = 300.0
"""Seconds this machine's clock may differ from the cloud's (certificates need agreeing clocks)."""
TIMEOUT = 30.0
_MAX_ANSWER = 1024 * 1024
ModelT = TypeVar("ModelT", bound=WireModel)


@dataclass(frozen=True)
class Answer:
    """An answer's body and the cloud's clock when it sent it (epoch seconds, None if unknown)."""

    body: bytes
    server_time: float | None


class CloudClient:
    """Calls `GET /v1/active` and `POST /v1/active` on the cloud at `base_url`."""

    def __init__(self, base_url: str, *, timeout: float = TIMEOUT) -> None:
        """`base_url` is the cloud address of the install command (`http(s)://host:port`)."""
        self._base = base_url.rstrip("/")
        self._timeout = timeout

    def info(self, token: str) -> tuple[ActivationInfo, float | None]:
        """Which node the token activates, and the cloud's clock (for the skew check)."""
        query = urllib.parse.urlencode({"token": token})
        answer = self._call("GET", f"/v1/active?{query}", None)
        return _decode(ActivationInfo, answer.body), answer.server_time

    def activate(self, token: str, csr: str) -> ActivateResponse:
        """Send the CSR; the answer holds the certificate, the CA and the broker address."""
        body = ActivateRequest(token=token, csr=csr).to_bytes()
        return _decode(ActivateResponse, self._call("POST", "/v1/active", body).body)

    def _call(self, method: str, path: str, body: bytes | None) -> Answer:
        request = urllib.request.Request(  # noqa: S310 - the scheme was checked by the CLI
            self._base + path,
            data=body,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                data = response.read(_MAX_ANSWER)
                return Answer(data, _server_time(response.headers.get("Date")))
        except urllib.error.HTTPError as exc:
            raise _refusal(exc, self._base) from None
        except (urllib.error.URLError, OSError) as exc:
            raise CloudUnreachable(_unreachable(self._base, exc)) from None


def check_clock(server_time: float | None, *, now: float | None = None) -> None:
    """ClockSkew when this machine's clock is more than MAX_CLOCK_SKEW off the cloud's."""
    if server_time is None:
        return
    skew = (time.time() if now is None else now) - server_time
    if abs(skew) > MAX_CLOCK_SKEW:
        direction = "ahead of" if skew > 0 else "behind"
        raise ClockSkew(
            f"this machine's clock is {abs(skew) / 60:.0f} min {direction} the cloud's; "
            "certificates would be refused as not yet valid or expired. Fix the clock "
            "(for example `timedatectl set-ntp true`, or `date -s`) and run the command again"
        )


def _decode(model: type[ModelT], body: bytes) -> ModelT:
    try:
        return model.decode(body)
    except PayloadError as exc:
        raise InitError(
            f"the cloud's answer is not what this baetyl-init expects ({exc}); "
            "are the cloud and the agent of the same release?"
        ) from None


def _refusal(exc: urllib.error.HTTPError, base: str) -> InitError:
    code, message = _error_body(exc)
    if code == "ErrInvalidToken":
        hint = "" if "install command" in message else "; get a new install command"
        return TokenRefused(f"the cloud refused the install token: {message}{hint}")
    if exc.code == 404 and code == "ErrResourceNotFound":
        return InitError(
            f"the cloud does not know this node: {message} It may have been deleted; "
            "create it again and get a new install command"
        )
    if exc.code == 404:
        return CloudUnreachable(
            f"{base} answered 404 for the activation route: is --cloud the address of a "
            "Baetyl-Py cloud (the one in the install command)?"
        )
    if exc.code >= 500:
        return InitError(f"the cloud at {base} failed ({exc.code} {code}): {message}")
    return InitError(f"the cloud refused the activation ({exc.code} {code}): {message}")


def _error_body(exc: urllib.error.HTTPError) -> tuple[str, str]:
    try:
        data: Any = json.loads(exc.read(_MAX_ANSWER))
    except (ValueError, OSError):
        return "", exc.reason if isinstance(exc.reason, str) else str(exc.reason)
    if not isinstance(data, dict):
        return "", str(data)[:200]
    return str(data.get("code", "")), str(data.get("message", ""))


def _unreachable(base: str, exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.gaierror):
        what = f"its host name does not resolve ({reason.strerror})"
    elif isinstance(reason, ConnectionRefusedError):
        what = "the connection was refused (nothing listens there)"
    elif isinstance(reason, TimeoutError):
        what = "it did not answer in time"
    elif isinstance(reason, ssl.SSLError):
        what = f"TLS failed ({reason})"
    else:
        what = str(reason)
    return (
        f"cannot reach the cloud at {base}: {what}. Check the address in the install command, "
        "this machine's network and DNS, and firewalls between here and the cloud"
    )


def _server_time(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None
