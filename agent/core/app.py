"""baetyl-core assembled: one asyncio process with named root tasks (DESIGN §8).

Built and stopped in one place. Start order: local store → last desired state → backend (adopts
the apps that kept running) → engine, sync and local API tasks. The engine starts from the stored
desired state, so apps run with no cloud and no broker. Stop (SIGTERM): the link says offline,
the tasks are cancelled, the backend stops supervising and leaves every app running — within
STOP_TIMEOUT seconds.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from functools import partial
from pathlib import Path
from typing import Any, Final

from agent.contracts.core_settings import CORE, CoreSettings
from agent.contracts.desired import NODEPROPS, DesiredState
from agent.contracts.kit.aiotasks import Tasks
from agent.contracts.messages import CommandRequest
from agent.contracts.report import AppStats
from agent.core import logsetup, node
from agent.core.archives import UnpackLimits
from agent.core.backend import Backend, NodeIdentity
from agent.core.config import ConfigError, CoreConfig, node_identity, unsupported
from agent.core.engine.engine import Engine
from agent.core.native import NativeBackend, NativeSettings
from agent.core.objects import CacheSettings, ObjectCache
from agent.core.programs import node_platform
from agent.core.store import LocalStore
from agent.core.sync.link import LinkSettings
from agent.core.sync.shadow_sync import ShadowSync
from agent.core.sysapps import BuiltinApps, function_proxy_app
from agent.core.unused_fields import unused_fields
from agent.core.upgrade.manager import Upgrader, UpgradeSettings

log = logging.getLogger(__name__)
STOP_TIMEOUT: Final = 10.0
NATIVE_STATE: Final = "native"
KUBE_STATE: Final = "kube"
REGISTRY_FILE: Final = "services.json"


class CoreCrashed(RuntimeError):
    """A root task ended while nobody asked the agent to stop.

    The process must then exit non-zero: our systemd unit restarts the agent whatever its status
    (`Restart=always`), but a supervisor that restarts on failure only (a container's
    `on-failure` policy, a script) and an operator reading the status need to see the crash.
    """


class Core:
    """The agent: store, backend, engine, sync and local API, wired together."""

    def __init__(
        self,
        config: CoreConfig,
        *,
        identity: NodeIdentity | None = None,
        config_file: Path | None = None,
    ) -> None:
        """`config_file` is where `config` was read from; without it the agent cannot upgrade
        itself (the new version is checked against that file before the switch)."""
        self.config = config
        self.identity = identity or node_identity(config)
        self.store = LocalStore(config.store.dir)
        self.backend: Backend = self._backend()
        self.sync = ShadowSync(
            LinkSettings(
                host=config.cloud.host,
                port=config.cloud.port,
                nid=self.identity.nid,
                ca_file=config.node.ca,
                cert_file=config.node.cert,
                key_file=config.node.key,
                keepalive=max(1, int(config.cloud.keepalive)),
                timeout=config.sync.timeout,
            ),
            self.store,
            report_interval=config.sync.report_interval,
            reported=self.reported,
            on_desired=self._desired_changed,
            commands=self._command,
            on_connected=self._connected,
            on_accepted=self._report_accepted,
            poll=config.sync.mode == "poll",
            link=config.sync.link,
        )
        self.objects = ObjectCache(
            CacheSettings(
                root=config.objects.dir,
                ca_file=config.node.ca,
                max_bytes=config.objects.max_bytes,
                unpack=UnpackLimits(
                    max_bytes=config.objects.max_unpacked_bytes,
                    max_members=config.objects.max_members,
                ),
                timeout=config.objects.timeout,
                platform=node_platform(),
            )
        )
        self.engine = Engine(
            self.backend,
            self.store,
            self.sync.resources,
            interval=config.engine.interval,
            wake_on_change=config.engine.mode == "event",
            objects=self.objects,
            builtins=self._builtins(),
            unused=partial(unused_fields, backend=config.engine.backend),
        )
        self.upgrader = (
            Upgrader(
                UpgradeSettings(
                    store_dir=config.store.dir,
                    config_file=config_file,
                    confirm_timeout=config.upgrade.confirm_timeout,
                    extras=("kube",) if config.engine.backend == "kube" else (),
                ),
                self.objects,
                changed=self._upgrade_changed,
            )
            if config_file is not None
            else None
        )
        self._stats = node.StatsCollector(config.store.dir)
        self._core_info = node.core_info(config.engine.backend)
        self._log_level: str = config.log.level
        self._tasks = Tasks("root", logger=log)

    def _builtins(self) -> BuiltinApps | None:
        """The system apps this agent runs by itself: the function proxy."""
        config = self.config
        if config.function.proxy == "off":
            return None
        kube = config.engine.backend == "kube"
        proxy = function_proxy_app(
            interpreter=sys.executable,
            registry_file=config.run.dir / REGISTRY_FILE,
            address=config.function.address,
            image=config.kube.function_image if kube else None,
            host_registry_dir=config.kube.on_host(config.run.dir) if kube else None,
        )
        return BuiltinApps(proxy)

    def _backend(self) -> Backend:
        config = self.config
        problems = unsupported(config)
        if problems:
            raise ConfigError("core.yml", problems)
        if config.engine.backend == "kube":
            # Imported here: a native agent never loads the Kubernetes client (decision #100).
            from agent.core.kube.backend import KubeBackend, KubeSettings  # noqa: PLC0415

            return KubeBackend(
                self.identity,
                KubeSettings(
                    state_dir=config.store.dir / KUBE_STATE,
                    kubeconfig=config.kube.kubeconfig,
                    node_name=config.kube.node_name,
                    repair_interval=config.engine.interval,
                    function_image=config.kube.function_image,
                    function_address=config.function.address,
                    registry_file=config.run.dir / REGISTRY_FILE,
                    objects_dir=config.objects.dir,
                    objects_host_dir=config.kube.on_host(config.objects.dir),
                ),
            )
        settings = NativeSettings(
            run_dir=config.run.dir,
            log_dir=config.log.dir,
            state_dir=config.store.dir / NATIVE_STATE,
            port_range=config.native.port_range,
            grace_period=config.native.grace_period,
            registry_file=config.run.dir / REGISTRY_FILE,
            function_address=config.function.address,
            objects_dir=config.objects.dir,
            platform=node_platform(),
        )
        return NativeBackend(self.identity, settings)

    async def start(self) -> None:
        """Open the store, adopt running apps and start every root task."""
        await self.store.open()
        await self.sync.load()
        if self.upgrader is not None:
            await self.upgrader.load()
            self._core_info = self._core_info.model_copy(update={"upgrade": self.upgrader.status()})
        await self.backend.start()
        self.backend.on_change(self.sync.report_soon)
        self.engine.on_change(self.sync.report_soon)
        # The stored desired state as if it had just arrived: the apps, and the cloud's agent
        # settings and upgrade, hold across restarts even when the link stays down.
        self._desired_changed(self.sync.desired)
        self._tasks.spawn(self.engine.run(), "engine")
        self._tasks.spawn(self.sync.run(), "sync")
        if self.upgrader is not None:
            self._tasks.spawn(self.upgrader.run(), "upgrade")
        address = self.config.api.address
        if address is not None:
            self._tasks.spawn(self._serve_api(*address), "local-api")
        log.info(
            "baetyl-core started",
            extra={"nid": self.identity.nid, "apps": len(self.engine.wanted)},
        )
        if self.config.sync.mode != "push" or self.config.engine.mode != "event":
            log.warning(
                "polling timing: desired changes are applied late (not for production)",
                extra={
                    "sync_mode": self.config.sync.mode,
                    "report_interval": self.config.sync.report_interval,
                    "engine_mode": self.config.engine.mode,
                    "engine_interval": self.config.engine.interval,
                },
            )

    async def run_until(self, stop: asyncio.Event) -> None:
        """Start, run until `stop` is set, an upgrade switches or a root task ends, then stop.

        After a switch, `switch_to` names the virtualenv whose baetyl-core the caller execs.

        A root task runs for the agent's whole life, so one that ends first, failed or not, is a
        crash: after the orderly stop, `CoreCrashed` names it and its cause.
        """
        await self.start()
        stopper = asyncio.create_task(stop.wait(), name="stop-signal")
        waiters = [stopper]
        if self.upgrader is not None:
            waiters.append(
                asyncio.create_task(self.upgrader.switching.wait(), name="upgrade-switch")
            )
        try:
            done, _ = await asyncio.wait(
                [*waiters, *self._tasks], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
            await self.stop()
        ended = sorted((task for task in done if task not in waiters), key=asyncio.Task.get_name)
        if ended and not stop.is_set():
            raise CoreCrashed("; ".join(_ending(task) for task in ended))

    @property
    def switch_to(self) -> Path | None:
        """The new version's virtualenv once an upgrade switched, else None."""
        return self.upgrader.switch_to if self.upgrader is not None else None

    async def stop(self) -> None:
        """Orderly stop within STOP_TIMEOUT; apps keep running."""
        try:
            async with asyncio.timeout(STOP_TIMEOUT / 2):
                await self.sync.stop()
        except TimeoutError:
            log.warning("could not say offline in time")
        await self._tasks.stop(grace=STOP_TIMEOUT / 4)
        await self.backend.close()
        log.info("baetyl-core stopped; apps keep running")

    async def reported(self) -> dict[str, Any]:
        """The reported section as it should be now (sync sends what changed)."""
        observed = self.backend.observe()
        failed = self.engine.failures()
        warned = self.engine.warnings()
        want = self.engine.wanted
        sections: dict[str, dict[str, Any]] = {
            "apps": {},
            "sysapps": {},
            "appstats": {},
            "sysappstats": {},
        }
        for name, stats in observed.items():
            system = name in want and want[name].system
            version = self.engine.reported_version(name, stats.version)
            sections["sysapps" if system else "apps"][name] = version
            shown = _with_failure(stats, failed.get(name)).to_wire()
            if warned.get(name):
                shown["warnings"] = warned[name]
            sections["sysappstats" if system else "appstats"][name] = {**shown, "version": version}
        for name, failure in failed.items():
            if name not in observed:
                system = name in want and want[name].system
                sections["sysappstats" if system else "appstats"][name] = failure.to_wire()
        facts = await self.backend.node_facts()
        load = await self._stats.collect()
        if facts is None:
            info = await node.collect_info()
            extra: dict[str, Any] = {}
        else:
            # The Node object's facts; usage is still this host's (no metrics API needed).
            info = facts.info
            load = node.with_capacity(
                load, ready=facts.ready, capacity=facts.capacity, conditions=facts.conditions
            )
            extra = {"modeinfo": facts.modeinfo}
        return {
            **sections,
            **node.report_entries(info, load, self._core_info),
            **extra,
            NODEPROPS: self.sync.props.reported,
        }

    def _desired_changed(self, desired: DesiredState) -> None:
        wanted = CoreSettings.from_section(desired.extra.get(CORE))
        self._apply_core_settings(wanted)
        if self.upgrader is not None:
            self.upgrader.want(wanted)
        self.engine.set_desired(desired)

    def _apply_core_settings(self, wanted: CoreSettings) -> None:
        """The cloud's `frequency` and `logLevel`, in force at once; without them, core.yml's."""
        config = self.config
        frequency = wanted.frequency or config.sync.report_interval
        level = wanted.log_level or config.log.level
        changed = (frequency, level) != (self.sync.report_interval, self._log_level)
        if level != self._log_level:
            logsetup.set_level(level)
            self._log_level = level
        self.sync.set_report_interval(frequency)
        self._core_info = self._core_info.model_copy(
            update={
                "frequency": wanted.frequency,
                "log_level": wanted.log_level,
                # The wheel of the version that runs, echoed: the upgrade's delta closes.
                "wheel": wanted.wheel.to_wire()
                if wanted.wheel is not None and wanted.version == self._core_info.version
                else None,
            }
        )
        if changed:
            log.info(
                "agent settings changed",
                extra={"report_interval": frequency, "log_level": level},
            )

    def _report_accepted(self, reported: dict[str, Any]) -> None:
        if self.upgrader is not None:
            self.upgrader.accepted(reported)

    def _upgrade_changed(self) -> None:
        if self.upgrader is not None:
            self._core_info = self._core_info.model_copy(update={"upgrade": self.upgrader.status()})
        self.sync.report_soon()

    def _connected(self) -> None:
        self.engine.wake(retry_fetches=True)
        if self.upgrader is not None:
            self.upgrader.retry()

    async def _command(self, request: CommandRequest) -> Any:
        if request.cmd == "ping":
            return "pong"
        if request.cmd == "logs":
            args = request.args
            app = args.get("app")
            if not isinstance(app, str) or not app:
                raise ValueError("logs needs args.app")
            try:
                return await self.backend.logs(
                    app,
                    tail_lines=_optional_int(args.get("tailLines")),
                    since_seconds=_optional_int(args.get("sinceSeconds")),
                )
            except KeyError:
                raise ValueError(f"app {app} does not run on this node") from None
        raise ValueError(f"command {request.cmd} is not supported by this agent")

    async def _serve_api(self, host: str, port: int) -> None:
        # A node with `api.listen: false` never loads the API's modules (≈ 0.5 MB of RSS now that
        # it serves HTTP itself rather than through aiohttp; docs/performance-notes.md, "Agent").
        from agent.core import api  # noqa: PLC0415

        def cloud() -> api.CloudState:
            return api.CloudState(connected=self.sync.link.up, reports=self.sync.reports_sent)

        providers = api.ApiProviders(
            identity=self.identity,
            apps=self.backend,
            properties=self.sync.props,
            stats=node.StatsCollector(self.config.store.dir),
            core=self._core_info,
            cloud=cloud,
        )
        await api.serve_api(api.create_api(providers), host=host, port=port)


def _with_failure(stats: AppStats, failure: AppStats | None) -> AppStats:
    """Say why an app is not as desired: its rollout failed, or it runs an older version."""
    if failure is None:
        return stats
    if failure.version == stats.version:
        return stats.model_copy(update={"status": failure.status, "cause": failure.cause})
    return stats.model_copy(
        update={"cause": f"version {failure.version} not deployed: {failure.cause}"}
    )


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a whole number >= 1, got {value!r}")
    return value


def _ending(task: asyncio.Task[Any]) -> str:
    """How a root task ended, for the crash message: `local-api failed: [Errno 98] ...`."""
    name = task.get_name()
    if task.cancelled():
        return f"{name} was cancelled"
    error = task.exception()
    if error is None:
        return f"{name} ended"
    return f"{name} failed: {str(error) or type(error).__name__}"
