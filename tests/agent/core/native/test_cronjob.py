"""The timer of a cronjob app's schedule, on an injected clock: what it runs, skips and counts,
and that it sleeps until the next time instead of polling. The runs here are stand-ins that
end when the test says; test_backend_cronjobs.py runs real processes."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from agent.contracts import cron
from agent.contracts.kit.aiotasks import Tasks
from agent.contracts.report import AppStatus
from agent.core.native.bookkeeping import CronRecord
from agent.core.native.cronjob import COUNT_LIMIT, CronJob, SystemClock, Tick, tick
from tests.agent.core.native.kit import FakeClock
from tools.kit.waiting import eventually

EVERY_MINUTE = cron.parse("* * * * *")
START = datetime(2026, 3, 14, 10, 17, 30, tzinfo=UTC)


def at(minute: int, second: float = 0.0) -> datetime:
    """10:<minute>:<second> on the test's day (minutes past 59 run into the next hours)."""
    return datetime(2026, 3, 14, 10, tzinfo=UTC) + timedelta(minutes=minute, seconds=second)


# --- tick: pure --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "now", "expected"),
    [
        # Between two times: nothing due, wake at the next.
        (at(17, 30), at(17, 59.9), Tick(None, 0, at(18))),
        # The time has come (a little late, as timers are): run it.
        (at(17, 30), at(18, 0.2), Tick(at(18), 1, at(19))),
        (at(17, 30), at(18), Tick(at(18), 1, at(19))),
        # Already dealt with up to now: nothing, even on the minute.
        (at(18), at(18), Tick(None, 0, at(19))),
        # An hour without an agent: the latest runs, all 60 are counted.
        (at(17, 30), at(77, 30), Tick(at(77), 60, at(78))),
        # The wall clock set back: nothing runs again until it passes the watermark.
        (at(60, 30), at(0), Tick(None, 0, at(61))),
    ],
)
def test_tick_runs_the_latest_time_that_came_and_wakes_at_the_next(
    after: datetime, now: datetime, expected: Tick
) -> None:
    assert tick(EVERY_MINUTE, after=after, now=now) == expected


def test_tick_counts_a_long_absence_up_to_the_limit() -> None:
    week = tick(EVERY_MINUTE, after=at(0), now=at(7 * 24 * 60, 5))
    assert (week.due, week.passed) == (at(7 * 24 * 60), COUNT_LIMIT)
    daily = tick(cron.parse("@daily"), after=at(0), now=at(3 * 24 * 60))
    assert daily == Tick(datetime(2026, 3, 17, tzinfo=UTC), 3, datetime(2026, 3, 18, tzinfo=UTC))


# --- the timer, with stand-in runs ------------------------------------------------------------


class Runs:
    """Stand-in runs: each call is recorded and ends when the test finishes it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.forgotten = 0
        self.forgotten_before: list[int] = []
        self._ends: list[asyncio.Future[tuple[AppStatus, str]]] = []

    async def __call__(self, version: str, resume: bool) -> tuple[AppStatus, str]:
        self.calls.append((version, resume))
        self.forgotten_before.append(self.forgotten)
        end: asyncio.Future[tuple[AppStatus, str]] = asyncio.get_running_loop().create_future()
        self._ends.append(end)
        return await end

    def forget(self) -> None:
        """The run before's instances dropped (a fresh run only, before it starts)."""
        self.forgotten += 1

    def finish(self, status: AppStatus = AppStatus.SUCCEEDED, cause: str = "") -> None:
        self._ends[-1].set_result((status, cause))


class Hooks:
    """The backend's side: counts notifications and bookkeeping writes."""

    def __init__(self) -> None:
        self.changes = 0
        self.persisted: list[CronRecord] = []
        self.job: CronJob | None = None

    def changed(self) -> None:
        self.changes += 1

    async def persist(self) -> None:
        assert self.job is not None
        self.persisted.append(self.job.record)


class Timer:
    """One CronJob with its clock, runs and hooks."""

    def __init__(self, tasks: Tasks) -> None:
        self.clock = FakeClock(START)
        self.runs = Runs()
        self.hooks = Hooks()
        self.tasks = tasks

    def make(
        self, schedule: str = "* * * * *", version: str = "v1", record: CronRecord | None = None
    ) -> CronJob:
        job = CronJob(
            "tick",
            schedule=schedule,
            version=version,
            record=record,
            clock=self.clock,
            tasks=self.tasks,
            hooks=self.hooks,
            run_job=self.runs,
            forget_finished=self.runs.forget,
        )
        self.hooks.job = job
        return job

    def mark(self) -> int:
        """How often the timer went to sleep so far (for `asleep(since=)`)."""
        return len(self.clock.sleeps)

    async def asleep(self, moment: datetime | None, *, since: int = -1) -> None:
        """Wait until the timer has done what it does and sleeps until `moment` (after more
        than `since` sleeps: when it slept until the same moment before being woken)."""
        await eventually(
            lambda: len(self.clock.sleeps) > since and self.clock.asleep_until(moment),
            limit=5,
            what=f"the timer asleep until {moment}",
            detail=lambda: f"sleeps {self.clock.sleeps}",
        )

    async def calls(self, count: int) -> None:
        await eventually(lambda: len(self.runs.calls) == count, limit=5, what=f"{count} runs")


@pytest.fixture
async def timer() -> AsyncIterator[Timer]:
    tasks = Tasks("test", logger=logging.getLogger(__name__))
    yield Timer(tasks)
    assert not await tasks.stop(grace=2)


async def test_a_run_starts_at_each_time_and_the_timer_sleeps_until_the_next(
    timer: Timer,
) -> None:
    job = timer.make()
    job.start()
    await timer.asleep(at(18))
    assert timer.runs.calls == []  # created at 10:17:30: 10:17 was before its time
    assert job.stats().next_schedule_time == at(18)
    timer.clock.set(at(18, 0.01))
    await timer.calls(1)
    assert timer.runs.calls == [("v1", False)]
    await timer.asleep(at(19))
    # The run was bookkept as going before it started.
    assert timer.hooks.persisted[0].active == at(18)
    stats = job.stats()
    assert (stats.active, stats.last_schedule_time, stats.last_result) == (True, at(18), None)
    timer.runs.finish()
    await eventually(lambda: not job.stats().active, limit=5, what="the run's end")
    stats = job.stats()
    assert stats.last_result is AppStatus.SUCCEEDED
    assert stats.last_successful_time == at(18, 0.01)  # when it ended
    timer.clock.set(at(19))
    await timer.asleep(at(20))
    assert timer.runs.calls == [("v1", False), ("v1", False)]
    assert timer.runs.forgotten_before == [1, 2]
    # One sleep per time: it never woke to poll.
    assert timer.clock.sleeps == [at(18), at(19), at(20)]
    assert (job.stats().skipped, job.stats().missed) == (0, 0)
    await job.stop()
    assert not job.running


async def test_a_time_that_comes_while_a_run_goes_is_skipped_and_counted(timer: Timer) -> None:
    job = timer.make()
    job.start()
    await timer.asleep(at(18))
    timer.clock.set(at(18))
    await timer.calls(1)
    await timer.asleep(at(19))
    timer.clock.set(at(19))  # the run at 10:18 still goes: Forbid
    await timer.asleep(at(20))
    assert len(timer.runs.calls) == 1
    assert (job.stats().skipped, job.stats().last_schedule_time) == (1, at(18))
    timer.runs.finish(AppStatus.FAILED, "default.tick.v1.main.1: exited with code 3")
    await eventually(lambda: not job.stats().active, limit=5, what="the run's end")
    stats = job.stats()
    assert (stats.last_result, stats.last_cause) == (
        AppStatus.FAILED,
        "default.tick.v1.main.1: exited with code 3",
    )
    assert stats.last_successful_time is None
    timer.clock.set(at(20))
    await timer.calls(2)
    assert job.stats().skipped == 1
    await job.stop()


async def test_times_missed_while_no_agent_ran_make_one_late_run(timer: Timer) -> None:
    # The agent stopped at 10:00:30, with everything up to then dealt with; back at 10:17:30.
    record = CronRecord(schedule="* * * * *", watermark=at(0, 30), last_schedule=at(0))
    job = timer.make(record=record)
    job.start()
    await timer.asleep(at(18))
    assert timer.runs.calls == [("v1", False)]  # at once, once
    stats = job.stats()
    assert (stats.last_schedule_time, stats.missed, stats.skipped) == (at(17), 16, 0)
    assert job.record.watermark == START
    await job.stop()


async def test_a_run_going_when_the_agent_stopped_is_resumed_not_started_again(
    timer: Timer,
) -> None:
    record = CronRecord(
        schedule="* * * * *",
        watermark=at(17, 0.5),
        active=at(17),
        active_version="v0",
        last_schedule=at(17),
    )
    job = timer.make(record=record)
    job.start()
    await timer.asleep(at(18))
    assert timer.runs.calls == [("v0", True)]  # the run's own version, resumed
    assert timer.runs.forgotten_before == [0]  # its instances are its own
    timer.clock.set(at(18))  # still going: Forbid applies to a resumed run too
    await timer.asleep(at(19))
    assert (len(timer.runs.calls), job.stats().skipped) == (1, 1)
    timer.runs.finish()
    await eventually(lambda: job.record.active is None, limit=5, what="the run's end")
    assert job.record.active_version == ""
    await job.stop()


async def test_a_new_schedule_counts_from_its_change_and_a_new_version_from_the_next_run(
    timer: Timer,
) -> None:
    job = timer.make("0 * * * *")
    job.start()
    await timer.asleep(at(60))
    timer.clock.set(at(59, 10))
    mark = timer.mark()
    job.retarget("*/5 * * * *", "v2")  # 10:55 of the new schedule passed before it existed
    await timer.asleep(at(60), since=mark)
    assert timer.runs.calls == []
    assert job.record.watermark == at(59, 10)
    timer.clock.set(at(60))
    await timer.calls(1)
    assert timer.runs.calls == [("v2", False)]
    assert job.stats().missed == 0
    await job.stop()


async def test_a_wall_clock_set_back_runs_no_time_twice(timer: Timer) -> None:
    job = timer.make()
    job.start()
    await timer.asleep(at(18))
    timer.clock.set(at(18))
    await timer.calls(1)
    timer.runs.finish()
    await timer.asleep(at(19))
    timer.clock.set(at(10))  # NTP stepped the clock back 8 minutes
    for moment in (at(10), at(11), at(18, 30)):
        timer.clock.set(moment)
        mark = timer.mark()
        job.retarget("* * * * *", "v1")  # anything that wakes the timer
        await timer.asleep(at(19), since=mark)  # 10:11 … 10:18 were dealt with before
    assert len(timer.runs.calls) == 1
    timer.clock.set(at(19))
    await timer.calls(2)
    await job.stop()


def test_the_bookkept_record_survives_a_round_trip() -> None:
    record = CronRecord(
        schedule="@hourly",
        watermark=at(17, 0.25),
        active=at(17),
        active_version="v3",
        last_schedule=at(17),
        last_successful=at(12, 3),
        last_result="Failed",
        last_cause="default.tick.v3.main.1: exited with code 1",
        skipped=2,
        missed=7,
    )
    assert CronRecord.from_json(record.to_json()) == record
    fresh = CronRecord(schedule="* * * * *", watermark=at(0))
    assert CronRecord.from_json(fresh.to_json()) == fresh
    with pytest.raises(ValueError, match="time zone"):
        CronRecord.from_json({**fresh.to_json(), "watermark": "2026-03-14T10:00:00"})
    assert dataclasses.replace(fresh, skipped=1) != fresh


async def test_the_system_clock_sleeps_until_the_moment_the_wake_or_the_check() -> None:
    clock = SystemClock(check=0.2)
    wake = asyncio.Event()
    began = time.monotonic()
    await clock.sleep_until(clock.now() + timedelta(seconds=0.05), wake)  # the moment
    await clock.sleep_until(None, wake)  # no moment: the check, at the latest
    await clock.sleep_until(clock.now() + timedelta(days=1), wake)  # a far one: the check too
    assert 0.4 <= time.monotonic() - began < 5
    wake.set()
    began = time.monotonic()
    await clock.sleep_until(clock.now() + timedelta(days=1), wake)  # woken: at once
    assert time.monotonic() - began < 0.1
    assert clock.now().tzinfo is UTC
