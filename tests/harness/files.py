"""A real HTTP file server for download tests: serves bytes by name, counts hits, refuses on cue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.harness.common import free_port


@dataclass
class FileServer:
    """Serves `files` at `url/files/<name>`; answers `status[name]` instead when set."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def url_of(self, name: str) -> str:
        """Where a file is served."""
        return f"{self.url}/files/{name}"


@asynccontextmanager
async def file_server() -> AsyncIterator[FileServer]:
    """A running FileServer on a free loopback port, stopped on exit."""
    port = free_port()
    served = FileServer(f"http://127.0.0.1:{port}")

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        served.hits[name] = served.hits.get(name, 0) + 1
        if name in served.status:
            return web.Response(status=served.status[name], text="refused")
        if name not in served.files:
            return web.Response(status=404)
        return web.Response(body=served.files[name])

    app = web.Application()
    app.router.add_get("/files/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield served
    finally:
        await runner.cleanup()
