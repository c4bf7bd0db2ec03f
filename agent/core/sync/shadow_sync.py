"""The node's shadow, kept in step with the cloud: desired in, reported out (DESIGN §4, §8).

- On every connect: `shadow/get` (after the link subscribed), which gives the current desired
  state and what the cloud holds as reported.
- A delta newer than the version known here means desired moved on: read the document again (a
  delta cannot show removals, decision #41). Older or equal deltas are stale and ignored.
- Reports send only what changed since the last accepted report, at most one in flight, at once
  when something asks for it (an app changed status) and at least every `report_interval`.
- An accepted report whose version skips one means another writer (the cloud) changed the
  document meanwhile: read it again.
- The node certificate is renewed over the same link at 2/3 of its lifetime (`renewal.py`).
- With `poll` (`sync.mode: poll`: a polling agent's timing, such as Baetyl v2's, for comparison;
  not for production) deltas are ignored, reports go out only every `report_interval` on a fixed
  schedule (a request for an early one waits for the tick), and the document is read after each,
  as a polling agent learns desired changes only from its periodic report. Everything else above
  is the same.

Desired states are saved to the local store before the engine hears of them, so an agent that
restarts without a broker runs the last desired state it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from agent.contracts import shadow, wire
from agent.contracts.messages import (
    CommandRequest,
    CommandResponse,
    ResourceRef,
    ResourcesGetAccepted,
    ShadowDelta,
    ShadowGetAccepted,
)
from agent.contracts.resources import Application, Configuration, Secret
from agent.contracts.topics import Channel
from agent.core.backend import FetchError
from agent.core.store import LocalStore, ResourceKey
from agent.core.sync import renewal
from agent.core.sync.answer_fit import fit_answer
from agent.core.sync.diff import diff
from agent.core.sync.link import AgentLink, LinkDown, LinkSettings, Received
from agent.core.sync.requests import ACCEPTED, REJECTED, Rejected, Requests

log = logging.getLogger(__name__)
Resource = Application | Configuration | Secret
ReportedBuilder = Callable[[], Awaitable[dict[str, Any]]]
DesiredListener = Callable[[dict[str, Any]], None]
CommandHandler = Callable[[CommandRequest], Awaitable[Any]]

FETCH_BATCH: Final = 64  # the protocol's limit of entries per resources/get
MIN_REPORT_GAP: Final = 0.2  # a crash-looping app must not flood the cloud (it limits at 20/s)
NODEPROPS: Final = "nodeprops"
PROPS_STATE: Final = "nodeprops"
MAX_COMMANDS: Final = 8


class ShadowSync:
    """Owns the link and the report loop; `run` is the body of the agent's `sync` task."""

    def __init__(
        self,
        settings: LinkSettings,
        store: LocalStore,
        *,
        report_interval: float,
        reported: ReportedBuilder,
        on_desired: DesiredListener,
        commands: CommandHandler,
        on_connected: Callable[[], None] | None = None,
        poll: bool = False,
    ) -> None:
        self._settings = settings
        self._poll = poll
        self._store = store
        self._on_connected = on_connected
        self._report_interval = report_interval
        self._build_reported = reported
        self._on_desired = on_desired
        self._handle_command = commands
        self._link = AgentLink(settings, self._deliver, self._connected)
        self._requests = Requests(self._link.publish, timeout=settings.timeout)
        self._renewal = renewal.CertRenewal(settings, self._requests, self._link)
        self.desired: dict[str, Any] = {}
        self.version = 0  # the newest document version known here
        self._accepted: dict[str, Any] | None = None  # reported, as the cloud holds it
        self._local_props: dict[str, str] = {}
        self._report_now = asyncio.Event()
        self._refresh_now = asyncio.Event()
        self._command_gate = asyncio.Semaphore(MAX_COMMANDS)
        self._command_tasks: set[asyncio.Task[None]] = set()
        self.reports_sent = 0

    @property
    def link(self) -> AgentLink:
        """The MQTT link (tests and the health check read its state)."""
        return self._link

    @property
    def cert_renewal(self) -> renewal.CertRenewal:
        """The certificate renewal (tests read its count)."""
        return self._renewal

    async def load(self) -> None:
        """Start from the store: the last desired state and the local node properties.

        A certificate renewal that a crash interrupted is finished (or undone) first, before
        the link reads the files.
        """
        settings = self._settings
        done = await asyncio.to_thread(renewal.recover, settings.cert_file, settings.key_file)
        if done is not None:
            log.warning(done, extra={"cert_file": str(settings.cert_file)})
        snapshot = await self._store.load_desired()
        if snapshot is not None:
            self.desired, self.version = snapshot.section, snapshot.version
        props = await self._store.load_state(PROPS_STATE)
        if props:
            self._local_props = {str(k): str(v) for k, v in props.items()}

    async def run(self) -> None:
        """Run the link, the report loop, the refresher and the renewal until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._link.run(), name="sync-link")
            group.create_task(self._report_loop(), name="sync-report")
            group.create_task(self._refresh_loop(), name="sync-refresh")
            group.create_task(self._renewal.run(), name="sync-renew")

    async def stop(self) -> None:
        """Tell the cloud this node goes offline (the caller then cancels `run`)."""
        for task in list(self._command_tasks):
            task.cancel()
        await self._link.stop()

    def report_soon(self) -> None:
        """Something the report holds changed: send a report now (coalesced)."""
        self._report_now.set()

    # -- node properties (the local API's NodeProperties) --------------------------------------

    def current(self) -> dict[str, Any]:
        """`{"report": …, "desire": …}` node properties as known here."""
        desire = self.desired.get(NODEPROPS)
        return {
            "report": dict(self._local_props),
            "desire": dict(desire) if isinstance(desire, dict) else {},
        }

    async def update(self, patch: dict[str, str]) -> dict[str, Any]:
        """Merge `patch` into the reported node properties, keep them, report them."""
        self._local_props.update(patch)
        await self._store.save_state(PROPS_STATE, dict(self._local_props))
        self.report_soon()
        return dict(self._local_props)

    @property
    def reported_props(self) -> dict[str, str]:
        """The node properties to report."""
        return dict(self._local_props)

    # -- resources ------------------------------------------------------------------------------

    async def fetch(self, keys: Sequence[ResourceKey]) -> list[Resource]:
        """Fetch resources by (kind, name, version) from the cloud; FetchError when it can't."""
        found: list[Resource] = []
        for start in range(0, len(keys), FETCH_BATCH):
            batch = keys[start : start + FETCH_BATCH]
            refs = [
                ResourceRef(kind=kind, name=name, version=version).to_wire()
                for kind, name, version in batch
            ]
            try:
                answer = await self._requests.ask(Channel.RESOURCES_GET, {"resources": refs})
                # Through JSON text: strict models take datetimes as strings only from JSON.
                accepted = wire.validate(ResourcesGetAccepted, answer.body)
            except Rejected as exc:
                raise FetchError(f"the cloud refused the resources: {exc}") from exc
            except (TimeoutError, LinkDown) as exc:
                raise FetchError(f"resources cannot be fetched now: {exc or 'timed out'}") from exc
            except ValueError as exc:
                raise FetchError(f"the cloud sent unusable resources: {exc}") from exc
            found.extend(value.value for value in accepted.values)
        return found

    # -- receiving --------------------------------------------------------------------------

    async def _deliver(self, message: Received) -> None:
        """Called by the link for each message, in order; never raises."""
        try:
            if message.channel in ACCEPTED or message.channel in REJECTED:
                self._requests.deliver(message.channel, _json_object(message.payload))
            elif message.channel is Channel.SHADOW_UPDATE_DELTA:
                delta = ShadowDelta.decode(message.payload)
                if self._poll:
                    log.debug("ignored a delta: polling", extra={"version": delta.version})
                elif delta.version > self.version:
                    self._refresh_now.set()
                else:
                    log.debug("ignored a stale delta", extra={"version": delta.version})
            elif message.channel is Channel.CMD_REQUEST:
                self._start_command(CommandRequest.decode(message.payload))
        except ValueError as exc:
            log.warning(
                "dropped a bad message from the cloud",
                extra={"channel": str(message.channel), "error": str(exc)},
            )

    async def _connected(self) -> None:
        """Subscribed and online: read the document, then report what differs."""
        try:
            await self._refresh()
        except (Rejected, TimeoutError, LinkDown, ValueError) as exc:
            log.warning("could not read the shadow after connecting", extra={"error": str(exc)})
            self._refresh_now.set()
        if self._on_connected is not None:
            self._on_connected()
        self.report_soon()

    async def _refresh_loop(self) -> None:
        while True:
            await self._refresh_now.wait()
            self._refresh_now.clear()
            await self._link.wait_up()
            try:
                await self._refresh()
            except (Rejected, TimeoutError, LinkDown, ValueError) as exc:
                log.warning("could not read the shadow", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
                self._refresh_now.set()

    async def _refresh(self) -> None:
        answer = await self._requests.ask(Channel.SHADOW_GET, {})
        doc = ShadowGetAccepted.model_validate(answer.body)
        self._accepted = dict(doc.state.reported)
        self.version = doc.version
        await self._adopt_desired(dict(doc.state.desired), doc.version)

    async def _adopt_desired(self, desired: dict[str, Any], version: int) -> None:
        if desired == self.desired:
            return
        self.desired = desired
        await self._store.save_desired(desired, version)
        log.info("desired state changed", extra={"version": version})
        self._on_desired(desired)

    # -- reporting ------------------------------------------------------------------------

    async def _report_loop(self) -> None:
        loop = asyncio.get_running_loop()
        tick = loop.time() + self._report_interval
        while True:
            if self._poll:
                # A polling agent reports on its ticker's fixed schedule only, and hears of
                # desired changes from those reports alone: a report sent early (an app changed
                # status) would have it hear sooner, so early requests wait for the tick.
                await asyncio.sleep(max(0.0, tick - loop.time()))
                tick += self._report_interval
                if tick <= loop.time():  # fell behind (a slow report): skip the missed ticks
                    tick = loop.time() + self._report_interval
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._report_now.wait(), self._report_interval)
            self._report_now.clear()
            if not self._link.up or self._accepted is None:
                continue  # the connect callback reads the document and asks for a report
            try:
                await self._report_once()
            except Exception:
                log.exception("report failed")
            if self._poll:
                log.debug("polling the shadow", extra={"version": self.version})
                self._refresh_now.set()  # what the answer to a polling agent's report carries
            await asyncio.sleep(MIN_REPORT_GAP)

    async def _report_once(self) -> None:
        assert self._accepted is not None
        current = await self._build_reported()
        patch = diff(self._accepted, current)
        if not patch:
            return
        try:
            answer = await self._requests.ask(
                Channel.SHADOW_UPDATE, {"state": {shadow.REPORTED: patch}}
            )
        except Rejected as exc:
            log.error(  # noqa: TRY400 - a refusal is an answer, not a crash: no traceback
                "the cloud refused a report", extra={"code": exc.code, "error": exc.message}
            )
            return
        except (TimeoutError, LinkDown) as exc:
            log.warning("report not confirmed", extra={"error": str(exc) or "timed out"})
            return
        self.reports_sent += 1
        self._accepted = shadow.merge(self._accepted, patch)
        version = answer.body.get("version")
        if isinstance(version, int):
            if version != self.version + 1:
                self._refresh_now.set()  # someone else wrote meanwhile
            self.version = max(self.version, version)
        log.debug("report accepted", extra={"version": version, "keys": sorted(patch)})

    # -- commands -------------------------------------------------------------------------

    def _start_command(self, request: CommandRequest) -> None:
        task = asyncio.create_task(self._command(request), name=f"command-{request.cmd}")
        self._command_tasks.add(task)
        task.add_done_callback(self._command_tasks.discard)

    async def _command(self, request: CommandRequest) -> None:
        async with self._command_gate:
            started = time.monotonic()
            token = request.client_token
            try:
                result = await self._handle_command(request)
                response = CommandResponse(client_token=token, ok=True, result=result)
            except Exception as exc:  # noqa: BLE001 - the answer says why; the agent carries on
                error = str(exc) or type(exc).__name__
                response = CommandResponse(client_token=token, ok=False, error=error)
            try:
                await self._link.publish(Channel.CMD_RESPONSE, fit_answer(response))
            except LinkDown as exc:
                log.warning("could not answer a command", extra={"error": str(exc)})
            log.info(
                "answered a command",
                extra={"cmd": request.cmd, "ok": response.ok, "ms": _ms(started)},
            )


def _json_object(payload: bytes) -> dict[str, Any]:
    body = json.loads(payload)
    if not isinstance(body, dict):
        raise ValueError("an answer must be a JSON object")  # noqa: TRY004 - bad input, not a bug
    return body


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
