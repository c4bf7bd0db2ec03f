"""One app on the node: its target deployment, its instances, its rollout and its status.

A rollout makes the instances match the target: init services run first (once per version),
then for each service and index the new instance starts, becomes ready (or gives up after
`rollout_timeout`), and only then its old-version counterpart stops, one by one, so an update
never takes the whole app down. A service that publishes host ports is replaced the other way
round (stop old, start new), since both cannot hold the port. Instances no longer wanted (an
old version's, scaled away, a removed service's) stop last, and unused version directories go.

A cronjob app has no standing instances: its rollout only stops what is not part of a run and
starts its schedule (agent.core.native.cronjob), whose runs call `run_job`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.contracts.kit.aiotasks import Tasks
from agent.contracts.report import AppStats, AppStatus, Usage
from agent.contracts.resources import Service
from agent.core import functions
from agent.core.backend import DeployError, Deployment, NodeIdentity, baetyl_env
from agent.core.native import environment, layout, procs
from agent.core.native.aio import complete
from agent.core.native.bookkeeping import AppRecord, Bookkeeping, CronRecord, InstanceRecord
from agent.core.native.cronjob import Clock, CronJob
from agent.core.native.instance import (
    TERMINAL,
    Hooks,
    Instance,
    InstanceKey,
    Launch,
    Phase,
    Supervision,
)
from agent.core.native.policy import Backoff, InstanceView, Restart, RestartRule, app_status
from agent.core.native.ports import PortAllocator, PortsExhausted
from agent.core.native.settings import NativeSettings

log = logging.getLogger(__name__)
_HOSTNAME = socket.gethostname()
"""Where native instances run: this host (Baetyl's instance `nodeName`)."""

INIT_RULE = RestartRule(Restart.NEVER)
"""An init service runs once per try; a failure fails the rollout (old instances keep running)."""


@dataclass(frozen=True)
class Context:
    """What every app of one backend shares."""

    identity: NodeIdentity
    settings: NativeSettings
    layout: layout.Layout
    ports: PortAllocator
    bookkeeping: Bookkeeping
    hooks: Hooks
    agent_env: Mapping[str, str]
    clock: Clock
    """The wall clock of cronjob schedules."""
    tasks: Tasks
    """The backend's tasks, which own the schedules' timers and runs."""


class AppRuntime:
    """The backend's view of one app. Mutated only from the event loop."""

    def __init__(self, name: str, context: Context) -> None:
        self.name = name
        self.context = context
        self.target: Deployment | None = None
        self.specs: dict[str, Deployment] = {}
        self.instances: dict[InstanceKey, Instance] = {}
        self.removing = False
        self.init_done = True
        self.problem = ""
        self.rollout_failed = False
        """The last rollout ended in an error (`problem` says which): apply it again to retry."""
        self.lock = asyncio.Lock()
        self.rollout_task: asyncio.Task[None] | None = None
        self.cron: CronJob | None = None
        """A cronjob app's schedule (None for every other workload)."""

    # -- target and plan ---------------------------------------------------------------------

    def set_target(
        self, deployment: Deployment, *, init_done: bool = False, cron: CronRecord | None = None
    ) -> None:
        """Make `deployment` what the app should run (the rollout does the rest). A cronjob's
        schedule is made (from its bookkept `cron` state) or follows the new version; the
        caller stops the schedule of an app that is no longer a cronjob (`stop_cron`)."""
        self.target = deployment
        self.specs[deployment.version] = deployment
        app = deployment.app
        scheduled = app.workload == "cronjob"
        # A cronjob's init services run before each run's services, as a Job pod's do.
        self.init_done = init_done or not app.init_services or scheduled
        self.problem = ""
        self.rollout_failed = False
        if not scheduled:
            return
        if self.cron is None:
            context = self.context
            self.cron = CronJob(
                self.name,
                schedule=app.cron_schedule,
                version=deployment.version,
                record=cron,
                clock=context.clock,
                tasks=context.tasks,
                hooks=context.hooks,
                run_job=self.run_job,
                forget_finished=self.forget_finished,
            )
        else:
            self.cron.retarget(app.cron_schedule, deployment.version)

    async def stop_cron(self) -> None:
        """Stop and forget the schedule (the app is removed or no longer a cronjob)."""
        schedule, self.cron = self.cron, None
        if schedule is not None:
            await schedule.stop()

    def expected(self) -> list[InstanceKey]:
        """The instances the target wants, in rollout order (a cronjob's: its run's)."""
        if self.target is None:
            return []
        if self.cron is not None:
            version = self.cron.active_version
            return [] if version is None else self.job_keys(version)
        app = self.target.app
        return [
            InstanceKey(app.version, service.name, index)
            for service in app.services
            for index in range(1, layout.replicas(app, service) + 1)
        ]

    def job_keys(self, version: str) -> list[InstanceKey]:
        """The instances of one run of a cronjob at `version`: init services, then services."""
        deployment = self.specs.get(version)
        if deployment is None:
            return []
        app = deployment.app
        inits = [InstanceKey(version, s.name, 1, init=True) for s in app.init_services]
        return inits + [
            InstanceKey(version, service.name, index)
            for service in app.services
            for index in range(1, layout.replicas(app, service) + 1)
        ]

    @property
    def complete(self) -> bool:
        """True when the instances are exactly what the target wants (a cronjob: its schedule
        runs and nothing runs that is not part of its run)."""
        if not self.init_done:
            return False
        if self.cron is not None:
            return self.cron.running and not self._strays()
        live = {key for key, inst in self.instances.items() if inst.phase is not Phase.STOPPED}
        return live == set(self.expected())

    def _strays(self) -> list[InstanceKey]:
        """A cronjob's instances that still run but are no part of the run going on."""
        wanted = set(self.expected())
        return [
            key
            for key, inst in self.instances.items()
            if inst.phase not in TERMINAL and key not in wanted
        ]

    # -- instances ---------------------------------------------------------------------------

    def instance_name(self, key: InstanceKey) -> str:
        """`<ns>.<app>.<version>.<service>.<i>`, Baetyl's name for a native instance."""
        ns = self.context.identity.namespace
        return f"{ns}.{self.name}.{key.version}.{key.service}.{key.index}"

    def _service(self, key: InstanceKey) -> Service | None:
        deployment = self.specs.get(key.version)
        if deployment is None:
            return None
        services = deployment.app.init_services if key.init else deployment.app.services
        return next((s for s in services if s.name == key.service), None)

    def build(
        self, key: InstanceKey, *, port: int | None, record: InstanceRecord | None = None
    ) -> Instance | None:
        """An Instance object for `key` (not started); None if its spec is unknown."""
        service = self._service(key)
        deployment = self.specs.get(key.version)
        if service is None or deployment is None:
            return None
        context = self.context
        settings = context.settings
        tuning = settings.tuning
        directory = context.layout.instance_dir(self.name, key.version, key.service, key.index)
        launch = self._launch(deployment, service, key, port=port, directory=directory)
        rule = INIT_RULE if key.init else RestartRule.for_app(deployment.app)
        supervision = Supervision(
            rule=rule,
            backoff=Backoff(tuning.backoff_base, tuning.backoff_cap, tuning.backoff_reset),
            crashloop_threshold=tuning.crashloop_threshold,
            grace_period=settings.grace_period,
            poll_interval=tuning.poll_interval,
        )
        return Instance(
            app=self.name,
            name=self.instance_name(key),
            key=key,
            port=port,
            directory=directory,
            launch=launch,
            supervision=supervision,
            hooks=context.hooks,
            restarts=0 if record is None else record.restarts,
            streak=0 if record is None else record.streak,
            failures=0 if record is None else record.failures,
        )

    def _launch(
        self,
        deployment: Deployment,
        service: Service,
        key: InstanceKey,
        *,
        port: int | None,
        directory: Path,
    ) -> Launch:
        platform = {
            **baetyl_env(deployment, service.name, self.context.identity, mode="native"),
            procs.MARKER: str(directory),
        }
        if port is not None:
            platform[procs.PORT_VARIABLE] = str(port)
        env = environment.build(self.context.agent_env, service.env, platform)
        argv = tuple(environment.expand(part, env) for part in [*service.command, *service.args])
        work = layout.working_path(service)
        cwd = directory if work is None else directory / work
        return Launch(
            argv=argv,
            env=env,
            cwd=cwd,
            log_path=self.context.layout.log_path(self.name, key.service, key.index),
            liveness=service.liveness_probe,
            readiness=service.readiness_probe or functions.runtime_readiness(service, port),
            probe_env={name: value for name, value in env.items() if name != procs.MARKER},
        )

    async def add(self, key: InstanceKey) -> Instance:
        """Create, materialise and start a new instance (DeployError if it cannot be set up)."""
        deployment = self.specs[key.version]
        service = self._service(key)
        assert service is not None
        context = self.context
        where = f"app {self.name!r} service {key.service!r} instance {key.index}"
        try:
            port = await complete(asyncio.to_thread(context.ports.allocate))
        except PortsExhausted as exc:
            raise DeployError(f"{where}: {exc}") from exc
        directory = context.layout.instance_dir(self.name, key.version, key.service, key.index)
        try:
            # Finished even when cancelled: a half-made directory must not race the next try.
            await complete(
                asyncio.to_thread(
                    layout.materialise,
                    directory,
                    deployment,
                    service,
                    objects_dir=context.settings.objects_dir,
                )
            )
        except BaseException:
            context.ports.release(port)
            raise
        instance = self.build(key, port=port)
        assert instance is not None
        self.instances[key] = instance
        instance.start()
        context.hooks.changed()
        return instance

    async def discard(self, key: InstanceKey) -> None:
        """Stop an instance and forget it (its port is released)."""
        instance = self.instances.get(key)
        if instance is None:
            return
        await instance.stop()
        if self.instances.get(key) is instance:
            del self.instances[key]
        if instance.port is not None:
            self.context.ports.release(instance.port)
        self.context.hooks.changed()
        await self.context.hooks.persist()

    async def stop_all(self) -> None:
        """Stop every instance (in parallel) and forget them."""
        await asyncio.gather(*(self.discard(key) for key in list(self.instances)))

    # -- rollout -----------------------------------------------------------------------------

    def purge_stopped(self) -> None:
        """Forget instances whose stop completed after an interrupted rollout or removal."""
        for key, inst in list(self.instances.items()):
            if inst.phase is Phase.STOPPED:
                del self.instances[key]
                if inst.port is not None:
                    self.context.ports.release(inst.port)

    async def rollout(self) -> None:
        """Make the instances match the target (see the module docstring)."""
        target = self.target
        assert target is not None
        self.purge_stopped()
        if self.cron is not None:
            # A finished run's instances stay (reported) until the next run replaces them.
            await asyncio.gather(*(self.discard(key) for key in self._strays()))
            await self.tidy()
            self.cron.start()
            log.info("schedule running", extra={"app": self.name, "version": target.version})
            return
        if not self.init_done and not await self._run_init_services(target):
            # A failed rollout like any other: Failed with this cause, retried with backoff.
            raise DeployError(self.problem)
        timeout = self.context.settings.tuning.rollout_timeout
        for service in target.app.services:
            host_ports = any(port.host_port for port in service.ports)
            for index in range(1, layout.replicas(target.app, service) + 1):
                key = InstanceKey(target.version, service.name, index)
                if key in self.instances:
                    continue
                olds = [
                    k
                    for k in self.instances
                    if k.service == service.name and k.index == index and not k.init
                ]
                if host_ports:
                    await asyncio.gather(*(self.discard(old) for old in olds))
                new = await self.add(key)
                await self.context.hooks.persist()
                await new.wait_settled(timeout)
                await asyncio.gather(*(self.discard(old) for old in olds))
        wanted = set(self.expected())
        leftovers = [key for key in self.instances if key not in wanted]
        await asyncio.gather(*(self.discard(key) for key in leftovers))
        await self.tidy()
        log.info("rollout done", extra={"app": self.name, "version": target.version})

    async def _run_init_services(self, target: Deployment) -> bool:
        for service in target.app.init_services:
            key = InstanceKey(target.version, service.name, 1, init=True)
            existing = self.instances.get(key)
            if existing is not None and existing.phase is Phase.FAILED:
                await self.discard(key)  # a retry (agent restart, apply again): run it afresh
                existing = None
            instance = existing or await self.add(key)
            await self.context.hooks.persist()
            await instance.wait_finished()
            if instance.phase is not Phase.SUCCEEDED:
                self.problem = f"init service {service.name!r}: {instance.cause or 'stopped'}"
                log.warning("init service failed", extra={"app": self.name, "cause": self.problem})
                self.context.hooks.changed()
                await self.context.hooks.persist()
                return False
            await self.discard(key)
        self.init_done = True
        self.problem = ""
        self.context.hooks.changed()
        await self.context.hooks.persist()
        return True

    async def run_job(self, version: str, resume: bool) -> tuple[AppStatus, str]:
        """One run of a cronjob at `version`, as a native job runs: the init services one after
        the other, then every service instance at once, each to completion under the job's
        restart rule. A new run first drops the instances of the run before; a `resume`d one
        (after an agent restart) keeps the instances it has, adopted or finished meanwhile, and
        starts only those it lacks. Returns Succeeded, or Failed with the first cause."""
        deployment = self.specs.get(version)
        if deployment is None:
            return AppStatus.FAILED, f"version {version} of the app is no longer kept"
        if not resume:  # the run before's are gone (forget_finished); strays would be too
            await asyncio.gather(*(self.discard(key) for key in list(self.instances)))
            await self.tidy()
        persist = self.context.hooks.persist
        for key in self.job_keys(version):
            if not key.init:
                break
            instance = self.instances.get(key) or await self.add(key)
            await persist()
            await instance.wait_finished()
            if instance.phase is not Phase.SUCCEEDED:
                return (
                    AppStatus.FAILED,
                    f"init service {key.service!r}: {instance.cause or 'stopped'}",
                )
        keys = [key for key in self.job_keys(version) if not key.init]
        started = [self.instances.get(key) or await self.add(key) for key in keys]
        await persist()
        await asyncio.gather(*(instance.wait_finished() for instance in started))
        for instance in sorted(started, key=lambda inst: inst.name):
            if instance.phase is not Phase.SUCCEEDED:
                return (
                    AppStatus.FAILED,
                    f"{instance.name}: {instance.cause or instance.phase.value}",
                )
        return AppStatus.SUCCEEDED, ""

    def forget_finished(self) -> None:
        """Forget the finished instances (a cronjob's run before, as the next one starts) at
        once: their supervision has ended, so there is nothing to stop, only a port to free."""
        for key, inst in list(self.instances.items()):
            if inst.phase in TERMINAL:
                del self.instances[key]
                if inst.port is not None:
                    self.context.ports.release(inst.port)
        self.context.hooks.changed()

    async def tidy(self) -> None:
        """Delete version directories and kept specs that no instance or target uses."""
        keep = {key.version for key in self.instances}
        if self.target is not None:
            keep.add(self.target.version)
        if self.cron is not None and self.cron.active_version is not None:
            keep.add(self.cron.active_version)
        self.specs = {version: d for version, d in self.specs.items() if version in keep}
        context = self.context
        await asyncio.to_thread(layout.remove_unused_versions, context.layout, self.name, keep)
        await asyncio.to_thread(context.bookkeeping.remove_specs, self.name, keep=keep)

    # -- views -------------------------------------------------------------------------------

    def stats(self, usage: Mapping[int, Usage]) -> AppStats | None:
        """AppStats of the app (None while it has no target)."""
        target = self.target
        if target is None:
            return None
        views = []
        instances = {}
        for key, inst in sorted(self.instances.items()):
            if inst.phase is Phase.STOPPED:
                continue
            status, cause = inst.status
            if key.init:
                if inst.phase is Phase.SUCCEEDED:
                    continue
                if status is AppStatus.RUNNING:
                    status, cause = AppStatus.PENDING, f"init service {key.service!r} running"
            pid = None if inst.proc is None else inst.proc.pid
            instances[inst.name] = inst.stats(None if pid is None else usage.get(pid)).model_copy(
                update={"app_name": self.name, "node_name": _HOSTNAME}
            )
            if key.version == target.version:
                views.append(InstanceView(inst.name, status, cause))
        if self.cron is not None:
            # Scheduled, as a CronJob reads in kube mode; its runs are told in `cron_job`.
            status, cause = (
                (AppStatus.FAILED, self.problem) if self.problem else (AppStatus.RUNNING, "")
            )
        else:
            expected = len(self.expected())
            status, cause = app_status(views, expected=expected, problem=self.problem)
        return AppStats(
            name=self.name,
            version=target.version,
            status=status,
            cause=cause,
            instances=instances,
            cron_job=None if self.cron is None else self.cron.stats(),
        )

    def serving(self) -> Iterable[tuple[str, int]]:
        """(service, port) of instances that run and are ready."""
        for key, inst in self.instances.items():
            if not key.init and inst.serving and inst.port is not None:
                yield key.service, inst.port

    def record(self) -> AppRecord:
        """The app as bookkept."""
        target = self.target
        return AppRecord(
            target="" if target is None else target.version,
            removing=self.removing,
            init_done=self.init_done,
            instances=tuple(
                inst.record()
                for _, inst in sorted(self.instances.items())
                if inst.phase is not Phase.STOPPED
            ),
            cron=None if self.cron is None else self.cron.record,
        )

    def live_pids(self) -> list[int]:
        """Pids of instance processes now running."""
        return [inst.proc.pid for inst in self.instances.values() if inst.proc is not None]

    def log_paths(self) -> list[Path]:
        """Log files of the instances that exist now."""
        return [inst.launch.log_path for inst in self.instances.values()]


def terminal_phase(value: str) -> Phase | None:
    """The recorded phase if it is a finished one (a job's result), else None."""
    try:
        phase = Phase(value)
    except ValueError:
        return None
    return phase if phase in TERMINAL and phase is not Phase.STOPPED else None


def process_id(record: InstanceRecord) -> procs.ProcessId | None:
    """The recorded process identity, if a process was recorded."""
    if record.pid is None:
        return None
    return procs.ProcessId(
        pid=record.pid,
        create_time=record.create_time or 0.0,
        start_ticks=record.start_ticks,
        boot_id=record.boot_id,
    )


def agent_environment() -> dict[str, str]:
    """The agent's environment (only its safe part reaches apps: see `environment`)."""
    return dict(os.environ)
