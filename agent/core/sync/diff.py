"""The smallest shadow patch that turns one reported section into another.

Reports send only what changed since the last accepted report (DESIGN §8); `merge(old,
diff(old, new)) == new` is the rule, checked by a property test. Values in `new` are never null:
a null in a patch deletes its key.
"""

from __future__ import annotations

from typing import Any

from agent.contracts.shadow import json_equal

Section = dict[str, Any]


def diff(old: Section, new: Section) -> Section:
    """The patch that `shadow.merge` applies to `old` to get `new`."""
    patch: Section = {}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
            continue
        before = old[key]
        if isinstance(before, dict) and isinstance(value, dict):
            inner = diff(before, value)
            if inner:
                patch[key] = inner
        elif not json_equal(before, value):
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch
