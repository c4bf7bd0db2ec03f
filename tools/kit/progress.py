"""Progress lines for long operations: a title, the step's own output indented, then the outcome.

[demo] starting the cloud ... ok (2.1 s)
[bench] fleet: 1000 nodes connected (4.2 s)
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO


class Progress:
    """`[tag] step ... ok (1.2 s)` lines; a step's own output goes indented below its title."""

    def __init__(self, tag: str, stream: TextIO | None = None, *, clock: bool = False) -> None:
        """`clock` prefixes free lines (`say`) with the seconds since this object was made."""
        self._tag = tag
        self._stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._started = time.monotonic()
        self._title: str | None = None
        self._broken = False

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Print the title, run the body, then `ok (seconds)` or `failed (seconds)`."""
        self._title, self._broken = title, False
        self._write(f"[{self._tag}] {title} ...")
        started = time.monotonic()
        outcome = "failed"
        try:
            yield
            outcome = "ok"
        finally:
            elapsed = time.monotonic() - started
            if self._broken:
                self._write(f"[{self._tag}] {title}: {outcome} ({elapsed:.1f} s)\n")
            else:
                self._write(f" {outcome} ({elapsed:.1f} s)\n")
            self._title = None

    def detail(self, line: str) -> None:
        """One line of a step's output, indented."""
        if self._title is not None and not self._broken:
            self._write("\n")
            self._broken = True
        self._write(f"    {line.rstrip()}\n")

    def say(self, text: str) -> None:
        """A line of its own, tagged (and timed with `clock`)."""
        if self._clock:
            self._write(f"[{time.monotonic() - self._started:6.1f} s] {text}\n")
        else:
            self._write(f"[{self._tag}] {text}\n")

    def write(self, text: str) -> None:
        """Text as it is (a summary block)."""
        self._write(text if text.endswith("\n") else f"{text}\n")

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
