"""The function proxy: `ANY /{app}` and `/{app}/{function}` forwarded to a runtime instance of
that function app (DESIGN §9).

One `ClientSession` for every call. Instances come from a resolver, round-robin; a connection
that cannot be made is tried on the next instance (only then: a call that reached a runtime is
never sent twice); each call has a deadline. The invoke id (`X-Baetyl-Invoke-Id`, Baetyl's
`invokeid` accepted) is made when absent, passed to the runtime and answered back. Errors are
Baetyl's `{"errCode", "message"}`: 404 unknown app or function, 413 body too large, 502 runtime
failure, 504 timeout. `GET /metrics` (no function path) is Prometheus' text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from function_proxy.errors import INVOKE_ID, LEGACY_INVOKE_ID, error
from function_proxy.resolver import RegistryResolver, UnknownApp, UnknownFunction

log = logging.getLogger(__name__)
FORWARDED_HEADERS = ("Content-Type", "Accept")
UNKNOWN_APP = "(unknown)"
"""The metrics label of calls to apps that do not exist."""


@dataclass(frozen=True)
class ProxySettings:
    """How the proxy serves and forwards.

    Attributes:
        host, port: where it listens (loopback by default: apps on the node call it).
        timeout: seconds a call may take, runtime included, before 504.
        max_body: largest request body in bytes (413 beyond).
    """

    host: str = "127.0.0.1"
    port: int = 50011
    timeout: float = 30.0
    max_body: int = 4 * 1024 * 1024


class Metrics:
    """Calls, errors and latency per app, in a registry of the proxy's own."""

    def record(self, app: str, error_code: str | None, started: float) -> None:
        """One call of `app` that began at `started` (perf_counter), failed with `error_code`."""
        children = self._children.get(app)
        if children is None:
            children = (self.calls.labels(app), self.latency.labels(app))
            self._children[app] = children
        calls, latency = children
        calls.inc()
        if error_code is not None:
            self.errors.labels(app, error_code).inc()
        latency.observe(time.perf_counter() - started)

    def __init__(self) -> None:
        self._children: dict[str, tuple[Any, Any]] = {}
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "baetyl_function_calls", "Invocations forwarded", ["app"], registry=self.registry
        )
        self.errors = Counter(
            "baetyl_function_errors",
            "Invocations answered with an error",
            ["app", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "baetyl_function_latency_seconds",
            "Time from request to answer, runtime included",
            ["app"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )


class FunctionProxy:
    """The proxy's routes over a resolver; `app()` is the aiohttp application."""

    def __init__(self, resolver: RegistryResolver, settings: ProxySettings) -> None:
        self.resolver = resolver
        self.settings = settings
        self.metrics = Metrics()
        self._session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        application = web.Application(client_max_size=self.settings.max_body)
        application.router.add_get("/metrics", self._metrics)
        for method in ("GET", "POST", "PUT", "DELETE"):
            application.router.add_route(method, "/{app}", self._invoke)
            application.router.add_route(method, "/{app}/{function}", self._invoke)
        application.cleanup_ctx.append(self._lifetime)
        return application

    async def _lifetime(self, _: web.Application) -> AsyncIterator[None]:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            auto_decompress=False,
        )
        watcher = asyncio.create_task(self.resolver.watch(), name="function-proxy:registry")
        try:
            yield
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await self._session.close()

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        response = web.Response(body=body)
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    async def _invoke(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        app = request.match_info["app"]
        function = request.match_info.get("function")
        invoke_id = (
            request.headers.get(INVOKE_ID)
            or request.headers.get(LEGACY_INVOKE_ID)
            or os.urandom(16).hex()
        )
        try:
            response, code = await self._forward(request, app, function, invoke_id)
        except web.HTTPRequestEntityTooLarge:
            limit = self.settings.max_body
            response, code = _error(413, "ErrTooLarge", f"the body is over {limit} bytes")
        response.headers[INVOKE_ID] = invoke_id
        # Only apps that exist get a series of their own: a caller inventing app names must not
        # grow the metrics without bound.
        label = UNKNOWN_APP if code == "ErrAppNotFound" else app
        failed = (code or str(response.status)) if response.status >= 400 else None
        self.metrics.record(label, failed, started)
        return response

    async def _forward(
        self, request: web.Request, app: str, function: str | None, invoke_id: str
    ) -> tuple[web.Response, str | None]:
        """The answer, and our error code when the proxy made it (None when relayed)."""
        try:
            instances = self.resolver.pick(app, function)
        except UnknownApp:
            return _error(404, "ErrAppNotFound", f"no running function app {app!r}")
        except UnknownFunction:
            return _error(404, "ErrFunctionNotFound", f"app {app!r} has no function {function!r}")
        body = await request.read()
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        headers[INVOKE_ID] = invoke_id
        path = f"/{function}" if function else "/"
        assert self._session is not None
        deadline = asyncio.get_running_loop().time() + self.settings.timeout
        failures: list[str] = []
        for address in instances:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    async with self._session.request(
                        request.method,
                        f"http://{address}{path}",
                        data=body,
                        headers=headers,
                        params=request.query if request.query_string else None,
                    ) as answer:
                        payload = await answer.read()
                        relayed = _relay(answer, payload, app)
                        return relayed, ("ErrRuntime" if relayed.status == 502 else None)
            except TimeoutError:
                return _error(
                    504, "ErrTimeout", f"{app}: no answer within {self.settings.timeout:g} s"
                )
            except aiohttp.ClientConnectorError as exc:
                failures.append(f"{address}: {exc.os_error or exc}")
                continue  # never reached the runtime: the next instance may take it
            except aiohttp.ClientError as exc:
                return _error(502, "ErrRuntime", f"{app}: the runtime failed: {exc}")
        return _error(
            502, "ErrRuntime", f"{app}: no runtime instance answered ({'; '.join(failures)})"
        )


def _relay(answer: aiohttp.ClientResponse, payload: bytes, app: str) -> web.Response:
    """The runtime's answer as the caller's; a runtime error (5xx) becomes 502 with its text."""
    content_type = answer.headers.get("Content-Type")
    if answer.status >= 500:
        message = payload.decode(errors="replace")[:2000]
        with contextlib.suppress(ValueError, AttributeError):
            message = str(json.loads(payload).get("message", message))  # the runtime's own
        return error(502, "ErrRuntime", f"{app}: {message}")
    response = web.Response(status=answer.status, body=payload)
    if content_type:
        response.headers["Content-Type"] = content_type
    return response


def _error(status: int, code: str, message: str) -> tuple[web.Response, str]:
    return error(status, code, message), code
