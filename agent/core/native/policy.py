"""Restart rules and status arithmetic: pure functions of what happened, table-tested.

When an instance's process ends, `decide` says whether it restarts (and after how long) or is done,
following Kubernetes: deployments, daemonsets and statefulsets always restart; jobs (and the
runs of a cronjob) follow `jobConfig.restartPolicy` and `backoffLimit`. `app_status` folds
instance statuses into the app's.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass

from agent.contracts.kit import backoff as exponential  # `backoff` names a Backoff below
from agent.contracts.report import AppStatus
from agent.contracts.resources import Application


class Restart(enum.StrEnum):
    """What happens when an instance's process ends."""

    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


@dataclass(frozen=True)
class RestartRule:
    """The restart policy of one app: from its workload and job configuration."""

    restart: Restart
    backoff_limit: int = 0

    @classmethod
    def for_app(cls, app: Application) -> RestartRule:
        """Always for long-running workloads; the job's restartPolicy/backoffLimit for jobs
        and for each run of a cronjob."""
        if app.workload not in ("job", "cronjob"):
            return cls(Restart.ALWAYS)
        job = app.job_config
        if job is None:
            return cls(Restart.NEVER, 6)
        return cls(Restart(job.restart_policy), job.backoff_limit)

    @property
    def runs_to_completion(self) -> bool:
        """Jobs end (Succeeded/Failed); everything else runs until stopped."""
        return self.restart is not Restart.ALWAYS


@dataclass(frozen=True)
class Backoff:
    """Exponential restart delay: `base * 2**(streak-1)` capped at `cap`; `reset` forgives."""

    base: float
    cap: float
    reset: float

    def delay(self, streak: int) -> float:
        """Seconds to wait before restarting after the `streak`-th quick exit in a row."""
        return exponential.delay(streak, base=self.base, cap=self.cap)


@dataclass(frozen=True)
class Exit:
    """How a process ended: `code` (negative: killed by that signal; None: not known)."""

    code: int | None
    reason: str
    ran_for: float
    forced: bool = False
    """True when we killed it for failing its liveness probe: a failure whatever the code."""

    @property
    def succeeded(self) -> bool:
        """Exit code 0 on its own accord."""
        return self.code == 0 and not self.forced


@dataclass(frozen=True)
class Decision:
    """What to do after an exit, and the counters and cause that go with it."""

    restart: bool
    status: AppStatus
    """The instance's status from now on (while it waits, or for good)."""
    cause: str
    delay: float = 0.0
    streak: int = 0
    failures: int = 0


def decide(
    rule: RestartRule,
    backoff: Backoff,
    exit_: Exit,
    *,
    streak: int,
    failures: int,
    crashloop_threshold: int,
) -> Decision:
    """The next step for an instance whose process just ended.

    `streak` counts exits in a row that each came less than `backoff.reset` seconds after their
    start; it drives the delay and the crash-loop rule. `failures` counts a job's failed runs
    against its backoffLimit.
    """
    streak = 1 if exit_.ran_for >= backoff.reset else streak + 1
    if rule.restart is Restart.ALWAYS:
        delay = backoff.delay(streak)
        looping = streak >= crashloop_threshold
        cause = f"CrashLoopBackOff: {exit_.reason}, restarting in {format_seconds(delay)}"
        if looping:
            cause += f" ({streak} exits in a row)"
        status = AppStatus.FAILED if looping else AppStatus.PENDING
        return Decision(True, status, cause, delay, streak, failures)
    if exit_.succeeded:
        return Decision(False, AppStatus.SUCCEEDED, "", 0.0, 0, failures)
    failures += 1
    if rule.restart is Restart.NEVER:
        return Decision(False, AppStatus.FAILED, exit_.reason, 0.0, streak, failures)
    if failures > rule.backoff_limit:
        cause = (
            f"BackoffLimitExceeded: {exit_.reason} "
            f"({failures} failures, backoffLimit {rule.backoff_limit})"
        )
        return Decision(False, AppStatus.FAILED, cause, 0.0, streak, failures)
    delay = backoff.delay(streak)
    cause = (
        f"CrashLoopBackOff: {exit_.reason}, restarting in {format_seconds(delay)} "
        f"(failure {failures} of backoffLimit {rule.backoff_limit})"
    )
    return Decision(True, AppStatus.PENDING, cause, delay, streak, failures)


def format_seconds(seconds: float) -> str:
    """`8 s`, `0.25 s`, `5 min`: short, and stable for a given delay (no countdown)."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    if seconds >= 10 or math.isclose(seconds, round(seconds)):
        return f"{round(seconds)} s"
    return f"{seconds:.2g} s"


@dataclass(frozen=True)
class InstanceView:
    """What `app_status` needs to know about one instance."""

    name: str
    status: AppStatus
    cause: str


def app_status(
    instances: Iterable[InstanceView], *, expected: int, problem: str = ""
) -> tuple[AppStatus, str]:
    """An app's status and cause from its current-version instances.

    Failed if any instance failed (or the app has a `problem`, such as a failed init service);
    else Pending if any is pending or fewer than `expected` exist; else Succeeded if all
    succeeded; else Running. The cause names the first instance (by name) that explains it.
    """
    views = sorted(instances, key=lambda view: view.name)
    if problem:
        return AppStatus.FAILED, problem
    for view in views:
        if view.status is AppStatus.FAILED:
            return AppStatus.FAILED, f"{view.name}: {view.cause}" if view.cause else view.name
    for view in views:
        if view.status in (AppStatus.PENDING, AppStatus.UNKNOWN):
            return AppStatus.PENDING, f"{view.name}: {view.cause}" if view.cause else ""
    if len(views) < expected:
        return AppStatus.PENDING, f"starting: {len(views)} of {expected} instances created"
    if views and all(view.status is AppStatus.SUCCEEDED for view in views):
        return AppStatus.SUCCEEDED, ""
    return AppStatus.RUNNING, ""
