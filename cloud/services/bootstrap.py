"""First start of a cloud: the `default` namespace, its admin token file and the secret key."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from agent.contracts.kit import files
from cloud import plugins
from cloud.secretbox import SecretBox
from cloud.services import tokens
from cloud.services.context import AccessListener, CloudContext, DesiredListener
from cloud.settings import CloudSettings
from cloud.store import tokens as store
from cloud.store.db import close_store, open_store

log = logging.getLogger(__name__)
DEFAULT_NAMESPACE = "default"
ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105 - a file name
SECRET_KEY_FILE = "secret.key"  # noqa: S105 - a file name


def prepare_data_dir(data_dir: Path) -> SecretBox:
    """Create the data directory (0700) and load or create the secret key."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return SecretBox.load_or_create(data_dir / SECRET_KEY_FILE)


async def ensure_default_tenant(data_dir: Path) -> None:
    """Create namespace `default` and write an admin token to `admin.token` (0600) if absent."""
    await store.ensure_namespace(DEFAULT_NAMESPACE)
    path = data_dir / ADMIN_TOKEN_FILE
    if path.exists():
        return
    _, plain = await tokens.issue(DEFAULT_NAMESPACE, "admin", description="first-start admin token")
    await asyncio.to_thread(files.atomic_write, path, f"{plain}\n".encode("ascii"), mode=0o600)
    log.info("wrote the admin token of namespace default", extra={"path": str(path)})


async def start(
    settings: CloudSettings,
    listeners: list[DesiredListener],
    access_listeners: list[AccessListener] | None = None,
) -> CloudContext:
    """Open everything a serving cloud needs: data dir, secret key, store, first-start tenant.

    Access listeners hear the stored deny list once here, so a broker started before the store
    opened shuts out deleted nodes from the beginning. The plug-ins are made here, off the loop
    (an S3 client takes a while to build); the default signer creates the CA in `DATA_DIR/pki`
    when missing, whether or not the cloud runs its own broker. PluginError when one cannot be
    used.
    """
    secrets = await asyncio.to_thread(prepare_data_dir, settings.data_dir)
    made = await asyncio.to_thread(plugins.make_all, settings)
    await open_store(settings.database_url)
    try:
        await ensure_default_tenant(settings.data_dir)
        context = CloudContext(
            settings,
            secrets,
            listeners,
            list(access_listeners or ()),
            ca=made.signer,
            auth=made.auth,
            object_store=made.object_store,
        )
        await context.access_changed()
    except BaseException:
        await close_store()
        raise
    return context


async def stop() -> None:
    """Close the store."""
    await close_store()
