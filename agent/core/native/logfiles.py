"""App log files: the child writes straight into them; the agent rotates and reads them.

An instance's stdout and stderr are one file opened with O_APPEND and handed to the process, so
the app keeps logging when the agent is gone (no pipe through the agent that could fill up or
break). Rotation is therefore *copy-truncate*: the agent copies the file to `.1` (shifting older
copies) and truncates the original, and the app's next append lands at the start of the now empty
file. Arbitrary programs cannot be told to reopen their log, so this is the only way that needs
nothing from the app; the price is that lines written between the copy and the truncation (a
few microseconds) are lost.

Lines are not time-stamped (the agent never alters app output). To answer "since N seconds",
the agent samples each file's size every check interval: the size at the newest sample older
than the cut-off is where "recent" begins, to the granularity of the interval. After an agent
restart (no samples yet) a file counts as recent when it was modified after the cut-off.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MAX_SAMPLES = 4096
"""Size samples kept per file (at the default 5 s interval: well over 5 hours)."""
_CHUNK = 64 * 1024


def open_for_child(path: Path) -> int:
    """An O_APPEND descriptor of `path` (created 0640) for a child's stdout and stderr."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)


def backups(path: Path, count: int) -> list[Path]:
    """The rotated copies of `path`, newest first: `x.log.1`, `x.log.2`, …"""
    return [path.with_name(f"{path.name}.{n}") for n in range(1, count + 1)]


def rotate_if_needed(path: Path, *, max_bytes: int, keep: int) -> bool:
    """Copy-truncate `path` when it is larger than `max_bytes`; True if it rotated."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size <= max_bytes:
        return False
    copies = backups(path, keep)
    if copies:
        with contextlib.suppress(FileNotFoundError):
            copies[-1].unlink()
        for older, newer in zip(reversed(copies[1:]), reversed(copies[:-1]), strict=True):
            with contextlib.suppress(FileNotFoundError):
                newer.replace(older)
        shutil.copyfile(path, copies[0])
    os.truncate(path, 0)
    return True


@dataclass
class SizeSamples:
    """(wall time, size) of one log file, oldest first; cleared when the file is truncated."""

    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    truncated_at: float | None = None

    def add(self, now: float, size: int) -> None:
        """Record the file's size; a size smaller than the last one means it was truncated."""
        if self.samples and size < self.samples[-1][1]:
            self.reset(now)
        if not self.samples or self.samples[-1][1] != size:
            self.samples.append((now, size))

    def reset(self, now: float) -> None:
        """The file was truncated at `now`: earlier offsets mean nothing any more."""
        self.samples.clear()
        self.truncated_at = now

    def offset_at(self, cutoff: float) -> int | None:
        """Bytes the file held at `cutoff`, if the samples know; None when they cannot tell."""
        known = None
        for when, size in self.samples:
            if when > cutoff:
                break
            known = size
        if known is not None:
            return known
        if self.truncated_at is not None and self.truncated_at <= cutoff:
            return 0
        return None


def read_recent(
    path: Path,
    *,
    keep: int,
    tail_lines: int | None,
    cutoff: float | None,
    samples: SizeSamples | None,
    max_bytes: int,
) -> list[str]:
    """The last lines of one instance's log (current file, then its rotated copies).

    `tail_lines` limits the count, `cutoff` (wall time) keeps what was written after it, and at
    most `max_bytes` of text are read; an incomplete first line is dropped.
    """
    parts: list[str] = []
    budget = max_bytes
    wanted = tail_lines
    for number, file in enumerate([path, *backups(path, keep)]):
        if budget <= 0 or (wanted is not None and wanted <= 0):
            break
        start = 0
        try:
            stat = file.stat()
        except FileNotFoundError:
            continue
        if cutoff is not None:
            if stat.st_mtime < cutoff:
                break  # this copy and every older one were last written before the cut-off
            offset = samples.offset_at(cutoff) if number == 0 and samples is not None else None
            start = offset or 0
        lines = _tail(file, start=start, lines=wanted, max_bytes=budget)
        budget -= sum(len(line) + 1 for line in lines)
        if wanted is not None:
            wanted -= len(lines)
        parts = lines + parts
        if cutoff is not None and start > 0:
            break  # the cut-off falls inside the current file: older copies are older still
    return parts


def last_line(path: Path, *, max_bytes: int = 4096, max_length: int = 300) -> str:
    """Blocking: the last non-empty line of a log (at most `max_length` characters), "" when
    there is none: what a process said last before it exited, for the instance's cause."""
    try:
        lines = _tail(path, start=0, lines=8, max_bytes=max_bytes)
    except OSError:
        return ""
    for line in reversed(lines):
        if line.strip():
            text = line.strip()
            return text if len(text) <= max_length else text[: max_length - 1] + "…"
    return ""


def _tail(path: Path, *, start: int, lines: int | None, max_bytes: int) -> list[str]:
    """Up to `lines` last lines of `path` after byte `start`, reading at most `max_bytes`."""
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        begin = max(start, end - max_bytes)
        if lines is None:
            handle.seek(begin)
            data = handle.read(end - begin)
        else:
            data = b""
            position = end
            while position > begin and data.count(b"\n") <= lines:
                step = min(_CHUNK, position - begin)
                position -= step
                handle.seek(position)
                data = handle.read(step) + data
            begin = position
    if begin > start and b"\n" in data:
        data = data.split(b"\n", 1)[1]  # drop the partial first line
    text = data.decode("utf-8", errors="replace")
    result = text.split("\n")
    if result and result[-1] == "":
        result.pop()
    if lines is not None:
        result = result[-lines:] if lines else []
    return result


def merge(named: Sequence[tuple[str, list[str]]]) -> str:
    """One text from several instances' lines, prefixed `[name] ` when there is more than one."""
    if len(named) == 1:
        lines: Iterable[str] = named[0][1]
    else:
        lines = (f"[{name}] {line}" for name, part in named for line in part)
    text = "\n".join(lines)
    return text + "\n" if text else ""


class LogKeeper:
    """Rotates the app log files and answers log queries; thread-safe, blocking methods."""

    def __init__(self, *, max_bytes: int, keep: int, read_limit: int) -> None:
        self.max_bytes = max_bytes
        self.keep = keep
        self.read_limit = read_limit
        self._samples: dict[Path, SizeSamples] = {}
        self._lock = threading.Lock()

    def check(self, paths: Iterable[Path]) -> None:
        """Rotate files past the size limit and sample every file's size."""
        wanted = set(paths)
        with self._lock:
            for path in wanted:
                samples = self._samples.setdefault(path, SizeSamples())
                now = time.time()
                if rotate_if_needed(path, max_bytes=self.max_bytes, keep=self.keep):
                    samples.reset(now)
                try:
                    samples.add(now, path.stat().st_size)
                except FileNotFoundError:
                    continue

    def read(self, directory: Path, *, tail_lines: int | None, since_seconds: int | None) -> str:
        """The recent lines of every `*.log` in `directory`, prefixed by file stem if several."""
        paths = sorted(directory.glob("*.log"))
        if not paths:
            return ""
        cutoff = None if since_seconds is None else time.time() - since_seconds
        share = max(1, self.read_limit // len(paths))
        named = []
        with self._lock:
            for path in paths:
                lines = read_recent(
                    path,
                    keep=self.keep,
                    tail_lines=tail_lines,
                    cutoff=cutoff,
                    samples=self._samples.get(path),
                    max_bytes=share,
                )
                named.append((path.stem, lines))
        return merge(named)
