"""Authentication plug-ins: `test-header` trusts `X-Test-User: <namespace>:<role>`; `test-sync-auth`
breaks the protocol (its `authenticate` is not `async`), for the refusal at start."""

from __future__ import annotations

from collections.abc import Mapping

from agent.contracts import names
from cloud.errors import Unauthenticated
from cloud.plugins import Caller
from cloud.settings import CloudSettings

HEADER = "X-Test-User"


class HeaderAuth:
    """The caller is who the `X-Test-User` header says: `default:admin`, `tenant-b:read`."""

    def __init__(self, settings: CloudSettings) -> None:
        del settings  # nothing to configure

    async def authenticate(self, headers: Mapping[str, str]) -> Caller:
        value = headers.get(HEADER)
        if value is None:
            raise Unauthenticated(f"send {HEADER}: <namespace>:<role>")
        namespace, _, role = value.partition(":")
        try:
            names.check_namespace(namespace)
        except names.InvalidName as exc:
            raise Unauthenticated(f"{HEADER}: {exc}") from exc
        if role == "admin":
            return Caller(namespace=namespace, role="admin")
        if role == "read":
            return Caller(namespace=namespace, role="read")
        raise Unauthenticated(f"{HEADER}: the role must be admin or read, not {role!r}")


class SyncAuth:
    """Not an authenticator: a plain function where a coroutine function is needed."""

    def __init__(self, settings: CloudSettings) -> None:
        del settings

    def authenticate(self, headers: Mapping[str, str]) -> Caller:
        return Caller(namespace="default", role="admin")
