"""The agent's own log: one line per record on stderr (the journal under systemd), JSON or text.

Both formats keep the `extra={...}` fields of a record, because the agent logs facts as fields
(`app`, `version`, `file`) rather than inside sentences, so that they can be searched.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", <extras>, "exception"?}` per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...` per record, for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{key}={value!r}" for key, value in _extras(record).items())
        line = f"{_time(record)} {record.levelname.lower():7} {record.name}: {record.getMessage()}"
        if fields:
            line = f"{line} {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure(
    level: Literal["debug", "info", "warning", "error"] = "info",
    fmt: Literal["json", "text"] = "json",
    *,
    stream: TextIO | None = None,
) -> None:
    """Route every log record to `stream` (stderr) at `level` in format `fmt`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)


def set_level(level: str) -> None:
    """Log at `level` from now on (`debug`, `info`, `warning` or Baetyl's `warn`, `error`)."""
    name = "warning" if level == "warn" else level
    logging.getLogger().setLevel(name.upper())
    # Per-request access lines only when debugging: apps may poll the local API every second.
    access = logging.WARNING if name != "debug" else logging.DEBUG
    logging.getLogger("agent.core.api.access").setLevel(access)
    logging.getLogger("aiohttp.access").setLevel(access)
