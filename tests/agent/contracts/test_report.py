"""NodeStats in Baetyl's formats: the figures' text, and what a report may and may not carry."""

from __future__ import annotations

from typing import Any

import pytest

from agent.contracts.report import (
    RESOURCE_KEYS_MAX,
    NodeStats,
    bytes_text,
    cores_text,
    fraction_text,
    reported_problems,
)


@pytest.mark.parametrize(
    ("cores", "text"),
    [(0.25, "0.25"), (4.0, "4"), (0.1234, "0.123"), (1.5, "1.5"), (0.0, "0"), (-0.1, "0")],
)
def test_cores_are_decimal_strings_like_baetyls_view(cores: float, text: str) -> None:
    assert cores_text(cores) == text


@pytest.mark.parametrize(
    ("part", "whole", "text"),
    [
        (1, 8, "0.125"),
        (1, 3, "0.3333"),
        (8, 8, "1"),
        (9, 8, "1"),  # Baetyl's view answers "1" once usage reaches capacity
        (0, 8, "0"),
        (5, 0, "0"),  # no capacity known
        (6.25, 100, "0.0625"),
    ],
)
def test_fractions_are_decimal_strings_from_0_to_1(part: float, whole: float, text: str) -> None:
    assert fraction_text(part, whole) == text


def test_bytes_are_whole_numbers() -> None:
    assert (bytes_text(8 * 2**30), bytes_text(1023.9), bytes_text(-5)) == (
        "8589934592",
        "1023",
        "0",
    )


def test_baetyls_keys_are_read_and_written_with_its_spellings() -> None:
    wire = {
        "ready": True,
        "diskPressure": False,
        "memoryPressure": True,
        "pidPressure": False,
        "NetworkUnavailable": False,
        "usage": {"cpu": "0.25", "memory": "512", "disk": "10", "disk_/data": "4"},
        "capacity": {"cpu": "4", "memory": "1024", "disk": "20", "disk_/data": "8"},
        "percent": {"cpu": "0.0625", "memory": "0.5", "disk": "0.5", "disk_/data": "0.5"},
        "netio": {"netBytesSent": "100", "netBytesRecv": "200", "netPacketsSent": "1"},
    }
    stats = NodeStats.model_validate(wire)
    assert stats.memory_pressure is True
    assert stats.network_unavailable is False
    assert stats.to_wire() == wire


def test_percentages_of_agents_before_decision_150_are_taken_as_fractions() -> None:
    """An agent not yet upgraded (or rolled back) reports numbers from 0 to 100: still valid."""
    legacy = {"ready": True, "usage": {"cpu": "250m"}, "percent": {"cpu": 6.25, "disk": 100}}
    assert not reported_problems({"nodestats": {"h": legacy}}, ["nodestats"])
    assert NodeStats.model_validate(legacy).percent == {"cpu": "0.0625", "disk": "1"}


@pytest.mark.parametrize(
    ("stats", "problem"),
    [
        ({"percent": {"cpu": 250.0}}, "h.percent.cpu: 250.0 is not a fraction"),
        ({"percent": {"cpu": "1.5"}}, "h.percent.cpu: '1.5' is not a fraction"),
        ({"percent": {"cpu": "25%"}}, "h.percent.cpu: '25%' is not a fraction"),
        ({"percent": {"cpu": True}}, "h.percent.cpu: Input should be a valid string"),
        ({"usage": {"cpu": "a lot"}}, "h.usage.cpu: 'a lot' is not a Kubernetes"),
        ({"usage": {"cpu": 0.25}}, "h.usage.cpu: Input should be a valid string"),
        ({"netio": {"netBytesSent": "-1"}}, "h.netio.netBytesSent: String should match"),
        ({"netio": {"netBytesSent": 5}}, "h.netio.netBytesSent: Input should be a valid string"),
        ({"netio": {"bytes": "1"}}, "h.netio.bytes.[key]: Input should be 'netBytesSent'"),
        ({"usage": {"": "1"}}, "h.usage..[key]: String should have at least 1 character"),
        (
            {"usage": {f"disk_/m{i}": "1" for i in range(RESOURCE_KEYS_MAX + 1)}},
            "h.usage: Dictionary should have at most 128 items",
        ),
        ({"diskPressure": "no"}, "h.diskPressure: Input should be a valid boolean"),
    ],
)
def test_a_report_with_stats_in_another_shape_is_refused(
    stats: dict[str, Any], problem: str
) -> None:
    problems = reported_problems({"nodestats": {"h": {"ready": True, **stats}}}, ["nodestats"])
    assert any(p.startswith(f"state.reported.nodestats.{problem}") for p in problems), problems
