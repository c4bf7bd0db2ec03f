"""Judging a corpus of Baetyl's own requests sent to a real cloud: the accounting both corpus
tests share (its bodies, test_baetyl_bodies; its `/v1/yaml` files, test_baetyl_yaml_bodies)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass
class Outcome:
    """How this cloud answered one of Baetyl's requests, and whether Baetyl accepts it."""

    id: str
    status: int
    baetyl_accepts: bool
    message: str

    @property
    def accepted(self) -> bool:
        return self.status < 300

    @property
    def agrees(self) -> bool:
        return self.accepted == self.baetyl_accepts


def judge(
    outcomes: Sequence[Outcome],
    *,
    known: Mapping[str, str],
    not_yet: Mapping[str, str],
    sources: Mapping[str, str],
    summary: str,
) -> None:
    """Fail on a 5xx, on a difference not listed in `known` or `not_yet`, and on a listed one
    that went away (the lists must stay true); print `summary` and every difference."""
    assert [o for o in outcomes if o.status >= 500] == []  # a 5xx is a bug, whatever was sent
    print(f"\n{summary}")
    for outcome in outcomes:
        if not outcome.agrees:
            print(f"  {outcome.id}: {outcome.status} {short(outcome.message)}")
    agreeing = {o.id for o in outcomes if o.agrees}
    assert sorted(agreeing & (set(known) | set(not_yet))) == []
    disagreeing = [
        o for o in outcomes if not o.agrees and o.id not in known and o.id not in not_yet
    ]
    assert disagreeing == [], "\n".join(
        f"{o.id} ({sources[o.id]}): {o.status} {o.message}" for o in disagreeing
    )


def short(message: str) -> str:
    """A message on one line, cut to 300 characters."""
    return re.sub(r"\s+", " ", message)[:300]
