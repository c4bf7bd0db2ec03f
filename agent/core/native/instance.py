"""One service instance: its process, kept running (or run to completion) by a supervision task.

The task loops: start the process → wait for it to end (or for its liveness probe to fail, or
for a stop) → ask `policy.decide` what next → wait out the back-off → start again. Its state is
what `observe` reports and what bookkeeping records. Stopping is graceful (SIGTERM to the
process group, SIGKILL after the grace period); detaching (agent shutdown) leaves the process
running for the next agent to adopt.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from agent.contracts.report import AppStatus, InstanceStats, Usage
from agent.contracts.resources import Probe
from agent.core.native import logfiles, probes, procs
from agent.core.native.aio import complete
from agent.core.native.bookkeeping import InstanceRecord
from agent.core.native.policy import Backoff, Exit, RestartRule, decide

log = logging.getLogger(__name__)


class Phase(enum.StrEnum):
    """Where an instance is in its life; recorded in bookkeeping."""

    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


TERMINAL = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.STOPPED})


@dataclass(frozen=True, order=True)
class InstanceKey:
    """An instance's identity within its app: version, service, 1-based index (as in Baetyl)."""

    version: str
    service: str
    index: int
    init: bool = False
    """An init service's run (once per version, before the services start)."""


@dataclass(frozen=True)
class Launch:
    """Everything needed to start the instance's process again."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    log_path: Path
    liveness: Probe | None = None
    readiness: Probe | None = None
    probe_env: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Supervision:
    """How the instance is kept running."""

    rule: RestartRule
    backoff: Backoff
    crashloop_threshold: int
    grace_period: float
    poll_interval: float


class Hooks(Protocol):
    """What an instance tells its backend."""

    def changed(self) -> None:
        """Some observable state changed (status, readiness, restarts, pid)."""

    async def persist(self) -> None:
        """Write the bookkeeping now (returns once it is on disk)."""


class Instance:
    """A supervised process slot. Create it inside the event loop, then `start` it."""

    def __init__(
        self,
        *,
        app: str,
        name: str,
        key: InstanceKey,
        port: int | None,
        directory: Path,
        launch: Launch,
        supervision: Supervision,
        hooks: Hooks,
        restarts: int = 0,
        streak: int = 0,
        failures: int = 0,
    ) -> None:
        self.app = app
        self.name = name
        self.key = key
        self.port = port
        self.directory = directory
        self.launch = launch
        self.restarts = restarts
        self.streak = streak
        self.failures = failures
        self.phase = Phase.STARTING
        self.cause = ""
        self.ready = False
        self.proc: procs.Proc | None = None
        self._supervision = supervision
        self._hooks = hooks
        self._waiting_status = AppStatus.PENDING
        self._ready_message = ""
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pulse = asyncio.Event()

    # -- life cycle --------------------------------------------------------------------------

    def start(
        self,
        *,
        adopted: procs.Proc | None = None,
        missed: Exit | None = None,
        was_ready: bool = False,
    ) -> None:
        """Begin supervising: watch `adopted`, or account for a `missed` exit, or start fresh.

        An adopted instance that `was_ready` under the previous agent stays ready until its
        readiness probe fails: an agent restart does not take it out of service.
        """
        if adopted is not None:
            adopted.watch(poll_interval=self._supervision.poll_interval)
            self.proc = adopted
            age = max(0.0, time.time() - adopted.ident.create_time)
            self._started = time.monotonic() - age
            self.ready = self.launch.readiness is None or was_ready
            self.phase = Phase.RUNNING
        self._task = asyncio.get_running_loop().create_task(
            self._supervise(adopted, missed), name=f"native:{self.name}:supervise"
        )

    def restore(self, phase: Phase, cause: str) -> None:
        """Take over a finished state from bookkeeping (a job's result); nothing to run."""
        self.phase = phase
        self.cause = cause

    async def stop(self) -> None:
        """Stop the process gracefully and end supervision; idempotent; returns when done."""
        if not self._stop.done():
            self._stop.set_result(None)
        if self._task is not None:
            await asyncio.shield(self._task)
        elif self.phase is not Phase.STOPPED:
            self._set(Phase.STOPPED)

    async def detach(self) -> None:
        """End supervision and leave the process running (agent shutdown)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.proc is not None:
            self.proc.detach()

    async def wait_settled(self, within: float) -> None:
        """Wait (at most `within` s) until the instance serves, waits to restart, or ended."""
        deadline = time.monotonic() + within
        while not self.settled:
            pulse = self._pulse
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pulse.wait(), remaining)

    async def wait_finished(self) -> None:
        """Wait until the instance succeeded, failed or was stopped (init services)."""
        while self.phase not in TERMINAL:
            await self._pulse.wait()

    # -- views -------------------------------------------------------------------------------

    @property
    def settled(self) -> bool:
        """Ready, backing off, or finished: nothing more to wait for during a rollout."""
        if self.phase is Phase.RUNNING:
            return self.ready
        return self.phase in (Phase.BACKOFF, *TERMINAL)

    @property
    def serving(self) -> bool:
        """Running and ready: may receive traffic (listed in the registry)."""
        return self.phase is Phase.RUNNING and self.ready

    @property
    def status(self) -> tuple[AppStatus, str]:
        """(status, cause) as reported."""
        phase = self.phase
        if phase is Phase.RUNNING:
            if self.ready:
                return AppStatus.RUNNING, ""
            reason = self._ready_message or "waiting for the readiness probe"
            return AppStatus.PENDING, f"not ready: {reason}"
        if phase is Phase.BACKOFF:
            return self._waiting_status, self.cause
        if phase is Phase.SUCCEEDED:
            return AppStatus.SUCCEEDED, ""
        if phase is Phase.FAILED:
            return AppStatus.FAILED, self.cause
        return AppStatus.PENDING, phase.value

    def stats(self, usage: Usage | None) -> InstanceStats:
        """The instance as reported in AppStats.instances."""
        status, cause = self.status
        proc = self.proc
        created = None
        if proc is not None:
            created = datetime.fromtimestamp(proc.ident.create_time, UTC)
        return InstanceStats(
            name=self.name,
            service_name=self.key.service,
            status=status,
            cause=cause,
            pid=None if proc is None else proc.pid,
            restarts=self.restarts,
            usage=usage if usage is not None and proc is not None else Usage(),
            create_time=created,
        )

    def record(self) -> InstanceRecord:
        """The instance as bookkept."""
        proc = self.proc
        ident = None if proc is None else proc.ident
        return InstanceRecord(
            version=self.key.version,
            service=self.key.service,
            index=self.key.index,
            init=self.key.init,
            port=self.port,
            directory=str(self.directory),
            phase=self.phase.value,
            pid=None if ident is None else ident.pid,
            create_time=None if ident is None else ident.create_time,
            start_ticks=None if ident is None else ident.start_ticks,
            boot_id="" if ident is None else ident.boot_id,
            restarts=self.restarts,
            streak=self.streak,
            failures=self.failures,
            cause=self.cause,
            ready=self.serving,
        )

    # -- supervision -------------------------------------------------------------------------

    def _set(self, phase: Phase, *, cause: str | None = None) -> None:
        self.phase = phase
        if cause is not None:
            self.cause = cause
        self._hooks.changed()
        pulse, self._pulse = self._pulse, asyncio.Event()
        pulse.set()

    async def _supervise(self, proc: procs.Proc | None, missed: Exit | None) -> None:
        try:
            await self._loop(proc, missed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("instance supervision failed", extra=self._log_extra())
            self._set(Phase.FAILED, cause=f"supervision failed: {exc}")
            return
        if self._stop.done():
            self._set(Phase.STOPPED)
            await self._hooks.persist()

    async def _loop(self, proc: procs.Proc | None, exit_: Exit | None) -> None:
        while not self._stop.done():
            if exit_ is None:
                if proc is None:
                    proc, exit_ = await self._launch()
                if proc is not None:
                    exit_ = await self._run(proc)
                    proc = None
            if self._stop.done() or exit_ is None:
                return
            delay = await self._after(exit_)
            exit_ = None
            if delay is None:
                return
            if delay > 0:
                await asyncio.wait([self._stop], timeout=delay)

    async def _launch(self) -> tuple[procs.Proc | None, Exit | None]:
        self._set(Phase.STARTING, cause="")
        launch = self.launch
        try:
            proc = await complete(self._spawn())
        except procs.SpawnError as exc:
            log.warning("instance could not start", extra={**self._log_extra(), "error": str(exc)})
            return None, Exit(None, str(exc), 0.0)
        except OSError as exc:
            return None, Exit(None, f"start failed: {exc}", 0.0)
        proc.watch(poll_interval=self._supervision.poll_interval)
        self._started = time.monotonic()
        self.ready = launch.readiness is None
        self._ready_message = ""
        self._set(Phase.RUNNING)
        log.info("instance started", extra={**self._log_extra(), "pid": proc.pid})
        await self._hooks.persist()
        return proc, None

    async def _spawn(self) -> procs.Proc:
        launch = self.launch
        proc = await asyncio.to_thread(
            procs.spawn, launch.argv, env=launch.env, cwd=launch.cwd, log_path=launch.log_path
        )
        self.proc = proc  # recorded even if the caller is being cancelled meanwhile
        return proc

    async def _run(self, proc: procs.Proc) -> Exit:
        loop = asyncio.get_running_loop()
        liveness_failed: asyncio.Future[str] = loop.create_future()
        probe_tasks = self._start_probes(liveness_failed)
        try:
            events: list[asyncio.Future[Any]] = [proc.exited, self._stop, liveness_failed]
            await asyncio.wait(events, return_when=asyncio.FIRST_COMPLETED)
            if proc.exited.done():
                code = proc.exited.result()
                description = procs.describe_exit(code)
                if code:  # what it said last says why (a runtime's handler that cannot load)
                    said = await asyncio.to_thread(logfiles.last_line, self.launch.log_path)
                    description = f"{description}: {said}" if said else description
                return Exit(code, description, self._ran_for())
            grace = self._supervision.grace_period
            if self._stop.done():
                self._set(Phase.STOPPING)
                code = await proc.terminate(grace)
                return Exit(code, "stopped", self._ran_for())
            message = f"liveness probe failed: {liveness_failed.result()}"
            log.warning("restarting an instance", extra={**self._log_extra(), "cause": message})
            self.cause = message
            code = await proc.terminate(grace)
            return Exit(code, message, self._ran_for(), forced=True)
        finally:
            for task in probe_tasks:
                task.cancel()
            await asyncio.gather(*probe_tasks, return_exceptions=True)
            if proc.exited.done() and self.proc is proc:
                self.proc = None
                self.ready = False

    def _start_probes(self, liveness_failed: asyncio.Future[str]) -> list[asyncio.Task[None]]:
        launch = self.launch
        env = launch.probe_env if launch.probe_env is not None else launch.env
        loop = asyncio.get_running_loop()
        tasks = []

        def on_liveness(healthy: bool, message: str) -> None:
            if not healthy and not liveness_failed.done():
                liveness_failed.set_result(message)

        def on_readiness(healthy: bool, message: str) -> None:
            changed = healthy != self.ready or message != self._ready_message
            self.ready = healthy
            self._ready_message = "" if healthy else message
            if changed and self.phase is Phase.RUNNING:
                self._set(Phase.RUNNING)

        for kind, probe, callback, initially in (
            ("liveness", launch.liveness, on_liveness, True),
            # Not ready at a launch; an adopted instance starts from what it was (`start`).
            ("readiness", launch.readiness, on_readiness, self.ready),
        ):
            if probe is None:
                continue
            runner = probes.run(
                probe,
                started=self._started,
                env=env,
                cwd=launch.cwd,
                on_flip=callback,
                initially=initially,
            )
            tasks.append(loop.create_task(runner, name=f"native:{self.name}:{kind}"))
        return tasks

    async def _after(self, exit_: Exit) -> float | None:
        """Apply the restart rule; the delay before the next start, or None when finished."""
        supervision = self._supervision
        decision = decide(
            supervision.rule,
            supervision.backoff,
            exit_,
            streak=self.streak,
            failures=self.failures,
            crashloop_threshold=supervision.crashloop_threshold,
        )
        self.streak, self.failures = decision.streak, decision.failures
        extra = {**self._log_extra(), "reason": exit_.reason, "code": exit_.code}
        if not decision.restart:
            final = Phase.SUCCEEDED if decision.status is AppStatus.SUCCEEDED else Phase.FAILED
            log.info("instance finished", extra={**extra, "status": final.value})
            self._set(final, cause=decision.cause)
            await self._hooks.persist()
            return None
        self.restarts += 1
        self._waiting_status = decision.status
        log.warning("instance ended; restarting", extra={**extra, "delay": decision.delay})
        self._set(Phase.BACKOFF, cause=decision.cause)
        await self._hooks.persist()
        return decision.delay

    def _ran_for(self) -> float:
        return max(0.0, time.monotonic() - self._started)

    def _log_extra(self) -> dict[str, object]:
        return {"app": self.app, "instance": self.name}


def missed_exit() -> Exit:
    """The exit of a process that ended while no agent watched it (code and time unknown)."""
    return Exit(None, "ended while the agent was not running (exit code unknown)", math.inf)
