"""The node's object cache: configurations' object items downloaded, verified and unpacked once.

Before an app whose volumes mount a configuration with object items is deployed, the engine has
`prepare` make sure every item is in the cache (agent.contracts.objects). An entry is named by
the item's digest (`sha256-<hex>` or `md5-<hex>`; `url-<sha256 of the URL>` for an http item
that gives none), so the same bytes are downloaded once whatever configurations name them, and
kept while a stored configuration names them (`prune`). A download is streamed to a temporary
file, checked against every digest and size the item gives, then unpacked safely
(agent.core.archives) into a temporary directory that is renamed into place: an entry either is
whole or does not exist, and a wrong digest or a hostile archive leaves nothing behind.

Downloads use `urllib` in a worker thread: the agent has no HTTP client of its own (#139) and
this is the one place it downloads from. A URL the server refuses with 401/403/404/410 is
`stale` (a presigned URL that expired): the engine drops the stored configuration and fetches it
again, which brings a fresh URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import ssl
import tempfile
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from agent.contracts.kit.files import BlobWriter, TooLarge
from agent.contracts.objects import HTTP_SOURCE, ObjectItem
from agent.contracts.resources import Configuration
from agent.core.archives import ArchiveError, UnpackLimits, unpack
from agent.core.backend import DeployError

log = logging.getLogger(__name__)
BLOB: Final = "blob"
TREE: Final = "tree"
VOLUMES: Final = "volumes"
"""Configurations' files assembled for pods to mount (config_tree), beside the entries."""
_CHUNK: Final = 256 * 1024
_STALE_STATUSES: Final = frozenset({401, 403, 404, 410})


class ObjectError(Exception):
    """An object item that cannot be put in the cache now; retried with the app's backoff.

    `stale`: the server refused the URL itself (expired or unknown); a fresh copy of the
    configuration (a new presigned URL) is needed.
    """

    def __init__(self, message: str, *, stale: bool = False) -> None:
        super().__init__(message)
        self.stale = stale


@dataclass(frozen=True)
class CacheSettings:
    """Where the cache lies and how much one object may take."""

    root: Path
    ca_file: Path | None = None
    max_bytes: int = 512 * 1024**2
    unpack: UnpackLimits = field(default_factory=UnpackLimits)
    timeout: float = 30.0
    platform: str = ""
    """This node's platform (`linux-amd64`, ...): a program configuration's items of other
    platforms are not downloaded (Configuration.for_platform)."""


def entry_name(item: ObjectItem) -> str:
    """The cache entry of an item: its digest, else a digest of its URL."""
    key = item.digest_key
    if key is not None:
        return key
    return "url-" + hashlib.sha256(item.url.encode()).hexdigest()


def content_path(root: Path, item: ObjectItem) -> Path:
    """Where an item's content is in the cache at `root`: the file, or the unpacked directory."""
    return root / entry_name(item) / (TREE if item.archive else BLOB)


class ObjectCache:
    """Object items on this node's disk, by digest."""

    def __init__(self, settings: CacheSettings) -> None:
        self._settings = settings
        self._locks: dict[str, asyncio.Lock] = {}
        self._pinned: Counter[str] = Counter()
        self.downloads = 0
        """How many downloads completed (tests and logs count on it)."""

    @property
    def root(self) -> Path:
        """The cache directory."""
        return self._settings.root

    def path_of(self, item: ObjectItem) -> Path:
        """Where an item's content is once prepared: the file, or the unpacked directory."""
        return content_path(self.root, item)

    async def prepare(self, configs: Iterable[Configuration]) -> None:
        """Put every object item of `configs` in the cache (ObjectError naming the item if not)."""
        for config in configs:
            if self._settings.platform:
                config = config.for_platform(self._settings.platform)  # noqa: PLW2901
            for key, item in config.object_items().items():
                try:
                    await self.ensure(item)
                except ObjectError as exc:
                    raise ObjectError(
                        f"configuration {config.name!r} object item {key!r}: {exc}",
                        stale=exc.stale,
                    ) from exc

    async def ensure(self, item: ObjectItem) -> Path:
        """The item's content in the cache, downloading and unpacking it first if needed."""
        name = entry_name(item)
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            path = self.path_of(item)
            if await asyncio.to_thread(path.exists):
                return path
            if not item.url:
                raise ObjectError(
                    "the cloud gave no download URL (it does not know the address nodes reach "
                    "it at: baetyl-cloud serve --init-url)",
                    stale=True,
                )
            await asyncio.to_thread(self._fill, item, name)
            self.downloads += 1
            log.info(
                "object downloaded",
                extra={"entry": name, "unpack": item.archive or "-", "source": item.source},
            )
            return path

    @contextlib.contextmanager
    def pinned(self, item: ObjectItem) -> Iterator[None]:
        """Keep `item`'s entry through every prune while the block runs: for an item no
        configuration names, such as the agent wheel of an upgrade (agent.core.upgrade), which
        the engine's prune would otherwise delete under the download."""
        name = entry_name(item)
        self._pinned[name] += 1
        try:
            yield
        finally:
            self._pinned[name] -= 1
            if self._pinned[name] <= 0:
                del self._pinned[name]

    def prune(self, keep: Iterable[Configuration]) -> list[str]:
        """Delete the entries (and assembled volumes) that no configuration of `keep` names and
        nobody pinned; returns their names. Blocking."""
        configs = list(keep)
        wanted = {entry_name(item) for c in configs for item in c.object_items().values()}
        wanted.add(VOLUMES)
        volumes = {volume_name(c) for c in configs}
        removed: list[str] = []
        with contextlib.suppress(FileNotFoundError):
            for entry in self.root.iterdir():
                # A pin is looked up entry by entry (not once): one taken while this runs counts.
                if (
                    entry.name not in wanted
                    and entry.name not in self._pinned
                    and not entry.name.startswith(".")
                ):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry.name)
        with contextlib.suppress(FileNotFoundError):
            for entry in (self.root / VOLUMES).iterdir():
                if entry.name not in volumes and not entry.name.startswith("."):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(f"{VOLUMES}/{entry.name}")
        return removed

    def _fill(self, item: ObjectItem, name: str) -> None:
        entry = self.root / name
        entry.mkdir(parents=True, exist_ok=True, mode=0o755)
        blob = entry / BLOB
        if not blob.exists():
            self._download(item, blob)
        if not item.archive:
            return
        staging = Path(tempfile.mkdtemp(prefix=".tree.", dir=entry))
        try:
            unpack(blob, item.archive, staging / TREE, self._settings.unpack)
            (staging / TREE).replace(entry / TREE)
        except ArchiveError as exc:
            blob.unlink(missing_ok=True)  # the bytes matched their digest: the archive is bad
            raise ObjectError(f"the archive is refused: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        blob.unlink(missing_ok=True)  # unpacked: the archive itself is not needed any more

    def _download(self, item: ObjectItem, blob: Path) -> None:
        request = urllib.request.Request(item.url, headers={"User-Agent": "baetyl-core"})  # noqa: S310 - scheme checked by ObjectItem
        try:
            with (
                urllib.request.urlopen(  # noqa: S310 - http(s) only (ObjectItem)
                    request, timeout=self._settings.timeout, context=self._tls()
                ) as response,
                BlobWriter(blob, max_bytes=self._settings.max_bytes, mode=0o644) as writer,
            ):
                while chunk := response.read(_CHUNK):
                    writer.write(chunk)
                _verify(item, writer.digest().size, writer.digest().md5, writer.digest().sha256)
                writer.commit()
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the answer's connection
            where = "the cloud" if item.source != HTTP_SOURCE else "the server"
            raise ObjectError(
                f"{where} refused the download: HTTP {exc.code} {exc.reason}",
                stale=exc.code in _STALE_STATUSES and item.source != HTTP_SOURCE,
            ) from exc
        except TooLarge as exc:
            raise ObjectError(
                f"the download is larger than this node takes ({self._settings.max_bytes} bytes; "
                "core.yml objects.max_bytes)"
            ) from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise ObjectError(f"the download failed: {reason}") from exc

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        ca = self._settings.ca_file
        if ca is not None and ca.is_file():
            context.load_verify_locations(cafile=str(ca))  # the cloud's CA, besides the system's
        return context


def copy_file(source: Path, target: Path, *, what: str) -> None:
    """Copy one cached file (read-only for the app: 0644, or 0755 if it was executable)."""
    executable = bool(source.stat().st_mode & 0o111)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    mode = 0o755 if executable else 0o644
    try:
        fd = os.open(target, flags, mode)
    except FileExistsError as exc:
        raise DeployError(
            f"{what}: {target.name} already exists (two items or mounts overlap)"
        ) from exc
    with os.fdopen(fd, "wb") as out, source.open("rb") as data:
        os.fchmod(out.fileno(), mode)
        shutil.copyfileobj(data, out)


def copy_tree(source: Path, target: Path, *, what: str) -> None:
    """Copy an unpacked archive from the cache into a volume directory, file by file."""
    for directory, dirs, files in os.walk(source):
        here = target / Path(directory).relative_to(source)
        for name in sorted(dirs):
            (here / name).mkdir(mode=0o755, exist_ok=True)
        for name in sorted(files):
            copy_file(Path(directory) / name, here / name, what=what)


def volume_name(config: Configuration) -> str:
    """The directory name of a configuration's files under `VOLUMES` (`name@version`)."""
    return f"{config.name}@{config.version}"


def config_tree(root: Path, config: Configuration) -> Path:
    """A directory holding a configuration's files — its text items and its prepared object
    items, as a native instance would see them — for a pod to mount from the host (a kube
    node: ConfigMaps cannot hold downloads). Made once per version, atomically. Blocking."""
    target = root / VOLUMES / volume_name(config)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    staging = Path(tempfile.mkdtemp(prefix=".volume.", dir=target.parent))
    try:
        staging.chmod(0o755)
        what = f"configuration {config.name!r}"
        for key, text in sorted(config.text_items().items()):
            (staging / key).write_text(text, encoding="utf-8")
            (staging / key).chmod(0o644)
        for key, item in sorted(config.object_items().items()):
            source = content_path(root, item)
            if not source.exists():
                raise DeployError(f"{what}: object item {key!r} is not in the object cache")
            if item.archive:
                copy_tree(source, staging, what=what)
            else:
                copy_file(source, staging / key, what=what)
        staging.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _verify(item: ObjectItem, size: int, md5: str, sha256: str) -> None:
    """Refuse a download whose size or digests are not the item's."""
    if item.size is not None and size != item.size:
        raise ObjectError(f"downloaded {size} bytes, the item says {item.size}")
    if item.sha256 and sha256 != item.sha256:
        raise ObjectError(f"the download's sha256 is {sha256}, the item says {item.sha256}")
    if item.md5 and md5 != item.md5:
        raise ObjectError(f"the download's md5 is {md5}, the item says {item.md5}")
