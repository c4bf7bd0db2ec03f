"""Owned tasks: named, failures logged when they happen, stopped newest first, stuck ones named."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.contracts.kit import aiotasks
from agent.contracts.kit.aiotasks import Tasks

log = logging.getLogger("tests.aiotasks")


async def test_a_task_is_named_and_owned_until_it_ends() -> None:
    tasks = Tasks("test", logger=log)
    release = asyncio.Event()
    task = tasks.spawn(release.wait(), "waiter")
    assert task.get_name() == "waiter"
    assert list(tasks) == [task]
    release.set()
    assert await task is True
    assert list(tasks) == []


async def test_a_failure_is_logged_when_it_happens_with_the_task_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = Tasks("MQTT bridge", logger=log)

    async def broken() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger=log.name):
        task = tasks.spawn(broken(), "mqtt-worker-3")
        await asyncio.wait([task])  # woken by a done callback registered after the owner's
    [record] = caplog.records
    assert record.getMessage() == "MQTT bridge task failed"
    assert record.__dict__["task"] == "mqtt-worker-3"
    assert record.__dict__["error"] == "boom"
    assert record.exc_info is not None
    assert len(tasks) == 0


async def test_stop_cancels_the_newest_first_and_logs_nothing_when_all_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = Tasks("test", logger=log)
    order: list[str] = []
    started = [asyncio.Event() for _ in range(3)]

    async def forever(name: str, ready: asyncio.Event) -> None:
        ready.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            order.append(name)
            raise

    for n, ready in enumerate(started):
        tasks.spawn(forever(f"t{n}", ready), f"t{n}")
    for ready in started:
        await ready.wait()
    with caplog.at_level(logging.DEBUG, logger=log.name):
        stuck = await tasks.stop(grace=5)
    assert stuck == set()
    assert order == ["t2", "t1", "t0"]
    assert caplog.records == []
    assert len(tasks) == 0


async def test_a_task_that_ignores_cancellation_is_logged_as_stuck_and_left_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = Tasks("root", logger=log)
    started, cancelled, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancelled.set()  # swallowed: the bug this guards against

    task = tasks.spawn(stubborn(), "sync")
    polite = tasks.spawn(asyncio.Event().wait(), "engine")
    try:
        await started.wait()
        with caplog.at_level(logging.ERROR, logger=log.name):
            stuck = await tasks.stop(grace=0.2)
        assert stuck == {task}
        assert cancelled.is_set()
        assert polite.cancelled()
        [record] = caplog.records
        assert record.getMessage() == "root task did not stop in time"
        assert record.__dict__["task"] == "sync"
        assert list(tasks) == [task]
    finally:
        release.set()  # a failed check must not leave the loop a task it cannot cancel
        await task


async def test_spared_tasks_keep_running() -> None:
    tasks = Tasks("native backend", logger=log)
    release = asyncio.Event()
    persister = tasks.spawn(release.wait(), "native:persist")
    timer = tasks.spawn(asyncio.Event().wait(), "native:logs")
    assert await tasks.stop(grace=5, spare={persister}) == set()
    assert timer.cancelled()
    assert not persister.done()
    release.set()
    await persister


async def test_stopping_nothing_returns_at_once() -> None:
    assert await aiotasks.stop([], title="test", grace=0, logger=log) == set()
