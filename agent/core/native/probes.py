"""Liveness and readiness probes with Kubernetes' semantics: HTTP GET, TCP connect, exec.

A probe first runs `initialDelaySeconds` after the process started, then every `periodSeconds`;
each attempt has `timeoutSeconds`. `failureThreshold` failures in a row flip the result to
failed, `successThreshold` successes in a row flip it back. The instance decides what a flip
means: a failed liveness probe restarts the process, readiness only marks it (not) ready.
HTTP and TCP probes go to 127.0.0.1 unless the probe names a host; HTTPS is not verified
(like the kubelet). An exec probe runs in the instance's directory with its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.contracts.resources import ExecAction, HTTPGetAction, Probe, TCPSocketAction
from agent.core.native import environment

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
_OUTPUT_LIMIT = 200


@dataclass(frozen=True)
class Outcome:
    """One probe attempt: healthy or not, and why."""

    ok: bool
    message: str


async def attempt(probe: Probe, *, env: Mapping[str, str], cwd: Path) -> Outcome:
    """Run `probe` once within its timeout."""
    limit = float(probe.timeout_seconds)
    if probe.http_get is not None:
        return await _http(probe.http_get, limit)
    if probe.tcp_socket is not None:
        return await _tcp(probe.tcp_socket, limit)
    assert probe.exec is not None
    return await _exec(probe.exec, limit, env=env, cwd=cwd)


async def _http(action: HTTPGetAction, limit: float) -> Outcome:
    host = action.host or DEFAULT_HOST
    scheme = action.scheme.lower()
    path = action.path if action.path.startswith("/") else f"/{action.path}"
    url = f"{scheme}://{host}:{action.port}{path}"
    context = None
    if action.scheme == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the kubelet does not verify either
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection(host, action.port, ssl=context)
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{action.port}\r\n"
                "User-Agent: baetyl-probe/1.0\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            )
            writer.write(request.encode("latin-1"))
            await writer.drain()
            status_line = await reader.readline()
    except TimeoutError:
        return Outcome(False, f"HTTP GET {url}: no answer within {limit:g} s")
    except (OSError, ssl.SSLError, UnicodeEncodeError) as exc:
        return Outcome(False, f"HTTP GET {url}: {_reason(exc)}")
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return Outcome(False, f"HTTP GET {url}: not an HTTP answer")
    status = int(parts[1])
    if 200 <= status < 400:
        return Outcome(True, f"HTTP GET {url}: {status}")
    return Outcome(False, f"HTTP GET {url}: status {status}")


async def _tcp(action: TCPSocketAction, limit: float) -> Outcome:
    host = action.host or DEFAULT_HOST
    try:
        async with asyncio.timeout(limit):
            _, writer = await asyncio.open_connection(host, action.port)
    except TimeoutError:
        return Outcome(False, f"TCP {host}:{action.port}: no connection within {limit:g} s")
    except OSError as exc:
        return Outcome(False, f"TCP {host}:{action.port}: {_reason(exc)}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Outcome(True, f"TCP {host}:{action.port}: connected")


async def _exec(action: ExecAction, limit: float, *, env: Mapping[str, str], cwd: Path) -> Outcome:
    argv = [environment.expand(part, env) for part in action.command]
    shown = " ".join(argv)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
    except (OSError, ValueError) as exc:
        return Outcome(False, f"exec {shown!r}: {exc}")
    try:
        async with asyncio.timeout(limit):
            output, _ = await process.communicate()
    except TimeoutError:
        await _kill(process)
        return Outcome(False, f"exec {shown!r}: still running after {limit:g} s")
    except asyncio.CancelledError:
        await _kill(process)
        raise
    text = output.decode("utf-8", errors="replace").strip()
    if len(text) > _OUTPUT_LIMIT:
        text = text[:_OUTPUT_LIMIT] + "…"
    if process.returncode == 0:
        return Outcome(True, f"exec {shown!r}: exit 0")
    said = f": {text}" if text else ""
    return Outcome(False, f"exec {shown!r}: exit code {process.returncode}{said}")


async def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await asyncio.shield(process.wait())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


Flip = Callable[[bool, str], None]
"""Called with (healthy, message) when a probe's result crosses a threshold."""


async def run(
    probe: Probe,
    *,
    started: float,
    env: Mapping[str, str],
    cwd: Path,
    on_flip: Flip,
    initially: bool,
) -> None:
    """Probe forever (until cancelled), calling `on_flip` whenever the result changes.

    `started` is the process start on the monotonic clock; `initially` the result assumed before
    the first flip (liveness: healthy; readiness: not ready).
    """
    delay = started + probe.initial_delay_seconds - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    healthy = initially
    successes = failures = 0
    while True:
        began = time.monotonic()
        outcome = await attempt(probe, env=env, cwd=cwd)
        if outcome.ok:
            successes, failures = successes + 1, 0
            if not healthy and successes >= probe.success_threshold:
                healthy = True
                on_flip(True, outcome.message)
        else:
            successes, failures = 0, failures + 1
            log.debug("probe failed", extra={"detail": outcome.message, "failures": failures})
            if healthy and failures >= probe.failure_threshold:
                healthy = False
                on_flip(False, outcome.message)
            elif not healthy and failures == 1:
                on_flip(False, outcome.message)  # still not ready: keep the reason current
        await asyncio.sleep(max(0.0, began + probe.period_seconds - time.monotonic()))


def probe_env(env: Mapping[str, str], hidden: Sequence[str]) -> dict[str, str]:
    """The instance environment minus `hidden` names (the marker, so a probe is not an instance)."""
    return {name: value for name, value in env.items() if name not in hidden}
