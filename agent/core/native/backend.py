"""`NativeBackend`: the Backend of agent.core.backend with apps as plain processes (DESIGN §8).

This module wires the parts together and owns every task: per-app rollouts, log rotation, usage
sampling, bookkeeping writes, status notifications and cronjob schedules. The parts: `layout`
(directories and volumes), `procs` (spawn, watch, adopt), `instance` (supervision of one
process), `app` (rollout and status of one app), `cronjob` (a cronjob app's schedule), `policy`
(restart rules), `probes`, `ports`, `logfiles`, `usage`, `registry` and `bookkeeping`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

from agent.contracts.kit.aiotasks import Tasks
from agent.contracts.report import AppStats, Usage
from agent.core import functions, programs
from agent.core.backend import (
    DeployError,
    Deployment,
    NodeFacts,
    NodeIdentity,
    StatusListener,
    StatusNotifier,
)
from agent.core.native import layout, logfiles, procs
from agent.core.native.aio import complete
from agent.core.native.app import AppRuntime, Context, process_id, terminal_phase
from agent.core.native.bookkeeping import AppRecord, Bookkeeping
from agent.core.native.cronjob import Clock, SystemClock
from agent.core.native.instance import InstanceKey, missed_exit
from agent.core.native.ports import PortAllocator
from agent.core.native.settings import NativeSettings
from agent.core.native.usage import UsageSampler
from agent.core.registry import INDEX_FILE, FunctionIndex, Registry, RegistryFile, build

log = logging.getLogger(__name__)

LOGS_READ_LIMIT = 1024 * 1024
"""Most log text one `logs` call returns (newest kept): it travels in one MQTT message."""
CLOSE_GRACE = 2.5
"""How long background tasks get to end once `close` cancels them (a quarter of Core's stop)."""
_RETRY_WRITE = 1.0


class NativeBackend:
    """Runs apps as processes on this host; they survive agent restarts and are re-adopted.

    Call `start()` first (it adopts what runs), `close()` last (it leaves apps running). See
    docs/native-backend.md for the directory layout, environment, restart and log rules.
    """

    def __init__(
        self, identity: NodeIdentity, settings: NativeSettings, *, clock: Clock | None = None
    ) -> None:
        """`clock` is the wall clock of cronjob schedules (the system's; tests pass their own)."""
        self.settings = settings = settings.resolved()
        self._layout = layout.Layout(settings.run_dir, settings.log_dir, identity.namespace)
        self._ports = PortAllocator(settings.port_range)
        self._book = Bookkeeping(settings.state_dir)
        registry = settings.registry_file
        self._registry = None if registry is None else RegistryFile(registry)
        self._index = None if registry is None else RegistryFile(registry.with_name(INDEX_FILE))
        self._logs = logfiles.LogKeeper(
            max_bytes=settings.log_max_bytes, keep=settings.log_backups, read_limit=LOGS_READ_LIMIT
        )
        self._tasks = Tasks("native backend", logger=log)
        self._context = Context(
            identity=identity,
            settings=settings,
            layout=self._layout,
            ports=self._ports,
            bookkeeping=self._book,
            hooks=self,
            agent_env=dict(os.environ),
            clock=SystemClock() if clock is None else clock,
            tasks=self._tasks,
        )
        self._apps: dict[str, AppRuntime] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._notifier = StatusNotifier(self._signature)
        self._running = False
        self._write_lock = asyncio.Lock()
        self._dirty = 0
        self._written = 0
        self._persister: asyncio.Task[None] | None = None
        self._sampler = UsageSampler()
        self._usage: dict[int, Usage] = {}
        self._usage_at = -math.inf
        self._usage_task: asyncio.Task[None] | None = None

    # -- Backend -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Adopt the instances a previous agent left running, restart what died, resume work."""
        if self._running:
            return
        await asyncio.to_thread(self._prepare_directories)
        records = await asyncio.to_thread(self._book.load)
        marked = await asyncio.to_thread(procs.find_marked, self.settings.run_dir)
        orphans: list[procs.Proc] = []
        for name, record in records.items():
            await self._restore(name, record, marked, orphans)
        for mark in marked.values():
            await self._adopt_unrecorded(mark, orphans)
        self._running = True
        if orphans:
            self._tasks.spawn(self._stop_orphans(orphans), "native:orphans")
        for runtime in list(self._apps.values()):
            if runtime.removing:
                self._tasks.spawn(self._remove_later(runtime.name), f"native:{runtime.name}:remove")
            elif not runtime.complete:
                runtime.rollout_task = self._tasks.spawn(
                    self._rollout(runtime), f"native:{runtime.name}:rollout"
                )
        self._tasks.spawn(self._keep_logs(), "native:logs")
        await self.persist()
        self.changed()
        log.info(
            "native backend started",
            extra={"apps": len(self._apps), "run_dir": str(self.settings.run_dir)},
        )

    async def apply(self, deployment: Deployment) -> None:
        """Run `deployment` (start, scale, or replace instances one by one); see AppRuntime."""
        self._require_running()
        # A function app runs the function runtime with this agent's own Python.
        deployment = functions.runnable(
            deployment, sys.executable, proxy_address=self.settings.function_address
        )
        # A programConfig service runs the program its configuration holds (reads the cache).
        deployment = await asyncio.to_thread(
            programs.runnable,
            deployment,
            interpreter=sys.executable,
            platform=self.settings.platform,
            objects_dir=self.settings.objects_dir,
        )
        layout.check(deployment)
        await asyncio.to_thread(layout.check_host_paths, deployment)
        name = deployment.name
        async with self._locks[name]:
            runtime = self._apps.get(name)
            same_version = (
                runtime is not None
                and runtime.target is not None
                and runtime.target.version == deployment.version
            )
            if runtime is not None and same_version and runtime.target == deployment:
                task = runtime.rollout_task
                # A failed rollout may still be writing its bookkeeping: applying is a retry.
                if task is None or task.done() or runtime.rollout_failed:
                    if runtime.complete and not runtime.rollout_failed:
                        return
                    task = None
            else:
                task = None
            if task is None:
                await asyncio.to_thread(self._book.save_spec, deployment)
                if runtime is None:
                    runtime = AppRuntime(name, self._context)
                    self._apps[name] = runtime
                await self._cancel_rollout(runtime)
                if deployment.app.workload != "cronjob":
                    await runtime.stop_cron()
                runtime.set_target(deployment, init_done=same_version and runtime.init_done)
                log.info("applying an app", extra={"app": name, "version": deployment.version})
                self.changed()
                await self.persist()
                task = self._tasks.spawn(self._rollout(runtime), f"native:{name}:rollout")
                runtime.rollout_task = task
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                return  # superseded by a newer apply or a remove of the same app
            raise

    async def remove(self, app: str) -> None:
        """Stop every instance of `app` and delete its run directory (its logs stay)."""
        self._require_running()
        async with self._locks[app]:
            runtime = self._apps.get(app)
            if runtime is None:
                await asyncio.to_thread(self._forget_files, app)
                return
            await self._remove(runtime)

    def observe(self) -> dict[str, AppStats]:
        """AppStats by app name; CPU/memory are at most `usage_interval` seconds old."""
        self._refresh_usage()
        result = {}
        for name, runtime in self._apps.items():
            if runtime.removing:
                continue
            stats = runtime.stats(self._usage)
            if stats is not None:
                result[name] = stats
        return result

    def rollout_failures(self) -> dict[str, tuple[str, str]]:
        """Apps whose last rollout ended in an error: name → (target version, cause)."""
        return {
            name: (runtime.target.version, runtime.problem)
            for name, runtime in self._apps.items()
            if runtime.rollout_failed and runtime.target is not None and not runtime.removing
        }

    def on_change(self, listener: StatusListener) -> None:
        """Call `listener` (from the event loop) whenever an app or instance status changes."""
        self._notifier.add(listener)

    async def logs(self, app: str, *, tail_lines: int | None, since_seconds: int | None) -> str:
        """The last lines of every instance log of `app` (per instance; see LogKeeper.read)."""
        runtime = self._apps.get(app)
        if runtime is None or runtime.removing:
            raise KeyError(app)
        directory = self._layout.app_log_dir(app)
        return await asyncio.to_thread(
            self._logs.read, directory, tail_lines=tail_lines, since_seconds=since_seconds
        )

    async def node_facts(self) -> NodeFacts | None:
        """None: a native node is the host the agent runs on (agent.core.node reads it)."""
        return None

    async def close(self) -> None:
        """Stop supervising; every app process keeps running for the next agent to adopt."""
        if not self._running:
            return
        self._running = False
        for runtime in self._apps.values():
            await self._cancel_rollout(runtime)
            if runtime.cron is not None:
                await runtime.cron.stop()  # a run going on is resumed by the next agent
        for runtime in self._apps.values():
            for instance in list(runtime.instances.values()):
                await instance.detach()
        persister = self._persister
        await self._tasks.stop(grace=CLOSE_GRACE, spare=() if persister is None else {persister})
        if persister is not None:
            await asyncio.gather(persister, return_exceptions=True)
        await self.persist()
        self._notifier.close()
        log.info("native backend closed; app processes left running")

    # -- Hooks (called by instances and apps) -------------------------------------------------

    def changed(self) -> None:
        """Something observable changed: notify listeners soon and write the bookkeeping."""
        self._dirty += 1
        self._notifier.changed()
        if self._running and (self._persister is None or self._persister.done()):
            self._persister = self._tasks.spawn(self._persist_pending(), "native:persist")

    async def persist(self) -> None:
        """Write bookkeeping and registry as they are now; returns once they are on disk.

        Writes are serialised and coalesced: a caller whose change an ongoing write did not
        include waits for the next one; a write error is logged (supervision goes on).
        """
        self._dirty += 1
        wanted = self._dirty
        async with self._write_lock:
            if self._written >= wanted:
                return
            mark = self._dirty
            apps = {name: runtime.record() for name, runtime in self._apps.items()}
            registry = self._registry_content()
            index = {
                name: found
                for name, runtime in self._apps.items()
                if not runtime.removing
                and runtime.target is not None
                and (found := functions.function_index(runtime.target.app))
            }
            try:
                await complete(asyncio.to_thread(self._write, apps, registry, index))
            except OSError as exc:
                log.warning("could not write the native bookkeeping", extra={"error": str(exc)})
                return
            self._written = mark

    # -- internals -----------------------------------------------------------------------------

    def _require_running(self) -> None:
        if not self._running:
            raise RuntimeError("NativeBackend.start() must be awaited first (or it was closed)")

    def _prepare_directories(self) -> None:
        self.settings.run_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        self.settings.log_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        if self.settings.registry_file is not None:  # readable by a proxy of another user
            self.settings.registry_file.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        self._book.prepare()

    async def _restore(
        self,
        name: str,
        record: AppRecord,
        marked: dict[Path, procs.Marked],
        orphans: list[procs.Proc],
    ) -> None:
        runtime = AppRuntime(name, self._context)
        target = await asyncio.to_thread(self._book.load_spec, name, record.target)
        versions = {r.version for r in record.instances}
        if record.cron is not None and record.cron.active is not None:
            versions.add(record.cron.active_version)  # a run going on, perhaps of an older one
        for version in versions - {record.target}:
            spec = await asyncio.to_thread(self._book.load_spec, name, version)
            if spec is not None:
                runtime.specs[version] = spec
        if target is not None:
            runtime.set_target(target, init_done=record.init_done, cron=record.cron)
        runtime.removing = record.removing or target is None
        for rec in record.instances:
            key = InstanceKey(rec.version, rec.service, rec.index, rec.init)
            proc = None
            ident = process_id(rec)
            if ident is not None:
                proc = await asyncio.to_thread(procs.adopt, ident)
            mark = marked.pop(Path(rec.directory), None)
            if proc is None and mark is not None:
                proc = await asyncio.to_thread(procs.adopt, mark.ident)
            instance = runtime.build(key, port=rec.port, record=rec)
            if instance is None:
                log.error(
                    "no spec for a recorded instance; stopping its process",
                    extra={"app": name, "version": rec.version, "service": rec.service},
                )
                if proc is not None:
                    orphans.append(proc)
                continue
            if rec.port is not None:
                self._ports.reserve(rec.port)
            runtime.instances[key] = instance
            finished = terminal_phase(rec.phase)
            extra = {"app": name, "instance": instance.name}
            if proc is not None:
                log.info("adopted a running instance", extra={**extra, "pid": proc.pid})
                instance.start(adopted=proc, was_ready=rec.ready)
            elif finished is not None:
                instance.restore(finished, rec.cause)
            elif rec.phase == "running" and rec.pid is not None:
                log.warning("an instance ended while the agent was away", extra=extra)
                instance.start(missed=missed_exit())
            else:
                instance.start()
        self._apps[name] = runtime

    async def _adopt_unrecorded(self, mark: procs.Marked, orphans: list[procs.Proc]) -> None:
        """A marked process the bookkeeping lacks: adopt it if its app wants it, else stop it."""
        parsed = self._layout.parse_instance_dir(mark.directory)
        proc = await asyncio.to_thread(procs.adopt, mark.ident)
        if proc is None:
            return
        if parsed is not None and mark.port is not None:
            app, version, service, index = parsed
            runtime = self._apps.get(app)
            if runtime is not None and runtime.target is not None and not runtime.removing:
                inits = {s.name for s in runtime.target.app.init_services}
                key = InstanceKey(version, service, index, service in inits)
                wanted = key in runtime.expected() and key not in runtime.instances
                instance = runtime.build(key, port=mark.port) if wanted else None
                if instance is not None:
                    self._ports.reserve(mark.port)
                    runtime.instances[key] = instance
                    log.info(
                        "adopted an unrecorded instance",
                        extra={"app": app, "instance": instance.name, "pid": proc.pid},
                    )
                    instance.start(adopted=proc)
                    return
        log.warning(
            "stopping an app process that no app claims",
            extra={"pid": proc.pid, "dir": str(mark.directory)},
        )
        orphans.append(proc)

    async def _stop_orphans(self, orphans: list[procs.Proc]) -> None:
        for proc in orphans:
            proc.watch(poll_interval=self.settings.tuning.poll_interval)
        try:
            await asyncio.gather(*(proc.terminate(self.settings.grace_period) for proc in orphans))
        finally:
            for proc in orphans:
                if not proc.exited.done():
                    proc.detach()  # closing: the next agent finds them again

    async def _rollout(self, runtime: AppRuntime) -> None:
        try:
            await runtime.rollout()
        except Exception as exc:
            # Reported as the app's cause (Failed, not a silent Pending) until the engine applies
            # the app again after its backoff (`rollout_failures`).
            runtime.problem = str(exc) if isinstance(exc, DeployError) else f"rollout: {exc!r}"
            runtime.rollout_failed = True
            raise
        finally:
            self.changed()
            await self.persist()

    async def _cancel_rollout(self, runtime: AppRuntime) -> None:
        task = runtime.rollout_task
        runtime.rollout_task = None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _remove(self, runtime: AppRuntime) -> None:
        await self._cancel_rollout(runtime)
        await runtime.stop_cron()
        runtime.removing = True
        self.changed()
        await self.persist()
        await runtime.stop_all()
        await asyncio.to_thread(self._forget_files, runtime.name)
        if self._apps.get(runtime.name) is runtime:
            del self._apps[runtime.name]
        log.info("removed an app", extra={"app": runtime.name})
        self.changed()
        await self.persist()

    async def _remove_later(self, app: str) -> None:
        async with self._locks[app]:
            runtime = self._apps.get(app)
            if runtime is not None:
                await self._remove(runtime)

    def _forget_files(self, app: str) -> None:
        layout.remove_tree(self._layout.app_dir(app))
        self._book.remove_specs(app)

    async def _persist_pending(self) -> None:
        while self._written < self._dirty:
            before = self._written
            await self.persist()
            if self._written == before:
                await asyncio.sleep(_RETRY_WRITE)

    def _write(
        self, apps: dict[str, AppRecord], registry: Registry | None, index: FunctionIndex
    ) -> None:
        self._book.save(apps)
        if self._registry is not None and registry is not None:
            self._registry.write(registry)
        if self._index is not None:
            self._index.write(index)

    def _registry_content(self) -> Registry | None:
        if self._registry is None:
            return None
        return build(
            (name, service, port)
            for name, runtime in self._apps.items()
            if not runtime.removing
            for service, port in runtime.serving()
        )

    def _signature(self) -> object:
        """What listeners care about: statuses, causes, pids, restarts (not usage)."""
        signature = []
        for name, runtime in sorted(self._apps.items()):
            stats = None if runtime.removing else runtime.stats({})
            if stats is None:
                continue
            instances = tuple(
                (key, i.status, i.cause, i.pid, i.restarts)
                for key, i in sorted(stats.instances.items())
            )
            signature.append(
                (name, stats.version, stats.status, stats.cause, instances, stats.cron_job)
            )
        return tuple(signature)

    def _refresh_usage(self) -> None:
        interval = self.settings.tuning.usage_interval
        if not self._running or time.monotonic() - self._usage_at < interval:
            return
        if self._usage_task is not None and not self._usage_task.done():
            return
        self._usage_at = time.monotonic()
        pids = [pid for runtime in self._apps.values() for pid in runtime.live_pids()]
        self._usage_task = self._tasks.spawn(self._sample_usage(pids), "native:usage")

    async def _sample_usage(self, pids: list[int]) -> None:
        self._usage = await asyncio.to_thread(self._sampler.sample, pids)

    async def _keep_logs(self) -> None:
        interval = self.settings.tuning.log_check_interval
        while True:
            paths = [path for runtime in self._apps.values() for path in runtime.log_paths()]
            try:
                await asyncio.to_thread(self._logs.check, paths)
            except OSError as exc:
                log.warning("log rotation failed", extra={"error": str(exc)})
            await asyncio.sleep(interval)
