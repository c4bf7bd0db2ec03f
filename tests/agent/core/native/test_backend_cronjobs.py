"""Cronjob apps on the native backend with real processes and an injected wall clock: a run at
each time under the job's rules, Forbid, the report, one late run after an absence, and a run
going across an agent restart adopted, never started twice (decision #152)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.contracts.report import AppStats, AppStatus
from agent.core.native import NativeBackend
from tests.agent.core.native.conftest import BackendFactory
from tests.agent.core.native.kit import Dirs, FakeClock, application, deployment, service
from tools.kit.procs import alive
from tools.kit.waiting import eventually

START = datetime(2026, 3, 14, 10, 17, 30, tzinfo=UTC)


def at(minute: int, second: float = 0.0) -> datetime:
    return datetime(2026, 3, 14, 10, tzinfo=UTC) + timedelta(minutes=minute, seconds=second)


def note_script(runs: Path, *, code: int = 0, hold: Path | None = None) -> str:
    """A run that notes itself in `runs`, waits for `hold` to exist (if given), exits `code`."""
    wait = "" if hold is None else f"\nwhile not os.path.exists({str(hold)!r}): time.sleep(0.05)"
    return f"note({str(runs)!r}, str(os.getpid())){wait}\nsys.exit({code})"


def cronjob(script: str, version: str = "1", **fields: Any) -> Any:
    fields.setdefault("cronTime", "* * * * *")
    return deployment(
        application(
            version=version, workload="cronjob", services=[service(script=script)], **fields
        )
    )


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def cron_stats(backend: NativeBackend) -> AppStats:
    return backend.observe()["demo"]


async def until_finished(backend: NativeBackend, runs: int) -> AppStats:
    """The app's stats once its `runs`-th run is over (counted by its last schedule time)."""

    def finished() -> AppStats | None:
        stats = cron_stats(backend)
        job = stats.cron_job
        assert job is not None
        done = job.last_result is not None and not job.active
        return stats if done and job.last_schedule_time == at(17 + runs) else None

    return await eventually(
        finished, what=f"run {runs} finished", detail=lambda: cron_stats(backend)
    )


async def test_a_cronjob_runs_once_at_each_time_and_reports_its_runs(
    backends: BackendFactory, dirs: Dirs
) -> None:
    clock = FakeClock(START)
    backend = backends(clock=clock)
    await backend.start()
    runs = dirs.host / "runs"
    await backend.apply(cronjob(note_script(runs)))
    stats = cron_stats(backend)
    assert (stats.status, stats.cause, stats.instances) == (AppStatus.RUNNING, "", {})
    assert stats.warnings == []
    assert stats.cron_job is not None
    assert stats.cron_job.next_schedule_time == at(18)
    assert lines(runs) == []  # nothing before its time

    clock.set(at(18))
    stats = await until_finished(backend, 1)
    assert len(lines(runs)) == 1
    (instance,) = stats.instances.values()
    assert (instance.name, instance.status, instance.pid) == (
        "default.demo.1.main.1",
        AppStatus.SUCCEEDED,
        None,
    )
    job = stats.cron_job
    assert job is not None
    assert (job.last_result, job.last_successful_time, job.next_schedule_time) == (
        AppStatus.SUCCEEDED,
        at(18),
        at(19),
    )
    assert stats.status is AppStatus.RUNNING  # scheduled, as a CronJob reads in kube mode

    clock.set(at(19))
    stats = await until_finished(backend, 2)
    assert len(lines(runs)) == 2  # a new process each time
    assert len(stats.instances) == 1  # the run before's instance made way for this one


async def test_each_run_follows_the_jobs_restart_policy_and_backoff_limit(
    backends: BackendFactory, dirs: Dirs
) -> None:
    clock = FakeClock(START)
    backend = backends(clock=clock)
    await backend.start()
    runs = dirs.host / "runs"
    job_config = {"restartPolicy": "OnFailure", "backoffLimit": 1}
    await backend.apply(cronjob(note_script(runs, code=3), jobConfig=job_config))
    clock.set(at(18))
    stats = await until_finished(backend, 1)
    assert len(lines(runs)) == 2  # the first try and one retry
    assert stats.cron_job is not None
    assert stats.cron_job.last_result is AppStatus.FAILED
    assert stats.cron_job.last_cause == (
        "default.demo.1.main.1: BackoffLimitExceeded: exited with code 3 "
        "(2 failures, backoffLimit 1)"
    )
    assert stats.cron_job.last_successful_time is None
    assert stats.status is AppStatus.RUNNING  # the next time will run it again
    clock.set(at(19))
    await until_finished(backend, 2)
    assert len(lines(runs)) == 4  # each run has its own backoff limit


async def test_init_services_run_before_each_runs_services(
    backends: BackendFactory, dirs: Dirs
) -> None:
    clock = FakeClock(START)
    backend = backends(clock=clock)
    await backend.start()
    order = dirs.host / "order"
    spec = application(
        workload="cronjob",
        cronTime="* * * * *",
        initServices=[service("prepare", f"note({str(order)!r}, 'init')")],
        services=[service(script=f"note({str(order)!r}, 'main')")],
    )
    await backend.apply(deployment(spec))
    for minute in (1, 2):
        clock.set(at(17 + minute))
        stats = await until_finished(backend, minute)
        assert stats.cron_job is not None
        assert stats.cron_job.last_result is AppStatus.SUCCEEDED
    assert lines(order) == ["init", "main", "init", "main"]


async def test_a_time_that_comes_while_the_run_goes_is_skipped(
    backends: BackendFactory, dirs: Dirs
) -> None:
    clock = FakeClock(START)
    backend = backends(clock=clock)
    await backend.start()
    runs, hold = dirs.host / "runs", dirs.host / "hold"
    await backend.apply(cronjob(note_script(runs, hold=hold)))
    clock.set(at(18))
    await eventually(lambda: len(lines(runs)) == 1, what="the first run")

    def skipped() -> AppStats | None:
        stats = cron_stats(backend)
        return stats if stats.cron_job is not None and stats.cron_job.skipped == 1 else None

    clock.set(at(19))
    stats = await eventually(skipped, what="the time skipped")
    assert stats.cron_job is not None
    assert (stats.cron_job.active, stats.cron_job.last_schedule_time) == (True, at(18))
    (instance,) = stats.instances.values()
    assert instance.status is AppStatus.RUNNING
    hold.touch()
    await until_finished(backend, 1)
    assert len(lines(runs)) == 1


async def test_a_run_going_across_an_agent_restart_is_adopted_and_the_schedule_goes_on(
    backends: BackendFactory, dirs: Dirs
) -> None:
    clock = FakeClock(START)
    first = backends(clock=clock)
    await first.start()
    runs, hold = dirs.host / "runs", dirs.host / "hold"
    spec = cronjob(note_script(runs, hold=hold))
    await first.apply(spec)
    clock.set(at(18))
    await eventually(lambda: len(lines(runs)) == 1, what="the run started")
    (pid,) = map(int, lines(runs))
    await first.close()
    assert alive(pid)

    clock.set(at(18, 40))  # back within the same minute: nothing was missed
    second = backends(clock=clock)
    await second.start()
    stats = cron_stats(second)  # adopted as the backend starts
    (instance,) = stats.instances.values()
    assert instance.pid == pid
    assert stats.cron_job is not None
    assert (stats.cron_job.active, stats.cron_job.missed) == (True, 0)
    await second.apply(spec)  # the engine applies the same version again: nothing new
    hold.touch()
    stats = await until_finished(second, 1)
    assert stats.cron_job is not None
    assert stats.cron_job.last_result is AppStatus.SUCCEEDED
    assert lines(runs) == [str(pid)]  # adopted, never started a second time

    clock.set(at(19))
    await until_finished(second, 2)
    assert len(lines(runs)) == 2


async def test_times_passed_while_no_agent_ran_make_one_late_run(
    backends: BackendFactory, dirs: Dirs
) -> None:
    clock = FakeClock(START)
    first = backends(clock=clock)
    await first.start()
    runs = dirs.host / "runs"
    await first.apply(cronjob(note_script(runs)))
    clock.set(at(18))
    await until_finished(first, 1)
    await first.close()

    clock.set(at(28, 30))  # ten times passed: 10:19 … 10:28
    second = backends(clock=clock)
    await second.start()
    stats = await until_finished(second, 11)
    assert stats.cron_job is not None
    assert (stats.cron_job.missed, stats.cron_job.next_schedule_time) == (9, at(29))
    assert len(lines(runs)) == 2  # one late run, not ten


async def test_a_cronjob_that_becomes_a_deployment_stops_its_schedule(
    backends: BackendFactory, dirs: Dirs
) -> None:
    clock = FakeClock(START)
    backend = backends(clock=clock)
    await backend.start()
    runs, hold = dirs.host / "runs", dirs.host / "hold"
    await backend.apply(cronjob(note_script(runs, hold=hold)))
    clock.set(at(18))
    await eventually(lambda: len(lines(runs)) == 1, what="the run started")
    (pid,) = map(int, lines(runs))
    await backend.apply(deployment(application(version="2")))
    stats = cron_stats(backend)
    assert stats.cron_job is None
    assert stats.status is AppStatus.RUNNING
    assert not alive(pid)  # the run's process went with the schedule
    assert not clock.asleep_until(at(19))  # no timer left
    clock.set(at(19))
    assert len(lines(runs)) == 1
    await backend.remove("demo")
    assert "demo" not in backend.observe()
