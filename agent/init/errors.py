"""What can stop `baetyl-init`, each with its exit code and a message that says what to do.

The command line prints the message and exits with the code; no traceback reaches the user.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit codes of baetyl-init (also listed in docs/install.md)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    TOKEN_REFUSED = 3
    CLOUD_UNREACHABLE = 4
    CLOCK_SKEW = 5
    ALREADY_ACTIVATED = 6
    NOT_ONLINE = 7


class InitError(Exception):
    """A failure that ends baetyl-init; `str()` is the message for the user."""

    exit_code = ExitCode.FAILED


class TokenRefused(InitError):
    """The cloud refused the install token (tampered, expired, already used)."""

    exit_code = ExitCode.TOKEN_REFUSED


class CloudUnreachable(InitError):
    """No HTTP answer from the cloud: connection refused, unknown host, timeout, TLS failure."""

    exit_code = ExitCode.CLOUD_UNREACHABLE


class ClockSkew(InitError):
    """This machine's clock is too far from the cloud's for certificates to work."""

    exit_code = ExitCode.CLOCK_SKEW


class AlreadyActivated(InitError):
    """The prefix already holds another node's installation."""

    exit_code = ExitCode.ALREADY_ACTIVATED


class NotOnline(InitError):
    """baetyl-core did not start, or did not reach the cloud in time."""

    exit_code = ExitCode.NOT_ONLINE
