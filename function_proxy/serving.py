"""Serving until SIGTERM/SIGINT, for the proxy and the runtime alike."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, Final

from aiohttp import web

SHUTDOWN_TIMEOUT: Final = 10.0
"""Seconds calls in flight get to finish once the server closes."""


async def until_signalled() -> None:
    """Return at the first SIGTERM or SIGINT; later ones are absorbed (a second TERM during
    the drain must not kill the calls it waits for)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def serve_until_signalled(
    app: web.Application,
    host: str,
    port: int,
    *,
    logger: logging.Logger,
    serving: str,
    extra: dict[str, Any] | None = None,
    drain: float = 0.0,
) -> None:
    """Serve `app` on `host:port` until SIGTERM/SIGINT, log `serving` once listening, then go
    on answering for `drain` seconds before closing; calls in flight get SHUTDOWN_TIMEOUT."""
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        logger.info(serving, extra={"listen": f"{host}:{port}", **(extra or {})})
        await until_signalled()
        if drain > 0:
            logger.info("stopping", extra={"drain_s": drain})
            await asyncio.sleep(drain)
    finally:
        await runner.cleanup()
