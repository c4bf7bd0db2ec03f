"""The agent's local store (DESIGN §8): what it needs to keep every app running with no cloud.

It holds the last desired section with its shadow version, the last accepted reported section,
every fetched resource (immutable per (kind, name, version)) and the backends' bookkeeping. Each
item is one JSON file replaced by write-rename (agent.contracts.kit.files), so a kill at any
instant leaves the old or the new content. Bad content (disk damage, a hand edit) never stops the
agent: a bad resource is dropped so that it is fetched again; a bad desired, reported or state
file is moved aside to `<file>.corrupt` and treated as absent, with an error in the log.

Layout under the root (mode 0700, files 0600):

    desired.json                         {"format": 1, "version": N, "section": {...}}
    reported.json                        same shape: the last reported section the cloud accepted
    resources/<kind>/<name>@<version>.json
    state/<key>.json                     backend bookkeeping, one blob per key

`StoreFiles` does the blocking file work (and is what tests drive directly); `LocalStore` is the
async face the agent uses: it encodes in the event loop and runs file I/O in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from agent.contracts.kit import files
from agent.contracts.resources import Application, Configuration, ResourceKind, Secret
from agent.contracts.wire import PayloadError, decode

log = logging.getLogger(__name__)

FORMAT = 1
Resource = Application | Configuration | Secret
ResourceKey = tuple[ResourceKind, str, str]
"""(kind, name, version): the identity of a stored resource."""

_MODELS: dict[ResourceKind, type[Resource]] = {
    ResourceKind.APPLICATION: Application,
    ResourceKind.CONFIGURATION: Configuration,
    ResourceKind.SECRET: Secret,
}
_NAME_RE = re.compile(r"^[a-z0-9][-a-z0-9.]{0,61}[a-z0-9]$")
_VERSION_RE = re.compile(r"^[-._a-zA-Z0-9]{1,64}$")
_STATE_KEY_RE = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,127}$")


class StoreError(Exception):
    """A store operation that cannot be done as asked (a bad key); disk errors stay OSError."""


@dataclass(frozen=True)
class Snapshot:
    """A shadow section as last saved, with the shadow version it belongs to."""

    section: dict[str, Any]
    version: int


def kind_of(resource: Resource) -> ResourceKind:
    """The kind of a resource model."""
    if isinstance(resource, Application):
        return ResourceKind.APPLICATION
    if isinstance(resource, Configuration):
        return ResourceKind.CONFIGURATION
    return ResourceKind.SECRET


class StoreFiles:
    """The blocking implementation of the store; every method is safe to run in a thread."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self) -> None:
        """Create the layout (owner-only) and delete temporaries left by an interrupted write."""
        for directory in (
            self.root,
            self.root / "state",
            *(self.root / "resources" / kind for kind in ResourceKind),
        ):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            files.remove_stale_temporaries(directory)
        self.root.chmod(0o700)  # an existing directory may have been created wider

    # --- shadow sections -------------------------------------------------------------------

    def load_desired(self) -> Snapshot | None:
        """The last desired section and its version; None if never saved or unreadable."""
        return self._load_snapshot(self.root / "desired.json")

    def save_desired(self, section: dict[str, Any], version: int) -> None:
        """Replace the stored desired section (persisted before the engine acts on it)."""
        self.write(self.root / "desired.json", encode_snapshot(section, version))

    def load_reported(self) -> Snapshot | None:
        """The last reported section the cloud accepted; None if never saved or unreadable."""
        return self._load_snapshot(self.root / "reported.json")

    def save_reported(self, section: dict[str, Any], version: int) -> None:
        """Replace the stored reported section, so a restarted agent reports only changes."""
        self.write(self.root / "reported.json", encode_snapshot(section, version))

    # --- resources -------------------------------------------------------------------------

    def save_resource(self, resource: Resource) -> bool:
        """Store a fetched resource; False (and nothing written) if that version is stored."""
        return self.write_resource(
            kind_of(resource), resource.name, resource.version, encode(resource)
        )

    def write_resource(self, kind: ResourceKind, name: str, version: str, data: bytes) -> bool:
        """`save_resource` of already encoded JSON: versions are immutable, never rewritten."""
        path = self._resource_path(kind, name, version)
        if path.exists():
            return False
        files.atomic_write(path, data, mode=0o600)
        return True

    @overload
    def load_resource(
        self, kind: Literal[ResourceKind.APPLICATION], name: str, version: str
    ) -> Application | None: ...
    @overload
    def load_resource(
        self, kind: Literal[ResourceKind.CONFIGURATION], name: str, version: str
    ) -> Configuration | None: ...
    @overload
    def load_resource(
        self, kind: Literal[ResourceKind.SECRET], name: str, version: str
    ) -> Secret | None: ...
    @overload
    def load_resource(self, kind: ResourceKind, name: str, version: str) -> Resource | None: ...
    def load_resource(self, kind: ResourceKind, name: str, version: str) -> Resource | None:
        """The stored resource, or None if absent; a damaged file is deleted (fetch it again)."""
        path = self._resource_path(kind, name, version)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            resource = decode(_MODELS[kind], raw)
        except PayloadError as exc:
            problem = str(exc)
        else:
            if (resource.name, resource.version) == (name, version):
                return resource
            problem = f"the file holds {resource.name!r} version {resource.version!r}"
        log.warning(
            "dropping a damaged resource file; it will be fetched again",
            extra={"file": str(path), "problem": problem},
        )
        path.unlink(missing_ok=True)
        return None

    def list_resources(self) -> set[ResourceKey]:
        """Every stored (kind, name, version), from the file names alone."""
        found: set[ResourceKey] = set()
        for kind in ResourceKind:
            directory = self.root / "resources" / kind
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                key = _parse_resource_file(kind, path.name)
                if key is not None:
                    found.add(key)
        return found

    def prune(self, keep: set[ResourceKey]) -> set[ResourceKey]:
        """Delete every stored resource not in `keep`; returns what was deleted."""
        removed = self.list_resources() - keep
        for kind, name, version in removed:
            self._resource_path(kind, name, version).unlink(missing_ok=True)
        for kind in {kind for kind, _, _ in removed}:
            files.sync_directory(self.root / "resources" / kind)
        return removed

    # --- backend bookkeeping ---------------------------------------------------------------

    def load_state(self, key: str) -> dict[str, Any] | None:
        """The blob saved under `key`, or None if never saved or unreadable."""
        path = self.state_path(key)
        value = self._read_json(path)
        if value is None or isinstance(value, dict):
            return value
        self._quarantine(path, "not a JSON object")
        return None

    def save_state(self, key: str, value: dict[str, Any]) -> None:
        """Replace the blob under `key`."""
        self.write(self.state_path(key), encode(value))

    def delete_state(self, key: str) -> None:
        """Forget the blob under `key` (no error if there is none)."""
        self.state_path(key).unlink(missing_ok=True)

    # --- plumbing --------------------------------------------------------------------------

    def write(self, path: Path, data: bytes) -> None:
        """Atomically replace `path` with `data` (owner-only)."""
        files.atomic_write(path, data, mode=0o600)

    def _load_snapshot(self, path: Path) -> Snapshot | None:
        value = self._read_json(path)
        if value is None:
            return None
        if (
            isinstance(value, dict)
            and value.get("format") == FORMAT
            and isinstance(value.get("section"), dict)
            and type(value.get("version")) is int
            and value["version"] >= 0
        ):
            return Snapshot(section=value["section"], version=value["version"])
        self._quarantine(path, f"not a format-{FORMAT} snapshot")
        return None

    def _read_json(self, path: Path) -> Any:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            self._quarantine(path, f"not JSON ({exc})")
            return None

    def _quarantine(self, path: Path, problem: str) -> None:
        aside = path.with_name(path.name + ".corrupt")
        path.replace(aside)
        log.error(
            "a store file is damaged; moved aside and starting without it",
            extra={"file": str(path), "moved_to": str(aside), "problem": problem},
        )

    def _resource_path(self, kind: ResourceKind, name: str, version: str) -> Path:
        kind = ResourceKind(kind)
        if not _NAME_RE.match(name):
            raise StoreError(f"cannot store {kind} {name!r}: not a valid resource name")
        if not _VERSION_RE.match(version):
            raise StoreError(f"cannot store {kind} {name!r} version {version!r}: bad version")
        return self.root / "resources" / kind / f"{name}@{version}.json"

    def state_path(self, key: str) -> Path:
        """The file of state blob `key`; StoreError for a key that is not a plain file name."""
        if not _STATE_KEY_RE.match(key):
            raise StoreError(f"state key {key!r} must match {_STATE_KEY_RE.pattern}")
        return self.root / "state" / f"{key}.json"


def encode(value: Resource | dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of a resource (wire form) or a JSON object."""
    data = value.to_wire() if not isinstance(value, dict) else value
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def encode_snapshot(section: dict[str, Any], version: int) -> bytes:
    """The file content of a desired/reported snapshot."""
    if type(version) is not int or version < 0:
        raise StoreError(f"a shadow version must be an integer >= 0 (got {version!r})")
    return encode({"format": FORMAT, "version": version, "section": section})


def _parse_resource_file(kind: ResourceKind, file_name: str) -> ResourceKey | None:
    stem = file_name.removesuffix(".json")
    name, at, version = stem.partition("@")
    if stem == file_name or not at or not _NAME_RE.match(name) or not _VERSION_RE.match(version):
        return None  # a temporary, a moved-aside file or something not ours
    return (kind, name, version)


class LocalStore:
    """The async store: values are encoded in the caller's loop, files written in a thread.

    Encoding first means a caller may keep mutating its dicts after `await save_...()` returns
    without racing the writer thread. Writes to the same file are serialized, so two saves of
    the desired section land in the order they were awaited.
    """

    def __init__(self, root: Path) -> None:
        self.files = StoreFiles(root)
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def root(self) -> Path:
        """The store directory."""
        return self.files.root

    async def open(self) -> None:
        """Create the layout and clean up after a crash; call once at start."""
        await asyncio.to_thread(self.files.open)

    async def load_desired(self) -> Snapshot | None:
        """See StoreFiles.load_desired."""
        return await asyncio.to_thread(self.files.load_desired)

    async def save_desired(self, section: dict[str, Any], version: int) -> None:
        """See StoreFiles.save_desired."""
        await self._write("desired", self.root / "desired.json", encode_snapshot(section, version))

    async def load_reported(self) -> Snapshot | None:
        """See StoreFiles.load_reported."""
        return await asyncio.to_thread(self.files.load_reported)

    async def save_reported(self, section: dict[str, Any], version: int) -> None:
        """See StoreFiles.save_reported."""
        data = encode_snapshot(section, version)
        await self._write("reported", self.root / "reported.json", data)

    async def save_resource(self, resource: Resource) -> bool:
        """See StoreFiles.save_resource."""
        data = encode(resource)
        kind = kind_of(resource)
        return await asyncio.to_thread(
            self.files.write_resource, kind, resource.name, resource.version, data
        )

    @overload
    async def load_resource(
        self, kind: Literal[ResourceKind.APPLICATION], name: str, version: str
    ) -> Application | None: ...
    @overload
    async def load_resource(
        self, kind: Literal[ResourceKind.CONFIGURATION], name: str, version: str
    ) -> Configuration | None: ...
    @overload
    async def load_resource(
        self, kind: Literal[ResourceKind.SECRET], name: str, version: str
    ) -> Secret | None: ...
    @overload
    async def load_resource(
        self, kind: ResourceKind, name: str, version: str
    ) -> Resource | None: ...
    async def load_resource(self, kind: ResourceKind, name: str, version: str) -> Resource | None:
        """See StoreFiles.load_resource."""
        return await asyncio.to_thread(self.files.load_resource, kind, name, version)

    async def list_resources(self) -> set[ResourceKey]:
        """See StoreFiles.list_resources."""
        return await asyncio.to_thread(self.files.list_resources)

    async def prune(self, keep: set[ResourceKey]) -> set[ResourceKey]:
        """See StoreFiles.prune."""
        return await asyncio.to_thread(self.files.prune, set(keep))

    async def load_state(self, key: str) -> dict[str, Any] | None:
        """See StoreFiles.load_state."""
        return await asyncio.to_thread(self.files.load_state, key)

    async def save_state(self, key: str, value: dict[str, Any]) -> None:
        """See StoreFiles.save_state."""
        path = self.files.state_path(key)
        await self._write(f"state:{key}", path, encode(value))

    async def delete_state(self, key: str) -> None:
        """See StoreFiles.delete_state."""
        async with self._lock(f"state:{key}"):
            await asyncio.to_thread(self.files.delete_state, key)

    async def _write(self, lock: str, path: Path, data: bytes) -> None:
        async with self._lock(lock):
            await asyncio.to_thread(self.files.write, path, data)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())
