"""Running the cloud server until SIGTERM/SIGINT, then stopping it within a deadline.

With a managed broker the cloud first brings up its own Mosquitto (PKI, config, supervision)
and talks to it as any external broker; the broker stops after the REST server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal

from aiohttp import web

from cloud.api.app import create_app
from cloud.broker.managed import ManagedBroker
from cloud.services.bootstrap import prepare_data_dir
from cloud.services.context import AccessListener
from cloud.settings import CloudSettings, ManagedBrokerSettings

log = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT = 10.0


async def serve(settings: CloudSettings, *, managed: ManagedBrokerSettings | None = None) -> None:
    """Serve until a stop signal, with a managed broker when `managed` is given."""
    if managed is None:
        await _serve(settings)
        return
    await asyncio.to_thread(prepare_data_dir, settings.data_dir)
    async with ManagedBroker(
        data_dir=settings.data_dir,
        settings=managed,
        node_payload_limit=settings.shadow_limits.node_payload_bytes,
    ) as broker:
        mqtt = broker.mqtt_settings()
        await _serve(dataclasses.replace(settings, mqtt=mqtt), access=[broker.reload_acl])


async def _serve(settings: CloudSettings, *, access: list[AccessListener] | None = None) -> None:
    """Serve the REST API until a stop signal; open requests get SHUTDOWN_TIMEOUT to finish."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    app = create_app(settings, access_listeners=access or ())
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info(
            "baetyl-cloud serving",
            extra={
                "listen": f"{settings.host}:{settings.port}",
                "data_dir": str(settings.data_dir),
            },
        )
        await stop.wait()
        log.info("baetyl-cloud stopping")
    finally:
        await runner.cleanup()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
