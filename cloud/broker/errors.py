"""The managed broker's one error type, shared by its modules (and re-exported by `managed`)."""

from __future__ import annotations


class BrokerError(RuntimeError):
    """The managed broker cannot be prepared, started or reloaded; the message says why."""
