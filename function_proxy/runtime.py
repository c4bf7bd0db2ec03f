"""The Python function runtime: `python -m function_proxy.runtime` (DESIGN §9).

It serves the functions of its generated config over HTTP on `BAETYL_SERVICE_DYNAMIC_PORT`
(loopback), one route per function (`/{function}`; `/` is the first one), for the function proxy
to forward invocations to. Each call is `handler(event, context)`:

- `event` is the request body JSON-decoded when it parses as JSON (Baetyl's runtimes do the same),
  else the raw bytes, and None for an empty body;
- `context` is `{"serviceName", "functionName", "invokeId"}`;
- a coroutine handler is awaited, a plain one runs in a worker thread, so a slow function never
  stalls the others; at most `--concurrency` calls run at once, the rest wait their turn;
- bytes are answered as they are, None as an empty body, anything else JSON-encoded;
- an exception answers 500 `{"errCode": "ErrFunction", "message"}` and the runtime stays up.

A config or handler that cannot be loaded stops the runtime at start with exit status 2 and one
line saying which function and why: the agent reports it as the app's cause.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from function_proxy.errors import INVOKE_ID, LEGACY_INVOKE_ID, error
from function_proxy.functions import FunctionConfigError, LoadedFunction, load, read_config
from function_proxy.serving import serve_until_signalled

log = logging.getLogger("function_proxy.runtime")
PORT_VARIABLE = "BAETYL_SERVICE_DYNAMIC_PORT"
SERVICE_VARIABLE = "BAETYL_SERVICE_NAME"
CONFIG_VARIABLE = "BAETYL_FUNCTION_CONFIG"
DEFAULT_CONCURRENCY = 16
MAX_BODY = 4 * 1024 * 1024
DRAIN = 1.0
"""Seconds a stopping runtime keeps answering (see `serve`): twice the proxy's reload interval."""
FUNCTIONS: web.AppKey[dict[str, LoadedFunction]] = web.AppKey("functions", dict)
FIRST: web.AppKey[str] = web.AppKey("first", str)
SERVICE: web.AppKey[str] = web.AppKey("service", str)
LIMIT: web.AppKey[asyncio.Semaphore] = web.AppKey("limit", asyncio.Semaphore)
POOL: web.AppKey[ThreadPoolExecutor] = web.AppKey("pool", ThreadPoolExecutor)


def decode_event(body: bytes) -> Any:
    """The handler's event: None for no body, the JSON value when it parses, else the bytes."""
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body


def encode_result(result: Any) -> web.Response:
    """The answer to a handler's result (bytes as is, None empty, the rest as JSON)."""
    if result is None:
        return web.Response(status=200)
    if isinstance(result, bytes | bytearray | memoryview):
        return web.Response(body=bytes(result), content_type="application/octet-stream")
    return web.Response(
        text=json.dumps(result, ensure_ascii=False), content_type="application/json"
    )


async def invoke(request: web.Request) -> web.Response:
    """Call the function the path names (the first one for `/`)."""
    app = request.app
    name = request.match_info.get("function") or app[FIRST]
    function = app[FUNCTIONS].get(name)
    if function is None:
        return error(404, "ErrFunctionNotFound", f"no function {name!r} in this runtime")
    invoke_id = (
        request.headers.get(INVOKE_ID) or request.headers.get(LEGACY_INVOKE_ID) or uuid.uuid4().hex
    )
    event = decode_event(await request.read())
    context = {"serviceName": app[SERVICE], "functionName": name, "invokeId": invoke_id}
    async with app[LIMIT]:
        try:
            if function.is_async:
                result = await function.call(event, context)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(app[POOL], function.call, event, context)
            response = encode_result(result)
        except Exception as exc:  # noqa: BLE001 - user code: any failure is the caller's answer
            log.warning(
                "function failed",
                extra={"function": name, "invoke_id": invoke_id, "error": repr(exc)},
            )
            return _with_id(error(500, "ErrFunction", f"{type(exc).__name__}: {exc}"), invoke_id)
    return _with_id(response, invoke_id)


def _with_id(response: web.Response, invoke_id: str) -> web.Response:
    response.headers[INVOKE_ID] = invoke_id
    return response


def create_app(
    functions: Sequence[LoadedFunction], *, service: str, concurrency: int, max_body: int
) -> web.Application:
    """The runtime's aiohttp application over loaded functions."""
    app = web.Application(client_max_size=max_body)
    app[FUNCTIONS] = {f.spec.name: f for f in functions}
    app[FIRST] = functions[0].spec.name
    app[SERVICE] = service
    app[LIMIT] = asyncio.Semaphore(concurrency)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="function")
    app[POOL] = pool

    async def close_pool(_: web.Application) -> None:
        pool.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(close_pool)
    for method in ("GET", "POST", "PUT", "DELETE"):
        app.router.add_route(method, "/", invoke)
        app.router.add_route(method, "/{function}", invoke)
    return app


async def serve(app: web.Application, host: str, port: int, *, drain: float = DRAIN) -> None:
    """Serve until SIGTERM/SIGINT, then `drain` seconds more (new calls still answered) before
    closing; calls in flight then get SHUTDOWN_TIMEOUT to finish.

    The drain is for the proxy: the agent takes a stopping instance out of the registry as it
    signals it, and the proxy re-reads the registry within 0.5 s; until then it may still send
    calls here, over connections it keeps open, which closing at once would break.
    """
    await serve_until_signalled(
        app,
        host,
        port,
        logger=log,
        serving="function runtime serving",
        extra={"functions": sorted(app[FUNCTIONS].keys())},
        drain=drain,
    )


def build_parser() -> argparse.ArgumentParser:
    """The runtime's options."""
    parser = argparse.ArgumentParser(
        prog="python -m function_proxy.runtime",
        description="Serve the Python functions of a function app's service over HTTP, for "
        "the function proxy (docs/functions.md).",
        epilog="exit status: 0 stopped by a signal, 2 bad options, config or handler",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get(CONFIG_VARIABLE),
        help=f"the generated function config (default ${CONFIG_VARIABLE})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=os.environ.get(PORT_VARIABLE),
        help=f"listen port (default ${PORT_VARIABLE}, which the agent sets)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"calls run at once; more wait (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=DRAIN,
        help=f"seconds to keep answering after SIGTERM, before closing (default {DRAIN:g})",
    )
    parser.add_argument(
        "--max-body",
        type=int,
        default=MAX_BODY,
        help=f"largest request body in bytes (default {MAX_BODY})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Load the functions, then serve; exit 2 with one line for anything that cannot work."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is None:
        parser.error(f"no function config: give --config or set {CONFIG_VARIABLE}")
    if args.port is None or not 0 < int(args.port) < 65536:
        parser.error(f"no port: give --port or set {PORT_VARIABLE} (1-65535)")
    if args.concurrency < 1 or args.max_body < 1:
        parser.error("--concurrency and --max-body must be at least 1")
    if not 0 <= args.drain <= 60:
        parser.error("--drain must be 0 to 60 seconds")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        loaded = [load(spec) for spec in read_config(args.config)]
    except FunctionConfigError as exc:
        sys.stderr.write(f"function runtime: error: {exc}\n")
        return 2
    service = os.environ.get(SERVICE_VARIABLE, "")
    try:
        app = create_app(
            loaded, service=service, concurrency=args.concurrency, max_body=args.max_body
        )
        asyncio.run(serve(app, args.host, int(args.port), drain=args.drain))
    except OSError as exc:
        sys.stderr.write(f"function runtime: error: cannot listen on {args.port}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
