"""A real baetyl-cloud REST server in the test's event loop, and a small client for it.

The server is the production `create_app` on a free loopback port (aiohttp AppRunner), talked to
over real HTTP. The database is SQLite in a temp dir, or PostgreSQL when BAETYL_TEST_DB=postgres
(one backend per process: Tortoise cannot mix them, so the PostgreSQL run is its own pytest run).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from cloud.api.app import create_app
from cloud.api.keys import BRIDGE
from cloud.pki.ca import CertificateAuthority
from cloud.services import tokens
from cloud.services.context import AccessListener
from cloud.settings import (
    CloudSettings,
    InstallSettings,
    MqttSettings,
    ObjectSettings,
    PluginSettings,
    QuotaDefaults,
)
from cloud.store.desired import DesiredChanges
from tests.harness import migrated
from tests.harness.common import free_port

TEST_DB_ENV = "BAETYL_TEST_DB"
MQTT_CONNECT_TIMEOUT = 10.0


def backend() -> str:
    """`sqlite` (default) or `postgres`, from BAETYL_TEST_DB."""
    value = os.environ.get(TEST_DB_ENV, "sqlite")
    if value not in {"sqlite", "postgres"}:
        raise RuntimeError(f"{TEST_DB_ENV} must be 'sqlite' or 'postgres', not {value!r}")
    return value


@dataclass
class Reply:
    """One HTTP answer: status, JSON body (or None) and headers."""

    status: int
    body: Any
    headers: CIMultiDict[str]


@dataclass
class CloudServer:
    """A running cloud and a client session for it."""

    url: str
    data_dir: Path
    admin_token: str
    session: aiohttp.ClientSession
    desired_changes: list[list[str]] = field(default_factory=list)
    """The nids of each desired change the REST side announced, sorted."""
    desired_versions: list[dict[str, int]] = field(default_factory=list)
    """The same announcements: each node's new shadow version, by nid."""
    app: web.Application | None = None
    """The server's application (its CloudContext is `app[CONTEXT]` while it runs)."""

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        anonymous: bool = False,
    ) -> Reply:
        """Send a request (as admin unless `token` or `anonymous`) and read the JSON answer."""
        sent = dict(headers or {})
        if not anonymous:
            sent["Authorization"] = f"Bearer {token or self.admin_token}"
        kwargs: dict[str, Any] = {"headers": sent}
        if raw is not None:
            kwargs["data"] = raw
            sent.setdefault("Content-Type", "application/json")
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.url + path, **kwargs) as response:
            text = await response.text()
            try:
                parsed = await response.json(content_type=None) if text else None
            except ValueError:
                parsed = text
            return Reply(response.status, parsed, CIMultiDict(response.headers))

    async def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """Like `call`, but the answer must be 200; returns the body."""
        answer = await self.call(method, path, body, **kwargs)
        assert answer.status == 200, f"{method} {path} -> {answer.status}: {answer.body}"
        return answer.body

    async def upload(self, bucket: str, name: str, data: bytes, **kwargs: Any) -> Any:
        """Store an object (`PUT /v1/objects/...`); returns its record."""
        headers = {"Content-Type": "application/octet-stream"}
        return await self.ok(
            "PUT", f"/v1/objects/{bucket}/{name}", raw=data, headers=headers, **kwargs
        )

    async def refused(
        self, method: str, path: str, body: Any, status: int, code: str, fragment: str
    ) -> Reply:
        """Like `call`, but the answer must be the error `status`/`code` whose message holds
        `fragment` (the rows of the bad-request tables)."""
        answer = await self.call(method, path, body)
        assert answer.status == status, answer.body
        assert answer.body["code"] == code
        assert fragment in answer.body["message"]
        return answer

    async def all_refused(self, token: str, status: int, calls: list[tuple[str, str, Any]]) -> None:
        """Each `(method, path, body)` made with `token` is refused with `status`: 403
        (ErrRequestForbidden) for a token without the right, 404 for another tenant's name."""
        codes = {403: "ErrRequestForbidden", 404: "ErrResourceNotFound"}
        for method, path, body in calls:
            answer = await self.call(method, path, body, token=token)
            assert answer.status == status, (method, path, answer.body)
            assert answer.body["code"] == codes[status], (method, path, answer.body)

    async def token(self, namespace: str = "default", role: str = "admin") -> str:
        """A new token of `role` in `namespace` (the namespace is created if needed)."""
        # In-process call: the store is open while the server runs in this loop.
        _, plain = await tokens.issue(namespace, role)
        return plain


async def start_cloud(
    data_dir: Path,
    db_url: str | None,
    *,
    quotas: QuotaDefaults | None = None,
    mqtt: MqttSettings | None = None,
    access_listeners: Sequence[AccessListener] = (),
    command_timeout: float = 10.0,
    ca: CertificateAuthority | None = None,
    install: InstallSettings | None = None,
    objects: ObjectSettings | None = None,
    plugins: PluginSettings | None = None,
) -> tuple[web.AppRunner, CloudServer]:
    """Start a cloud server; the caller must `runner.cleanup()` and close the session.

    With `mqtt`, the server's MQTT bridge is connected and subscribed when this returns. With
    `ca` (such as the harness CA, which the session broker trusts), the cloud signs node
    certificates with it instead of a CA of its own. `install` sets up the online installer
    (addresses, token lifetime, dist directory). `plugins` chooses plug-ins by name.
    """
    port = free_port()
    settings = CloudSettings(
        data_dir=data_dir,
        db_url=db_url,
        host="127.0.0.1",
        port=port,
        quotas=quotas or QuotaDefaults(),
        mqtt=mqtt,
        command_timeout=command_timeout,
        install=install or InstallSettings(),
        objects=objects or ObjectSettings(),
        plugins=plugins or PluginSettings(),
    )
    if db_url is None and not (data_dir / "cloud.db").exists():
        migrated.sqlite_copy(data_dir)
    if ca is not None:
        seed_ca(settings.pki_dir, ca)
    changes: list[list[str]] = []
    versions: list[dict[str, int]] = []

    def record(changed: DesiredChanges) -> None:
        changes.append(sorted(changed))
        versions.append({nid: written.version for nid, written in changed.items()})

    app = create_app(settings, desired_listeners=[record], access_listeners=access_listeners)
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    if mqtt is not None:
        try:
            async with asyncio.timeout(MQTT_CONNECT_TIMEOUT):
                await app[BRIDGE].link.wait_up()
        except BaseException:
            await runner.cleanup()
            raise
    token = (data_dir / "admin.token").read_text(encoding="ascii").strip()
    session = aiohttp.ClientSession()
    server = CloudServer(
        f"http://127.0.0.1:{port}", data_dir, token, session, changes, versions, app
    )
    return runner, server


def seed_ca(pki_dir: Path, ca: CertificateAuthority) -> None:
    """Put `ca` where the cloud loads its CA from (`DATA_DIR/pki/ca.pem` and `ca.key`)."""
    pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (pki_dir / "ca.pem").write_bytes(ca.cert_pem)
    key = pki_dir / "ca.key"
    key.touch(mode=0o600)
    key.write_bytes(ca.key_pem)
