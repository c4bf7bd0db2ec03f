"""The function proxy: `ANY /{app}` and `/{app}/{function}` forwarded to a runtime instance of
that function app (DESIGN §9).

Instances come from a resolver, round-robin; a connection that cannot be made is tried on the
next instance (only then: a call that reached a runtime is never sent twice); each call has a
deadline. The invoke id (`X-Baetyl-Invoke-Id`, Baetyl's `invokeid` accepted) is made when absent,
passed to the runtime and answered back. Errors are Baetyl's `{"errCode", "message"}`: 404
unknown app or function, 405 another method, 413 body too large, 502 runtime failure, 504
timeout. `GET /metrics` (no function path) is Prometheus' text.

Requests and answers are relayed as bytes (`function_proxy.callers`, `.upstream`, `.wire`) over
pooled keep-alive connections, not through a web framework on both sides: the proxy is on the
path of every call, and this way it costs a call a third of the CPU (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from function_proxy.callers import Listener
from function_proxy.resolver import RegistryResolver, UnknownApp, UnknownFunction
from function_proxy.serving import SHUTDOWN_TIMEOUT, until_signalled
from function_proxy.upstream import Answer, NotReached, UpstreamPool
from function_proxy.wire import Call, Reply, encode_request, error_reply, invoke_id_of

log = logging.getLogger(__name__)
METHODS: Final = frozenset({"GET", "POST", "PUT", "DELETE"})
UNKNOWN_APP: Final = "(unknown)"
"""The metrics label of calls to apps that do not exist."""
SWEEP_SECONDS: Final = 5.0
"""How often idle connections (callers' and runtimes') are looked at."""
_METRICS_TYPE: Final = CONTENT_TYPE_LATEST.encode()


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
    """Calls, errors and latency per app, counted in plain numbers on the proxy's one thread and
    turned into Prometheus metrics only when scraped: the proxy is on every call's path, and
    prometheus_client's own counters take a lock per increment."""

    def __init__(self) -> None:
        self._apps: dict[str, _AppStats] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def record(self, app: str, error_code: str | None, started: float) -> None:
        """One call of `app` that began at `started` (perf_counter), failed with `error_code`."""
        stats = self._apps.get(app)
        if stats is None:
            stats = self._apps[app] = _AppStats()
        elapsed = time.perf_counter() - started
        stats.calls += 1
        stats.buckets[bisect.bisect_left(LATENCY_BUCKETS, elapsed)] += 1
        stats.seconds += elapsed
        if error_code is not None:
            stats.errors[error_code] = stats.errors.get(error_code, 0) + 1

    def collect(self) -> Iterator[Metric]:
        """prometheus_client's collector interface: the families, from the numbers."""
        calls = CounterMetricFamily(
            "baetyl_function_calls", "Invocations forwarded", labels=["app"]
        )
        errors = CounterMetricFamily(
            "baetyl_function_errors", "Invocations answered with an error", labels=["app", "code"]
        )
        latency = HistogramMetricFamily(
            "baetyl_function_latency_seconds",
            "Time from request to answer, runtime included",
            labels=["app"],
        )
        bounds = [*(f"{bound:g}" for bound in LATENCY_BUCKETS), "+Inf"]
        for app, stats in sorted(self._apps.items()):
            calls.add_metric([app], stats.calls)
            for code, count in sorted(stats.errors.items()):
                errors.add_metric([app, code], count)
            cumulative = list(itertools.accumulate(stats.buckets))
            latency.add_metric([app], list(zip(bounds, cumulative, strict=True)), stats.seconds)
        yield from (calls, errors, latency)


LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
)  # fmt: skip


@dataclass(slots=True)
class _AppStats:
    calls: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    errors: dict[str, int] = field(default_factory=dict)


class FunctionProxy:
    """Routes calls over a resolver; `serve()` listens until signalled."""

    def __init__(self, resolver: RegistryResolver, settings: ProxySettings) -> None:
        self.resolver = resolver
        self.settings = settings
        self.metrics = Metrics()
        self.pool = UpstreamPool()
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, ready: str = "function proxy serving") -> None:
        """Listen until SIGTERM/SIGINT, then answer the calls in flight (SHUTDOWN_TIMEOUT at
        most) and close every connection. OSError when the address cannot be bound."""
        settings = self.settings
        await asyncio.to_thread(self.resolver.reload)  # the first call already finds its app
        listener = Listener(self.handle, settings.max_body)
        await listener.start(settings.host, settings.port)
        watcher = asyncio.create_task(self.resolver.watch(), name="function-proxy:registry")
        sweeper = asyncio.create_task(self._sweep(listener), name="function-proxy:sweep")
        log.info(ready, extra={"listen": f"{settings.host}:{settings.port}"})
        try:
            await until_signalled()
            log.info("stopping", extra={"in_flight": len(listener.connections)})
            await listener.stop(SHUTDOWN_TIMEOUT)
        finally:
            tasks = [watcher, sweeper, *self._tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.pool.close()

    async def _sweep(self, listener: Listener) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            listener.sweep()
            self.pool.sweep()

    def handle(self, call: Call, answer: Callable[[Reply], None]) -> None:
        """Start answering one call; `answer` gets the reply (callers.Handler)."""
        if call.path == "/metrics" and call.method == "GET":
            answer(Reply(200, generate_latest(self.metrics.registry), _METRICS_TYPE))
            return
        invoke_id = invoke_id_of(call.headers)
        route = _route(call.path)
        if call.method not in METHODS:
            reply = error_reply(405, "ErrMethodNotAllowed", f"{call.method} is not served")
        elif route is None:
            reply = error_reply(404, "ErrNotFound", "call /{app} or /{app}/{function}")
        else:
            _Forwarding(self, call, route, invoke_id, answer).start()
            return
        reply.invoke_id = invoke_id
        answer(reply)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` as a task the proxy owns (cancelled when it stops)."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Forwarding:
    """One call on its way to a runtime: the instances left to try, its deadline, and what
    to do with the outcome. Callbacks drive it; a task only while a connection is opened."""

    __slots__ = ("_answer", "_app", "_call", "_deadline", "_failures", "_function",
                 "_instances", "_invoke_id", "_proxy", "_started")  # fmt: skip

    def __init__(
        self,
        proxy: FunctionProxy,
        call: Call,
        route: tuple[str, str | None],
        invoke_id: bytes,
        answer: Callable[[Reply], None],
    ) -> None:
        self._proxy = proxy
        self._call = call
        self._app, self._function = route
        self._invoke_id = invoke_id
        self._answer = answer
        self._started = time.perf_counter()
        self._deadline = asyncio.get_running_loop().time() + proxy.settings.timeout
        self._instances: Iterator[str] = iter(())
        self._failures: list[str] = []

    def start(self) -> None:
        app, function = self._app, self._function
        try:
            self._instances = iter(self._proxy.resolver.pick(app, function))
        except UnknownApp:
            self._error(404, "ErrAppNotFound", f"no running function app {app!r}")
            return
        except UnknownFunction:
            self._error(404, "ErrFunctionNotFound", f"app {app!r} has no function {function!r}")
            return
        self._try_next()

    def _try_next(self) -> None:
        pool = self._proxy.pool
        loop = asyncio.get_running_loop()
        for address in self._instances:
            if loop.time() >= self._deadline:
                break
            request = encode_request(self._call, address, self._function, self._invoke_id)
            connection = pool.take(address)
            if connection is None:
                self._proxy.spawn(self._open(address, request), f"function-proxy:open-{address}")
            else:
                pool.send(connection, request, self._deadline, self._outcome)
            return
        failures = "; ".join(self._failures)
        self._error(502, "ErrRuntime", f"{self._app}: no runtime instance answered ({failures})")

    async def _open(self, address: str, request: bytes) -> None:
        pool = self._proxy.pool
        try:
            async with asyncio.timeout_at(self._deadline):
                connection = await pool.open(address)
        except TimeoutError:
            self._outcome(TimeoutError())
        except NotReached as exc:
            self._failures.append(str(exc))
            self._try_next()  # never reached the runtime: the next instance may take it
        else:
            pool.send(connection, request, self._deadline, self._outcome)

    def _outcome(self, result: Answer | Exception) -> None:
        app = self._app
        if isinstance(result, Answer):
            reply = _relay(result, app)
            self._finish(reply, "ErrRuntime" if reply.status == 502 else None)
        elif isinstance(result, TimeoutError):
            timeout = self._proxy.settings.timeout
            self._error(504, "ErrTimeout", f"{app}: no answer within {timeout:g} s")
        else:
            self._error(502, "ErrRuntime", f"{app}: the runtime failed: {result}")

    def _error(self, status: int, code: str, message: str) -> None:
        self._finish(error_reply(status, code, message), code)

    def _finish(self, reply: Reply, code: str | None) -> None:
        """Count the call and answer it; `code` is our error code when the proxy made it."""
        # Only apps that exist get a series of their own: a caller inventing app names must
        # not grow the metrics without bound.
        label = UNKNOWN_APP if code == "ErrAppNotFound" else self._app
        failed = (code or str(reply.status)) if reply.status >= 400 else None
        self._proxy.metrics.record(label, failed, self._started)
        reply.invoke_id = self._invoke_id
        self._answer(reply)


def _route(path: str) -> tuple[str, str | None] | None:
    """(app, function) of `/{app}` or `/{app}/{function}`, percent-decoded; None otherwise."""
    parts = path[1:].split("/") if path.startswith("/") else []
    if len(parts) == 1 and parts[0]:
        return unquote(parts[0]), None
    if len(parts) == 2 and parts[0] and parts[1]:
        return unquote(parts[0]), unquote(parts[1])
    return None


def _relay(answer: Answer, app: str) -> Reply:
    """The runtime's answer as the caller's; a runtime error (5xx) becomes 502 with its text."""
    if answer.status >= 500:
        message = answer.body.decode(errors="replace")[:2000]
        with contextlib.suppress(ValueError, AttributeError):
            message = str(json.loads(answer.body).get("message", message))  # the runtime's own
        return error_reply(502, "ErrRuntime", f"{app}: {message}")
    return Reply(answer.status, answer.body, answer.content_type)
