"""What the benchmark asks of the REST API: nodes to create, and the app whose deltas are timed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

NAMESPACE = "default"
DELTA_LABEL = "bench-delta"
CREATE_CONCURRENCY = 8


class ApiError(RuntimeError):
    """A request failed; the message has the status and the body."""


class Api:
    """Calls with the admin token against any replica (they share one database)."""

    def __init__(self, session: aiohttp.ClientSession, token: str) -> None:
        self._session = session
        self._headers = {"Authorization": f"Bearer {token}"}

    async def call(self, base: str, method: str, path: str, body: Any = None) -> Any:
        """One request; the decoded JSON answer, or ApiError."""
        async with self._session.request(
            method, base + path, json=body, headers=self._headers
        ) as response:
            payload = await response.json(content_type=None)
            if response.status != 200:
                raise ApiError(f"{method} {path}: {response.status} {payload}")
            return payload


def node_name(index: int) -> str:
    """Name of simulated node `index` (its nid is `default.<name>`)."""
    return f"fleet-{index:05d}"


def nid(index: int) -> str:
    """The nid of node `index`: the CN of its certificate."""
    return f"{NAMESPACE}.{node_name(index)}"


def node_labels(index: int, delta_nodes: int) -> dict[str, str]:
    """Every node is in fleet `bench`; the first `delta_nodes` are matched by the delta app."""
    return {"fleet": "bench", DELTA_LABEL: "yes" if index < delta_nodes else "no"}


async def create_nodes(
    api: Api,
    base: str,
    indices: Sequence[int],
    *,
    delta_nodes: int,
    progress: Callable[[str], None],
) -> float:
    """Create the nodes through the API (no batch create exists), a few at a time; seconds taken."""
    started = time.monotonic()
    semaphore = asyncio.Semaphore(CREATE_CONCURRENCY)
    done = 0

    async def create(index: int) -> None:
        nonlocal done
        body = {"name": node_name(index), "labels": node_labels(index, delta_nodes)}
        async with semaphore:
            await api.call(base, "POST", "/v1/nodes", body)
        done += 1
        if done % 1000 == 0 or done == len(indices):
            progress(f"created {done}/{len(indices)} nodes ({time.monotonic() - started:.0f} s)")

    await asyncio.gather(*(create(index) for index in indices))
    return time.monotonic() - started


def delta_app(name: str, generation: int) -> dict[str, Any]:
    """A native app on the delta nodes; each generation changes its content, hence its version."""
    return {
        "name": name,
        "mode": "native",
        "selector": f"{DELTA_LABEL}=yes",
        "description": "fleet benchmark: timed from the REST call to the delta at every node",
        "services": [
            {"name": "main", "command": ["sleep", str(3600 + generation)]},
        ],
    }
