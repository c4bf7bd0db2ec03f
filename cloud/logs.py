"""Structured logging for the cloud: one JSON object per line, with the `extra` fields kept.

No line may carry a credential, whatever a client sends: `RedactSecrets` blanks bearer tokens,
`Authorization` header values and `token=` query values in a record's text and traceback.
aiohttp logs a malformed request's raw header line (the bearer token with it) at error level,
so the filter sits on aiohttp's own loggers as well as on our handler.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

REDACTED = "<redacted>"
_SECRETS = (
    # The rest of a header line that names Authorization (any case, any escaping after it).
    (re.compile(r"(?i)(authorization\s*[:=]\s*)[^\n]*"), r"\1" + REDACTED),
    # An API token anywhere (they all start with bt_, cloud.services.tokens.TOKEN_PREFIX).
    (re.compile(r"bt_[A-Za-z0-9_\-]+"), "bt_" + REDACTED),
    # An install token in a URL's query (`/v1/init/...?token=`, `/v1/active?token=`).
    (re.compile(r"(?i)([?&]token=)[^&\s'\"]+"), r"\1" + REDACTED),
)
AIOHTTP_LOGGERS = (
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON: time, level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str = "info") -> None:
    """Send JSON log lines to stderr at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("tortoise").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def redact(text: str) -> str:
    """`text` with every credential the patterns recognise replaced by `<redacted>`."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record whose message or traceback holds a credential; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        text = message
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        elif record.exc_text:
            text += "\n" + record.exc_text
        cleaned = redact(text)
        if cleaned != text:
            # The traceback goes into the message, already rendered and cleaned: a formatter
            # would otherwise render the original exception (and its token) again.
            record.msg, record.args = cleaned, None
            record.exc_info, record.exc_text = None, None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and not key.startswith("_"):
                # `extra` fields are logged too (aiohttp's access log puts the request line
                # with its query there).
                record.__dict__[key] = _redact_value(value)
        return True


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value


def redact_library_logs() -> None:
    """Put `RedactSecrets` on aiohttp's loggers (once; called by every `create_app`)."""
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
