"""Bad-request tables: rows `(id, body, status, code, fragment)` run as parametrized tests;
replace tables put the path's name before the body: `(id, name, body, status, code, fragment)`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

Row = tuple[str, Any, int, str, str]
NamedRow = tuple[str, str, Any, int, str, str]
REFUSAL = ("body", "status", "code", "fragment")


def refusals(table: Sequence[Row]) -> pytest.MarkDecorator:
    """`@refusals(TABLE)`: the test runs once per row, named by its id, with `REFUSAL` args."""
    return pytest.mark.parametrize(
        REFUSAL, [row[1:] for row in table], ids=[row[0] for row in table]
    )


def named_refusals(table: Sequence[NamedRow]) -> pytest.MarkDecorator:
    """`@named_refusals(TABLE)`: like `refusals`, with the `name` of the path first."""
    return pytest.mark.parametrize(
        ("name", *REFUSAL), [row[1:] for row in table], ids=[row[0] for row in table]
    )
