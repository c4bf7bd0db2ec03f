"""Where a function app's runtime instances listen, for the proxy (DESIGN §9).

Native mode: the registry file the native backend writes (`<run>/services.json`,
`{app: {service: ["127.0.0.1:port", ...]}}`, ready instances only) and, beside it, the function
index (`functions.json`, `{app: {function: service}}`), both re-read when they change. A function
the index does not name is looked for in every service of its app (the runtime answers 404 for a
function it does not have). Round-robin is per (app, service).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
RELOAD_INTERVAL = 0.5
Stamp = tuple[int, int, int] | None
FUNCTIONS_FILE = "functions.json"
MAX_PICKS = 4096


class UnknownApp(LookupError):
    """No ready instance of the app is known."""


class UnknownFunction(LookupError):
    """The app has no such function."""


@dataclass
class Snapshot:
    """What the files said at their last read."""

    services: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    functions: dict[str, dict[str, str]] = field(default_factory=dict)


class RegistryResolver:
    """Instances from the native backend's files; `watch()` keeps them current."""

    def __init__(self, registry: Path, functions: Path | None = None) -> None:
        self.registry = registry
        self.functions = functions or registry.with_name(FUNCTIONS_FILE)
        self._snapshot = Snapshot()
        self._stamps: tuple[Stamp, Stamp] = (None, None)
        self._cycles: dict[tuple[str, ...], Iterator[int]] = {}
        self._members: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._picks: dict[tuple[str, str | None], tuple[tuple[str, ...], Iterator[int]]] = {}
        """What `pick` found for a call's (app, function), until the files change."""

    def reload(self) -> bool:
        """Blocking: read the files again if they changed; whether anything was read."""
        stamps = (_mtime(self.registry), _mtime(self.functions))
        if stamps == self._stamps:
            return False
        services = _read(self.registry)
        functions = _read(self.functions)
        self._snapshot = Snapshot(
            services={
                str(app): {str(s): [str(a) for a in addrs] for s, addrs in by_service.items()}
                for app, by_service in services.items()
                if isinstance(by_service, dict)
            },
            functions={
                str(app): {str(f): str(s) for f, s in by_function.items()}
                for app, by_function in functions.items()
                if isinstance(by_function, dict)
            },
        )
        self._stamps = stamps
        self._picks.clear()
        return True

    async def watch(self) -> None:
        """Re-read the files whenever they change, until cancelled."""
        while True:
            try:
                await asyncio.to_thread(self.reload)
            except OSError as exc:
                log.warning("registry unreadable", extra={"error": str(exc)})
            await asyncio.sleep(RELOAD_INTERVAL)

    def apps(self) -> list[str]:
        """The apps with ready instances."""
        return sorted(self._snapshot.services)

    def pick(self, app: str, function: str | None) -> list[str]:
        """The instances (`host:port`) to try for one call, the round-robin's next one first.

        UnknownApp when the app has no ready instance, UnknownFunction when the index names the
        app's functions and `function` is not one of them.
        """
        known = self._picks.get((app, function))
        if known is not None:
            addresses, cycle = known
            start = next(cycle)
            return list(addresses[start:] + addresses[:start])
        services = self._snapshot.services.get(app)
        if not services:
            raise UnknownApp(app)
        index = self._snapshot.functions.get(app)
        if function is not None and index:
            if function not in index:
                raise UnknownFunction(function)
            chosen = [index[function]]
        elif function is None and index:
            chosen = [index[next(iter(index))]]
        else:
            chosen = sorted(services)
        addresses = tuple(a for service in chosen for a in services.get(service, []))
        if not addresses:
            raise UnknownApp(app)
        key = (app, *chosen)
        if self._members.get(key) != addresses:
            self._members[key] = addresses
            self._cycles[key] = itertools.cycle(range(len(addresses)))
        if len(self._picks) < MAX_PICKS:  # names callers invent must not grow it without bound
            self._picks[(app, function)] = (addresses, self._cycles[key])
        start = next(self._cycles[key])
        return list(addresses[start:] + addresses[:start])


def _mtime(path: Path) -> Stamp:
    """What changes when the file is replaced (atomic writes give a new inode) or rewritten."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def _read(path: Path) -> dict[str, object]:
    with contextlib.suppress(FileNotFoundError):
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("ignoring an unreadable file", extra={"path": str(path), "error": str(exc)})
            return {}
        return value if isinstance(value, dict) else {}
    return {}
