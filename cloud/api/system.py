"""Routes that are not resources: health, the OpenAPI document, Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agent.contracts.version import VERSION
from cloud.api.http import reply
from cloud.api.keys import ALL_ROUTES
from cloud.api.routing import RouteTable, openapi_document

routes = RouteTable(tags=("system",))
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")


class Metrics:
    """The REST API's Prometheus metrics, in a registry of this app (not the global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "baetyl_cloud_http_requests",
            "REST requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "baetyl_cloud_http_request_seconds",
            "REST request latency by route",
            ["method", "route"],
            registry=self.registry,
        )


@web.middleware
async def metrics_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Count and time every request by its route template (not its raw path)."""
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    finally:
        metrics = request.app[METRICS]
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)


@routes.get("/health", "Liveness of the cloud", access="anonymous")
async def health(request: web.Request) -> web.Response:
    """Always `{"success": true}` while the process serves requests (as Baetyl)."""
    del request
    return reply(None)


@routes.get("/v1/openapi.json", "OpenAPI 3.1 document", access="anonymous")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI document generated from the route table."""
    document = openapi_document(request.app[ALL_ROUTES], title="Baetyl-Py cloud", version=VERSION)
    return reply(document)


@routes.get("/metrics", "Prometheus metrics", access="anonymous")
async def metrics(request: web.Request) -> web.Response:
    """The REST metrics in Prometheus text format."""
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
