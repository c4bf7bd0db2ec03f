"""The agent's log lines: JSON or text, with the record's extra fields kept."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from agent.core import logsetup


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("agent.core.api.access")
    access_level = access.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        access.setLevel(access_level)


@pytest.mark.usefixtures("restore_root_logger")
def test_json_lines_carry_the_extra_fields() -> None:
    stream = io.StringIO()
    logsetup.configure("info", "json", stream=stream)
    logging.getLogger("agent.core.test").info("app started", extra={"app": "a1", "pid": 7})
    logging.getLogger("agent.core.test").debug("not at info level")
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "app started"
    assert (entry["level"], entry["logger"]) == ("info", "agent.core.test")
    assert (entry["app"], entry["pid"]) == ("a1", 7)
    assert entry["time"].endswith("+00:00")


@pytest.mark.usefixtures("restore_root_logger")
def test_text_lines_are_for_people_and_keep_exceptions() -> None:
    stream = io.StringIO()
    logsetup.configure("debug", "text", stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed", extra={"app": "a1"})
    text = stream.getvalue()
    assert " error   x: failed app='a1'\n" in text
    assert "ValueError: boom" in text


@pytest.mark.usefixtures("restore_root_logger")
def test_access_lines_only_when_debugging() -> None:
    logsetup.configure("info", "json", stream=io.StringIO())
    assert not logging.getLogger("agent.core.api.access").isEnabledFor(logging.INFO)
    logsetup.configure("debug", "json", stream=io.StringIO())
    assert logging.getLogger("agent.core.api.access").isEnabledFor(logging.INFO)
