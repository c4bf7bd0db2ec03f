"""The error body of the proxy and the runtime, Baetyl's `{"errCode", "message"}` (DESIGN §9)."""

from __future__ import annotations

import json

from aiohttp import web

INVOKE_ID = "X-Baetyl-Invoke-Id"
"""The header that names one invocation end to end; Baetyl's `invokeid` is read too."""
LEGACY_INVOKE_ID = "invokeid"


def error(status: int, code: str, message: str) -> web.Response:
    """A JSON error answer."""
    return web.Response(
        status=status,
        text=json.dumps({"errCode": code, "message": message}),
        content_type="application/json",
    )
