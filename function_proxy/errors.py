"""The runtime's error answer, Baetyl's `{"errCode", "message"}` (DESIGN §9), as an aiohttp
response; the proxy writes the same body through `function_proxy.wire`."""

from __future__ import annotations

from aiohttp import web

from function_proxy.wire import INVOKE_ID, LEGACY_INVOKE_ID, error_body

__all__ = ["INVOKE_ID", "LEGACY_INVOKE_ID", "error"]


def error(status: int, code: str, message: str) -> web.Response:
    """A JSON error answer."""
    return web.Response(
        body=error_body(code, message), status=status, content_type="application/json"
    )
