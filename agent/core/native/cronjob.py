"""A cronjob app on a native node: the timer of its schedule and the runs it starts (#152).

As a Kubernetes CronJob with `concurrencyPolicy: Forbid` and no `startingDeadlineSeconds`: at
each time of the app's `cronTime` (agent.contracts.cron, in UTC) one run starts, which runs the
app's services to completion as a native `job` app's are (AppRuntime.run_job). A time that comes
while the run before is still going is skipped and counted. Times that passed while no agent ran
are not run in a burst: the latest of them runs once, as soon as the agent is back, and the
others are counted as missed. The schedule's state is bookkept, so after an agent restart the
schedule goes on where it was, and a run that was going is resumed, its processes adopted.

The timer sleeps until the next time (a `Clock`, injectable for tests), waking earlier only when
the app changes or at most every `CLOCK_CHECK` seconds, so that a wall clock set forward meanwhile
(NTP on a board without a real-time clock) delays a run by that much at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from agent.contracts import cron
from agent.contracts.kit.aiotasks import Tasks
from agent.contracts.report import AppStatus, CronJobStats
from agent.core.native.bookkeeping import CronRecord
from agent.core.native.instance import Hooks

log = logging.getLogger(__name__)

CLOCK_CHECK = 600.0
"""The longest the timer sleeps without looking at the wall clock again (seconds)."""
COUNT_LIMIT = 100
"""Passed times are counted up to this many at once (Kubernetes' controller stops there too)."""

RunJob = Callable[[str, bool], Awaitable[tuple[AppStatus, str]]]
"""Run the app's services at a version to completion (resume: adopt what runs): the result."""
Forget = Callable[[], None]
"""Drop the instances of the run before (all finished), at once: a new run is never bookkept
together with them, so a resumed run cannot take their results for its own."""


class Clock(Protocol):
    """The wall clock the timer reads and sleeps on."""

    def now(self) -> datetime:
        """The current time (aware)."""

    async def sleep_until(self, moment: datetime | None, wake: asyncio.Event) -> None:
        """Return at `moment` (None: not for a time) or once `wake` is set; may return early."""


class SystemClock:
    """The host's clock; a sleep lasts `check` seconds at most (see the module docstring)."""

    def __init__(self, check: float = CLOCK_CHECK) -> None:
        self.check = check

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime | None, wake: asyncio.Event) -> None:
        """Wait on `wake` until `moment` (at most `check` seconds)."""
        delay = self.check
        if moment is not None:
            delay = min(delay, max(0.0, (moment - self.now()).total_seconds()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await wake.wait()


@dataclass(frozen=True)
class Tick:
    """What the timer does when it wakes at `now`."""

    due: datetime | None
    """The time to run now: the latest time of the schedule in (after, now]; None: nothing."""
    passed: int
    """How many times of the schedule lie in (after, now] (at most COUNT_LIMIT)."""
    next: datetime | None
    """The first time of the schedule after both `after` and `now`: when to wake."""


def tick(schedule: cron.CronSchedule, *, after: datetime, now: datetime) -> Tick:
    """The times that came since `after` (the watermark) and the next one; pure.

    A wall clock set back leaves the watermark ahead of `now`: nothing is due until the clock
    passes it again, so no time ever runs twice.
    """
    due = schedule.latest_until(now)
    passed = 0
    if due is not None and due > after:
        moment = schedule.next_after(after)
        while moment is not None and moment <= due and passed < COUNT_LIMIT:
            passed += 1
            moment = schedule.next_after(moment)
    else:
        due = None
    return Tick(due=due, passed=passed, next=schedule.next_after(max(after, now)))


class CronJob:
    """The schedule of one app: a timer task and, while a run goes, a run task (both owned by
    `tasks`). State changes go through `hooks` (status notification, bookkeeping)."""

    def __init__(
        self,
        app: str,
        *,
        schedule: str,
        version: str,
        record: CronRecord | None,
        clock: Clock,
        tasks: Tasks,
        hooks: Hooks,
        run_job: RunJob,
        forget_finished: Forget,
    ) -> None:
        self.app = app
        self._clock = clock
        self._tasks = tasks
        self._hooks = hooks
        self._run_job = run_job
        self._forget_finished = forget_finished
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._run: asyncio.Task[None] | None = None
        self._next: datetime | None = None
        self.record = record or CronRecord(schedule=schedule, watermark=clock.now())
        self._schedule: cron.CronSchedule
        self._version: str
        self.retarget(schedule, version)

    # -- control -----------------------------------------------------------------------------

    def retarget(self, schedule: str, version: str) -> None:
        """The app's new version: later runs take it; a new schedule counts from now on."""
        self._version = version
        if schedule != self.record.schedule:
            now = self._clock.now()
            self.record = dataclasses.replace(
                self.record, schedule=schedule, watermark=max(now, self.record.watermark)
            )
        self._schedule = cron.parse(schedule)
        self._wake.set()

    def start(self) -> None:
        """Start the timer (and resume a run that was going); idempotent."""
        if self.running:
            return
        if self.record.active is not None and (self._run is None or self._run.done()):
            log.info("resuming a cron run", extra={"app": self.app})
            self._start_run(self.record.active_version, resume=True)
        self._timer = self._tasks.spawn(self._timer_loop(), f"native:{self.app}:cron")

    async def stop(self) -> None:
        """Stop the timer and stop following the run (its processes are left as they are)."""
        tasks = [task for task in (self._timer, self._run) if task is not None]
        self._timer = self._run = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def running(self) -> bool:
        """The timer runs."""
        return self._timer is not None and not self._timer.done()

    @property
    def active_version(self) -> str | None:
        """The version of the run going on, if one is."""
        return self.record.active_version if self.record.active is not None else None

    def stats(self) -> CronJobStats:
        """The schedule and its runs as reported (AppStats.cron_job)."""
        record = self.record
        return CronJobStats(
            schedule=record.schedule,
            next_schedule_time=self._next,
            last_schedule_time=record.last_schedule,
            last_successful_time=record.last_successful,
            last_result=AppStatus(record.last_result) if record.last_result else None,
            last_cause=record.last_cause,
            active=record.active is not None,
            skipped=record.skipped,
            missed=record.missed,
        )

    # -- timer -------------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock.now()
            step = tick(self._schedule, after=self.record.watermark, now=now)
            if step.due is not None:
                self._fire(step, now)
            if step.next != self._next:
                self._next = step.next
                self._hooks.changed()
            await self._clock.sleep_until(step.next, self._wake)

    def _fire(self, step: Tick, now: datetime) -> None:
        assert step.due is not None
        record = dataclasses.replace(self.record, watermark=max(now, self.record.watermark))
        extra = {"app": self.app, "time": step.due.isoformat()}
        if self.record.active is not None:  # cleared as soon as the run's result is known
            log.warning("cron run skipped: the run before is still going", extra=extra)
            record = dataclasses.replace(record, skipped=record.skipped + step.passed)
        else:
            if step.passed > 1:
                log.warning("cron times missed", extra={**extra, "missed": step.passed - 1})
            record = dataclasses.replace(
                record,
                missed=record.missed + step.passed - 1,
                last_schedule=step.due,
                active=step.due,
                active_version=self._version,
            )
        self.record = record
        if record.active == step.due:
            log.info("cron run starting", extra={**extra, "version": self._version})
            self._forget_finished()
            self._start_run(self._version, resume=False)
        self._hooks.changed()

    # -- runs --------------------------------------------------------------------------------

    def _start_run(self, version: str, *, resume: bool) -> None:
        self._run = self._tasks.spawn(self._follow(version, resume), f"native:{self.app}:cron-run")

    async def _follow(self, version: str, resume: bool) -> None:
        await self._hooks.persist()  # the run is bookkept before its first process starts
        try:
            status, cause = await self._run_job(version, resume)
        except asyncio.CancelledError:
            raise  # the agent stops (the run is resumed) or the app goes
        except Exception as exc:
            log.exception("cron run failed", extra={"app": self.app})
            status, cause = AppStatus.FAILED, f"run failed: {exc}"
        succeeded = status is AppStatus.SUCCEEDED
        self.record = dataclasses.replace(
            self.record,
            active=None,
            active_version="",
            last_result=status.value,
            last_cause=cause,
            last_successful=self._clock.now() if succeeded else self.record.last_successful,
        )
        log.info("cron run finished", extra={"app": self.app, "status": status.value})
        self._hooks.changed()
        await self._hooks.persist()
