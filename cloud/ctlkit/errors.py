"""The one error type of `baetylctl`: everything that ends a command with exit status 1."""

from __future__ import annotations


class CtlError(Exception):
    """A failure the user can act on; `str()` is the message printed after `error: `."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(CtlError):
    """The server refused the request; it keeps the server's code, message and request id."""

    def __init__(self, status: int, code: str, message: str, request_id: str) -> None:
        suffix = f"{code}, request {request_id}" if request_id else code
        super().__init__(f"{message} ({suffix})")
        self.status = status
        self.code = code
        self.server_message = message
        self.request_id = request_id

    @property
    def not_found(self) -> bool:
        """True when the named resource is absent (not when the route itself is unknown)."""
        return self.status == 404 and self.code == "ErrResourceNotFound"


class UsageError(CtlError):
    """The command line is wrong in a way argparse cannot see; exit status 2, like argparse."""
