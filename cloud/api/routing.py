"""A route table that registers aiohttp handlers and describes them as OpenAPI 3.1.

Every route is declared once with its request and response models, so `GET /v1/openapi.json` is
generated from the same pydantic models that parse and render the requests, never hand-written.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, Unpack

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Decorator = Callable[[Handler], Handler]
Access = Literal["anonymous", "read", "admin"]
_PATH_PARAM = re.compile(r"\{(\w+)(?::[^{}]+)?\}")


def file_field(name: str) -> dict[str, Any]:
    """The OpenAPI `content` of a request body that is one file in multipart field `name`."""
    return {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [name],
                "properties": {name: {"type": "string", "format": "binary"}},
            }
        }
    }


BYTES: dict[str, Any] = {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
}
"""The OpenAPI `content` of a request body that is raw bytes (an object's upload)."""


class RouteOptions(TypedDict, total=False):
    """What a route may declare besides its method, path and summary (see `RouteTable.route`)."""

    body: type[BaseModel] | None
    upload: dict[str, Any] | None
    """A body that is not JSON: its OpenAPI `content` (`file_field`, `BYTES`)."""
    response: type[BaseModel] | None
    query: type[BaseModel] | None
    status: int
    access: Access | None
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    """One endpoint: method, path (aiohttp syntax), who may call it, and its models."""

    method: str
    path: str
    handler: Handler
    summary: str
    access: Access
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    tags: tuple[str, ...] = ()
    upload: dict[str, Any] | None = None


@dataclass
class RouteTable:
    """Routes collected by the `route` decorator, then added to an app in one go."""

    prefix: str = ""
    tags: tuple[str, ...] = ()  # of every route declared here that names none
    routes: list[Route] = field(default_factory=list)

    def route(
        self, method: str, path: str, summary: str, **options: Unpack[RouteOptions]
    ) -> Decorator:
        """Declare a handler. Access defaults to `read` for GET and `admin` for other methods;
        `routes.get(path, summary, ...)` and the other verbs are this with the method given."""
        method = method.upper()
        access = options.get("access") or ("read" if method == "GET" else "admin")

        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method=method,
                    path=self.prefix + path,
                    handler=handler,
                    summary=summary,
                    access=access,
                    body=options.get("body"),
                    response=options.get("response"),
                    query=options.get("query"),
                    status=options.get("status", 200),
                    tags=options.get("tags") or self.tags,
                    upload=options.get("upload"),
                )
            )
            return handler

        return register

    def get(self, path: str, summary: str, **options: Unpack[RouteOptions]) -> Decorator:
        """`route("GET", ...)`."""
        return self.route("GET", path, summary, **options)

    def post(self, path: str, summary: str, **options: Unpack[RouteOptions]) -> Decorator:
        """`route("POST", ...)`."""
        return self.route("POST", path, summary, **options)

    def put(self, path: str, summary: str, **options: Unpack[RouteOptions]) -> Decorator:
        """`route("PUT", ...)`."""
        return self.route("PUT", path, summary, **options)

    def patch(self, path: str, summary: str, **options: Unpack[RouteOptions]) -> Decorator:
        """`route("PATCH", ...)`."""
        return self.route("PATCH", path, summary, **options)

    def delete(self, path: str, summary: str, **options: Unpack[RouteOptions]) -> Decorator:
        """`route("DELETE", ...)`."""
        return self.route("DELETE", path, summary, **options)

    def extend(self, other: RouteTable) -> None:
        """Add another table's routes (each handler module keeps its own table)."""
        self.routes.extend(other.routes)

    def install(self, app: web.Application) -> dict[tuple[str, str], Route]:
        """Add every route to `app`; returns the routes by (method, canonical path)."""
        index: dict[tuple[str, str], Route] = {}
        for route in self.routes:
            resource = app.router.add_resource(route.path)
            resource.add_route(route.method, route.handler)
            index[(route.method, resource.canonical)] = route
        return index


def openapi_document(routes: list[Route], *, title: str, version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document of `routes`, schemas generated from their pydantic models."""
    models: list[type[BaseModel]] = []
    for route in routes:
        for model in (route.body, route.response):
            if model is not None and model not in models:
                models.append(model)
    keyed, definitions = models_json_schema(
        [(model, "serialization") for model in models],
        ref_template="#/components/schemas/{model}",
        by_alias=True,
    )
    del keyed
    schemas = definitions.get("$defs", {})

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": _operation_id(route),
            "responses": {str(route.status): _response(route)},
        }
        if route.tags:
            operation["tags"] = list(route.tags)
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PATH_PARAM.findall(route.path)
        ]
        if route.query is not None:
            parameters.extend(_query_parameters(route.query))
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(route.body)}},
            }
        elif route.upload is not None:
            operation["requestBody"] = {"required": True, "content": route.upload}
        if route.access != "anonymous":
            operation["security"] = [{"bearer": []}]
            operation["responses"]["401"] = {"$ref": "#/components/responses/Error"}
        operation["responses"]["default"] = {"$ref": "#/components/responses/Error"}
        paths.setdefault(_PATH_PARAM.sub(r"{\1}", route.path), {})[route.method.lower()] = operation

    schemas["Error"] = {
        "type": "object",
        "required": ["code", "message", "requestId"],
        "properties": {
            "code": {"type": "string", "examples": ["ErrResourceNotFound"]},
            "message": {"type": "string"},
            "requestId": {"type": "string"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "Error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
        },
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _response(route: Route) -> dict[str, Any]:
    if route.response is None:
        return {"description": "Success"}
    return {
        "description": route.response.__doc__.strip().splitlines()[0]
        if route.response.__doc__
        else "Success",
        "content": {"application/json": {"schema": _ref(route.response)}},
    }


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(by_alias=True)
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _operation_id(route: Route) -> str:
    words = (
        re.sub(r"[{}]", "", _PATH_PARAM.sub(r"\1", route.path))
        .strip("/")
        .replace("/", "_")
        .replace("-", "_")
    )
    return f"{route.method.lower()}_{words}"
