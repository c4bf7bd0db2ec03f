"""Bad-request tables: rows `(id, body, status, code, fragment)` run as parametrized tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

Row = tuple[str, Any, int, str, str]
REFUSAL = ("body", "status", "code", "fragment")


def refusals(table: Sequence[Row]) -> pytest.MarkDecorator:
    """`@refusals(TABLE)`: the test runs once per row, named by its id, with `REFUSAL` args."""
    return pytest.mark.parametrize(
        REFUSAL, [row[1:] for row in table], ids=[row[0] for row in table]
    )
