"""Restart rules and status folding (pure functions)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from agent.contracts.report import AppStatus
from agent.core.native.policy import (
    Backoff,
    Decision,
    Exit,
    InstanceView,
    Restart,
    RestartRule,
    app_status,
    decide,
    format_seconds,
)
from tests.agent.core.native.kit import application

BACKOFF = Backoff(base=1.0, cap=300.0, reset=600.0)
ALWAYS = RestartRule(Restart.ALWAYS)
CRASH = Exit(3, "exited with code 3", ran_for=2.0)


@pytest.mark.parametrize(
    ("streak", "delay"),
    [(0, 0.0), (1, 1.0), (2, 2.0), (4, 8.0), (9, 256.0), (10, 300.0), (99, 300.0)],
)
def test_backoff_doubles_from_base_up_to_the_cap(streak: int, delay: float) -> None:
    assert BACKOFF.delay(streak) == delay


@pytest.mark.parametrize(
    ("rule", "exit_", "streak", "failures", "expected"),
    [
        (
            ALWAYS,
            CRASH,
            0,
            0,
            Decision(
                True,
                AppStatus.PENDING,
                "CrashLoopBackOff: exited with code 3, restarting in 1 s",
                1.0,
                1,
                0,
            ),
        ),
        (
            ALWAYS,
            CRASH,
            2,
            0,
            Decision(
                True,
                AppStatus.FAILED,
                "CrashLoopBackOff: exited with code 3, restarting in 4 s (3 exits in a row)",
                4.0,
                3,
                0,
            ),
        ),
        (
            ALWAYS,
            Exit(0, "exited with code 0", 2.0),
            0,
            0,
            Decision(
                True,
                AppStatus.PENDING,
                "CrashLoopBackOff: exited with code 0, restarting in 1 s",
                1.0,
                1,
                0,
            ),
        ),
        (
            ALWAYS,
            Exit(3, "exited with code 3", 601.0),
            7,
            0,
            Decision(
                True,
                AppStatus.PENDING,
                "CrashLoopBackOff: exited with code 3, restarting in 1 s",
                1.0,
                1,
                0,
            ),
        ),
        (
            RestartRule(Restart.NEVER),
            Exit(0, "exited with code 0", 1.0),
            0,
            0,
            Decision(False, AppStatus.SUCCEEDED, "", 0.0, 0, 0),
        ),
        (
            RestartRule(Restart.NEVER),
            CRASH,
            0,
            0,
            Decision(False, AppStatus.FAILED, "exited with code 3", 0.0, 1, 1),
        ),
        (
            RestartRule(Restart.ON_FAILURE, 2),
            CRASH,
            1,
            1,
            Decision(
                True,
                AppStatus.PENDING,
                "CrashLoopBackOff: exited with code 3, restarting in 2 s "
                "(failure 2 of backoffLimit 2)",
                2.0,
                2,
                2,
            ),
        ),
        (
            RestartRule(Restart.ON_FAILURE, 2),
            CRASH,
            2,
            2,
            Decision(
                False,
                AppStatus.FAILED,
                "BackoffLimitExceeded: exited with code 3 (3 failures, backoffLimit 2)",
                0.0,
                3,
                3,
            ),
        ),
        (
            RestartRule(Restart.ON_FAILURE, 2),
            Exit(0, "liveness probe failed: x", 1.0, forced=True),
            0,
            0,
            Decision(
                True,
                AppStatus.PENDING,
                "CrashLoopBackOff: liveness probe failed: x, restarting in 1 s "
                "(failure 1 of backoffLimit 2)",
                1.0,
                1,
                1,
            ),
        ),
        (
            RestartRule(Restart.NEVER),
            Exit(None, "ended while the agent was not running", math.inf),
            0,
            0,
            Decision(False, AppStatus.FAILED, "ended while the agent was not running", 0.0, 1, 1),
        ),
    ],
)
def test_decide_follows_kubernetes_restart_policies(
    rule: RestartRule, exit_: Exit, streak: int, failures: int, expected: Decision
) -> None:
    got = decide(rule, BACKOFF, exit_, streak=streak, failures=failures, crashloop_threshold=3)
    assert got == expected


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({}, RestartRule(Restart.ALWAYS)),
        ({"workload": "daemonset"}, RestartRule(Restart.ALWAYS)),
        ({"workload": "job"}, RestartRule(Restart.NEVER, 6)),
        (
            {"workload": "job", "jobConfig": {"restartPolicy": "OnFailure", "backoffLimit": 1}},
            RestartRule(Restart.ON_FAILURE, 1),
        ),
        ({"workload": "cronjob", "cronTime": "@hourly"}, RestartRule(Restart.NEVER, 6)),
        (
            {
                "workload": "cronjob",
                "cronTime": "*/5 * * * *",
                "jobConfig": {"restartPolicy": "OnFailure", "backoffLimit": 2},
            },
            RestartRule(Restart.ON_FAILURE, 2),
        ),
    ],
)
def test_restart_rule_comes_from_the_workload(fields: dict[str, Any], rule: RestartRule) -> None:
    assert RestartRule.for_app(application(**fields)) == rule


def _view(name: str, status: AppStatus, cause: str = "") -> InstanceView:
    return InstanceView(name, status, cause)


@pytest.mark.parametrize(
    ("views", "expected_count", "problem", "result"),
    [
        ([], 0, "", (AppStatus.RUNNING, "")),
        ([], 2, "", (AppStatus.PENDING, "starting: 0 of 2 instances created")),
        ([_view("a", AppStatus.RUNNING)], 1, "", (AppStatus.RUNNING, "")),
        (
            [_view("b", AppStatus.PENDING, "not ready: x"), _view("a", AppStatus.RUNNING)],
            2,
            "",
            (AppStatus.PENDING, "b: not ready: x"),
        ),
        (
            [_view("a", AppStatus.PENDING, "p"), _view("b", AppStatus.FAILED, "boom")],
            2,
            "",
            (AppStatus.FAILED, "b: boom"),
        ),
        (
            [_view("a", AppStatus.SUCCEEDED), _view("b", AppStatus.SUCCEEDED)],
            2,
            "",
            (AppStatus.SUCCEEDED, ""),
        ),
        (
            [_view("a", AppStatus.SUCCEEDED), _view("b", AppStatus.RUNNING)],
            2,
            "",
            (AppStatus.RUNNING, ""),
        ),
        ([_view("a", AppStatus.RUNNING)], 1, "init failed", (AppStatus.FAILED, "init failed")),
    ],
)
def test_app_status_folds_instance_statuses(
    views: list[InstanceView],
    expected_count: int,
    problem: str,
    result: tuple[AppStatus, str],
) -> None:
    assert app_status(views, expected=expected_count, problem=problem) == result


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.1, "0.1 s"),
        (0.25, "0.25 s"),
        (1.0, "1 s"),
        (8.0, "8 s"),
        (12.4, "12 s"),
        (120.0, "2 min"),
        (300.0, "5 min"),
    ],
)
def test_delays_read_short_and_stable(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text
