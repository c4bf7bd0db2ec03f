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

The link carries more than the shadow; each of those has its own module, wired here: commands
(`commands.py`), resource fetching (`resources.py`), node properties (`node_props.py`) and
certificate renewal (`renewal.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from agent.contracts import shadow
from agent.contracts.desired import EMPTY, DesiredState
from agent.contracts.messages import CommandRequest, ShadowDelta, ShadowGetAccepted
from agent.contracts.topics import Channel
from agent.core.store import LocalStore
from agent.core.sync import renewal
from agent.core.sync.commands import CommandHandler, CommandRunner
from agent.core.sync.diff import diff
from agent.core.sync.link import LinkDown, LinkSettings, Received
from agent.core.sync.link_plugin import DEFAULT_LINK, SYNC_LINK, SyncLink
from agent.core.sync.node_props import NodeProps
from agent.core.sync.requests import ACCEPTED, REJECTED, Rejected, Requests
from agent.core.sync.resources import ResourceFetcher

log = logging.getLogger(__name__)
ReportedBuilder = Callable[[], Awaitable[dict[str, Any]]]
DesiredListener = Callable[[DesiredState], None]

MIN_REPORT_GAP: Final = 0.2  # a crash-looping app must not flood the cloud (it limits at 20/s)


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
        on_accepted: Callable[[dict[str, Any]], None] | None = None,
        poll: bool = False,
        link: str = DEFAULT_LINK,
    ) -> None:
        """`link` names the sync link plug-in (`sync.link`; PluginError when it is unusable)."""
        self._settings = settings
        self._poll = poll
        self._store = store
        self._on_connected = on_connected
        self._on_accepted = on_accepted
        self._report_interval = report_interval
        self._build_reported = reported
        self._on_desired = on_desired
        self._link = SYNC_LINK.make(link, settings, self._deliver, self._connected)
        self._requests = Requests(self._link.publish, timeout=settings.timeout)
        self._renewal = renewal.CertRenewal(settings, self._requests, self._link)
        self.commands = CommandRunner(commands, self._link.publish)
        self.resources = ResourceFetcher(self._requests)
        self.props = NodeProps(
            store, desire=lambda: self.desired.nodeprops, changed=self.report_soon
        )
        self.desired: DesiredState = EMPTY
        self.version = 0  # the newest document version known here
        self._accepted: dict[str, Any] | None = None  # reported, as the cloud holds it
        self._report_now = asyncio.Event()
        self._refresh_now = asyncio.Event()
        self.reports_sent = 0

    @property
    def link(self) -> SyncLink:
        """The link (tests and the health check read its state)."""
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
            self.desired = DesiredState.from_section(snapshot.section)
            self.version = snapshot.version
        await self.props.load()

    async def run(self) -> None:
        """Run the link, the report loop, the refresher and the renewal until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._link.run(), name="sync-link")
            group.create_task(self._report_loop(), name="sync-report")
            group.create_task(self._refresh_loop(), name="sync-refresh")
            group.create_task(self._renewal.run(), name="sync-renew")

    async def stop(self) -> None:
        """Tell the cloud this node goes offline (the caller then cancels `run`)."""
        await self.commands.stop()
        await self._link.stop()

    def report_soon(self) -> None:
        """Something the report holds changed: send a report now (coalesced)."""
        self._report_now.set()

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
                elif delta.version <= self.version:
                    log.debug("ignored a stale delta", extra={"version": delta.version})
                elif delta.desired is None or self._accepted is None:
                    self._refresh_now.set()  # no content, or no document read yet: read it
                else:
                    await self._adopt_pushed(delta.desired, delta.version)
            elif message.channel is Channel.CMD_REQUEST:
                self.commands.start(CommandRequest.decode(message.payload))
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
        asked_at = self.version
        answer = await self._requests.ask(Channel.SHADOW_GET, {})
        doc = ShadowGetAccepted.model_validate(answer.body)
        if self.version != asked_at and doc.version < self.version:
            # A push or a report answer adopted while this request was out is newer than this
            # document; older documents are still taken (a node re-created in the cloud starts
            # its versions again).
            log.debug("ignored a document older than a push", extra={"version": doc.version})
            return
        self._accepted = dict(doc.state.reported)
        self.version = doc.version
        await self._adopt_desired(DesiredState.from_section(doc.state.desired), doc.version)

    async def _adopt_pushed(self, section: dict[str, Any], version: int) -> None:
        """Take the whole desired section a push carries (decision #124), without a read.

        Only the agent writes `reported`, so the document after a desired write holds what it
        last reported: unless versions were skipped, in which case something else wrote and
        the document is read as well.
        """
        gap = version != self.version + 1
        self.version = version
        await self._adopt_desired(DesiredState.from_section(section), version)
        if gap:
            self._refresh_now.set()

    async def _adopt_desired(self, desired: DesiredState, version: int) -> None:
        if desired == self.desired:
            return
        self.desired = desired
        await self._store.save_desired(desired.to_section(), version)
        log.info("desired state changed", extra={"version": version})
        self._on_desired(desired)

    # -- reporting ------------------------------------------------------------------------

    @property
    def report_interval(self) -> float:
        """Seconds between periodic reports."""
        return self._report_interval

    def set_report_interval(self, seconds: float) -> None:
        """Report every `seconds` from now on (the cloud's `frequency`); a report goes out at
        once, so the wait that was under way does not hold the new period back."""
        if seconds != self._report_interval:
            self._report_interval = seconds
            self._report_now.set()

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
        if self._on_accepted is not None:
            self._on_accepted(self._accepted)
        version = answer.body.get("version")
        if isinstance(version, int):
            if version != self.version + 1:
                self._refresh_now.set()  # someone else wrote meanwhile
            self.version = max(self.version, version)
        log.debug("report accepted", extra={"version": version, "keys": sorted(patch)})


def _json_object(payload: bytes) -> dict[str, Any]:
    body = json.loads(payload)
    if not isinstance(body, dict):
        raise ValueError("an answer must be a JSON object")  # noqa: TRY004 - bad input, not a bug
    return body
