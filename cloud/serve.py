"""Running the cloud server until SIGTERM/SIGINT, then stopping it within a deadline."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from cloud.api.app import create_app
from cloud.settings import CloudSettings

log = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT = 10.0


async def serve(settings: CloudSettings) -> None:
    """Serve the REST API until a stop signal; open requests get SHUTDOWN_TIMEOUT to finish."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(create_app(settings), shutdown_timeout=SHUTDOWN_TIMEOUT)
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
