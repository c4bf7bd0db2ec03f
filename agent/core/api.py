"""The local HTTP API of baetyl-core (DESIGN §8), with Baetyl's routes and shapes.

    GET /node/stats                 this node's info, load and app stats (a Baetyl NodeView)
    GET /node/properties            {"report": {...}, "desire": {...}} node properties
    PUT /node/properties            merge {key: string} into the reported properties
    GET /services/{app}/log         recent log text (?tailLines=&sinceSeconds=)
    GET /health                     liveness of the agent itself and its cloud link

Apps on the node and local tools use it, so it listens on loopback only by default and has no
authentication. Handlers are thin; every failure leaves through `LocalApi.handle` as
`{"code", "message"}` (the cloud's codes), so bad input gets a 4xx and never stops the agent.
HTTP itself is `agent.core.httpserve` (strict limits, one request per connection).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from agent.contracts import names
from agent.contracts.report import AppStats, CoreInfo, NodeInfo
from agent.core import httpserve, node
from agent.core.backend import NodeIdentity

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_PROPERTY_KEY = 128  # the shadow's key length limit (DESIGN §5)
MAX_TAIL_LINES = 10_000  # the same bounds as the cloud's logs route
MAX_SINCE_SECONDS = 30 * 24 * 3600


class NodeProperties(Protocol):
    """The node properties (`nodeprops`) of the local shadow; the sync module implements it."""

    def current(self) -> dict[str, Any]:
        """`{"report": {key: value}, "desire": {key: value}}` as the agent knows them now."""
        ...

    async def update(self, patch: dict[str, str]) -> dict[str, Any]:
        """Merge `patch` into the reported properties, report it, and return the new ones."""
        ...


class AppsView(Protocol):
    """What the API reads from the backend (agent.core.backend.Backend provides both)."""

    def observe(self) -> dict[str, AppStats]:
        """What runs now, by app name."""
        ...

    async def logs(self, app: str, *, tail_lines: int | None, since_seconds: int | None) -> str:
        """Recent log text of `app`; KeyError when the app is unknown."""
        ...


@dataclass(frozen=True)
class CloudState:
    """The cloud link as `/health` shows it."""

    connected: bool
    """Whether the MQTT link to the cloud is up."""
    reports: int
    """How many reports the cloud has accepted since the agent started."""


@dataclass(frozen=True)
class ApiProviders:
    """Everything the API reads or changes, given once to `create_api`.

    `stats` should be the API's own collector (CPU use is averaged since its last sample);
    `cloud` tells the state of the cloud link (the sync module knows it).
    """

    identity: NodeIdentity
    apps: AppsView
    properties: NodeProperties
    stats: node.StatsCollector
    core: CoreInfo
    cloud: Callable[[], CloudState]
    info: Callable[[], Awaitable[NodeInfo]] = node.collect_info


class ApiError(Exception):
    """A request that cannot be served; `status` and `code` go into the error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def invalid(message: str) -> ApiError:
    """400 ErrRequestParamInvalid."""
    return ApiError(400, "ErrRequestParamInvalid", message)


class LocalApi:
    """The local API's routes over its providers, served by `httpserve.Server` (see ApiServer).

    `handle` is the one place where failures become `{"code", "message"}` answers.
    """

    def __init__(self, providers: ApiProviders) -> None:
        self.providers = providers
        self.started = time.monotonic()
        self.router = httpserve.Router()
        self.router.add("GET", "/health", self.health)
        self.router.add("GET", "/node/stats", self.node_stats)
        self.router.add("GET", "/node/properties", self.get_properties)
        self.router.add("PUT", "/node/properties", self.put_properties)
        self.router.add("GET", "/services/{app}/log", self.service_log)

    async def handle(self, request: httpserve.Request) -> httpserve.Response:
        """Route and run one request; every failure leaves as `{"code", "message"}`."""
        try:
            handler, params = self.router.resolve(request.method, request.segments)
            return await handler(replace(request, params=params))
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message)
        except httpserve.HttpError as exc:
            return self.error(exc)
        except Exception:
            log.exception("local API request failed", extra={"path": request.path})
            return self.error(httpserve.HttpError(500))

    def error(self, error: httpserve.HttpError) -> httpserve.Response:
        """A request refused by the HTTP layer or the router, in the cloud's error shape."""
        if error.status == 500:
            return _error(500, "UnknownError", "internal error; see the agent log")
        code = (
            "ErrRequestMethodNotFound" if error.status in (404, 405) else "ErrRequestParamInvalid"
        )
        return _error(error.status, code, error.message, headers=error.headers)

    async def health(self, request: httpserve.Request) -> httpserve.Response:
        """200 while the agent's event loop answers; says who and what runs, and the cloud link."""
        providers = self.providers
        cloud = providers.cloud()
        return httpserve.json_response(
            {
                "status": "ok",
                "node": providers.identity.nid,
                "version": providers.core.version,
                "backend": providers.core.backend,
                "uptime": round(time.monotonic() - self.started, 3),
                "cloud": {"connected": cloud.connected, "reports": cloud.reports},
            }
        )

    async def node_stats(self, request: httpserve.Request) -> httpserve.Response:
        """Baetyl's node view: namespace, name and a fresh report (apps as name-sorted lists)."""
        providers = self.providers
        info, stats = await asyncio.gather(providers.info(), providers.stats.collect())
        apps = providers.apps.observe()
        report = node.report_entries(info, stats, providers.core)
        report["apps"] = [{"name": name, "version": apps[name].version} for name in sorted(apps)]
        report["appstats"] = [apps[name].to_wire() for name in sorted(apps)]
        report["time"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        identity = providers.identity
        return httpserve.json_response(
            {"namespace": identity.namespace, "name": identity.name, "report": report}
        )

    async def get_properties(self, request: httpserve.Request) -> httpserve.Response:
        """`{"report": {...}, "desire": {...}}`: the node properties as the agent knows them."""
        return httpserve.json_response(self.providers.properties.current())

    async def put_properties(self, request: httpserve.Request) -> httpserve.Response:
        """Merge a flat `{key: string}` object into the reported properties; answer the new ones."""
        patch = parse_properties(request.body)
        return httpserve.json_response(await self.providers.properties.update(patch))

    async def service_log(self, request: httpserve.Request) -> httpserve.Response:
        """The app's recent log as text/plain; 404 for an app the backend does not run."""
        app = request.params["app"]
        try:
            names.check_app_name(app)
        except names.InvalidName as exc:
            raise invalid(str(exc)) from exc
        tail_lines = _int_query(request, "tailLines", MAX_TAIL_LINES)
        since_seconds = _int_query(request, "sinceSeconds", MAX_SINCE_SECONDS)
        try:
            text = await self.providers.apps.logs(
                app, tail_lines=tail_lines, since_seconds=since_seconds
            )
        except KeyError as exc:
            raise ApiError(
                404, "ErrResourceNotFound", f"The (application) resource ({app}) is not found."
            ) from exc
        return httpserve.text_response(text)


def create_api(providers: ApiProviders) -> LocalApi:
    """The local API (not yet listening; see ApiServer)."""
    return LocalApi(providers)


def _error(
    status: int, code: str, message: str, *, headers: httpserve.Headers = ()
) -> httpserve.Response:
    return httpserve.json_response(
        {"code": code, "message": message}, status=status, headers=headers
    )


def parse_properties(raw: bytes) -> dict[str, str]:
    """A PUT body as `{key: string}`; ApiError 400 naming every bad entry."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise invalid(f"body must be a JSON object of string values ({exc})") from exc
    if not isinstance(body, dict):
        raise invalid('body must be a JSON object of string values, such as {"k": "v"}')
    problems = []
    for key, value in body.items():
        if not key or len(key) > MAX_PROPERTY_KEY:
            problems.append(f"key {key[:40]!r}: must be 1-{MAX_PROPERTY_KEY} characters")
        elif not isinstance(value, str):
            problems.append(f"{key}: value must be a string (got {json.dumps(value)[:40]})")
    if problems:
        raise invalid("; ".join(problems))
    return body


def _int_query(request: httpserve.Request, name: str, maximum: int) -> int | None:
    given = request.query.get(name, [])
    if len(given) > 1:
        raise invalid(f"{name} is given more than once")
    if not given or given[0] == "":
        return None
    text = given[0]
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or not 1 <= int(text) <= maximum:
        raise invalid(f"{name} must be an integer from 1 to {maximum} (got {text[:20]!r})")
    return int(text)


class ApiServer:
    """The API bound to a TCP address: `await start()`, then `await stop()` once.

    Port 0 binds a free port (tests); `port` tells which. Stopping closes the listener at once,
    lets requests in progress finish for up to `shutdown_timeout` seconds, then drops them, so
    a slow client can never hold up the agent's shutdown (SIGTERM → stop within 10 s).
    """

    def __init__(
        self, app: LocalApi, *, host: str, port: int, shutdown_timeout: float = 3.0
    ) -> None:
        self.host = host
        self._server = httpserve.Server(
            app,
            host=host,
            port=port,
            limits=httpserve.Limits(body=MAX_BODY_BYTES),
            shutdown_timeout=shutdown_timeout,
            name="local-api",
            access_log=logging.getLogger(f"{__name__}.access"),
        )
        self._listening = False

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        if not self._listening:
            raise RuntimeError("the local API is not listening")
        return self._server.port

    @property
    def url(self) -> str:
        """`http://host:port` of the listener (after start)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve; OSError (address in use, ...) leaves nothing behind."""
        await self._server.start()
        self._listening = True
        log.info("local API listening", extra={"url": self.url})

    async def stop(self) -> None:
        """Stop listening and finish within about `shutdown_timeout` seconds."""
        if not self._listening:
            return
        self._listening = False
        await self._server.stop()
        log.info("local API stopped")


async def serve_api(
    app: LocalApi,
    *,
    host: str,
    port: int,
    started: Callable[[ApiServer], None] | None = None,
    shutdown_timeout: float = 3.0,
) -> None:
    """Serve until cancelled, then stop gracefully: the body of the agent's `local-api` task."""
    server = ApiServer(app, host=host, port=port, shutdown_timeout=shutdown_timeout)
    await server.start()
    try:
        if started is not None:
            started(server)
        await asyncio.Event().wait()
    finally:
        await server.stop()
