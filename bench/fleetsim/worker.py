"""One process of the fleet simulator: a slice of the nodes, driven by JSON-lines commands.

Run as `python -m fleetsim.worker` with `bench/` on the path. Commands arrive on stdin as
`{"id", "cmd", ...}`; each answer is one line on stdout, `{"id", "ok": true, ...}` or
`{"id", "ok": false, "error"}`; `{"event": "progress", ...}` lines may come in between.
Timestamps are `time.monotonic()` seconds, which every process on the machine shares.

Commands: `connect {nids, concurrency}`, `disconnect`, `reports {interval}` (start periodic
reports, `interval` null stops them), `measure {start, end, grace}`, `saturate {start, end,
inflight, grace}`, `expect {app, old, gone}`, `arrivals {times}`, `status`, `exit`.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import functools
import itertools
import json
import random
import resource
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from fleetsim import payloads
from fleetsim.meter import Meter
from fleetsim.mqtt import MqttClient, MqttError

REPORT_TIMEOUT: Final = 30.0
"""A report unanswered this long is given up (counted lost) so the node may send again."""
CONNECT_ATTEMPTS: Final = 3
KEEPALIVE_CHECK: Final = 5.0
TLS_READ_BUFFER: Final = 16 * 1024
GET_PAYLOAD: Final = b'{"clientToken":"get"}'
_TOKEN_KEY: Final = b'"clientToken":"'

Reply = dict[str, Any]


@dataclass
class Node:
    """One simulated agent: its connection, its one report in flight, the apps it runs."""

    nid: str
    report_topic: bytes
    get_topic: bytes
    client: MqttClient | None = None
    token: str | None = None
    sent_at: float = 0.0
    apps: dict[str, str] = field(default_factory=lambda: dict(payloads.LOCAL_APPS))
    apps_changed: bool = False
    removed: set[str] = field(default_factory=set)
    """Apps the cloud's copy of `reported` still lists but the node no longer runs."""
    reported: bool = False
    timer: asyncio.TimerHandle | None = None
    document: asyncio.Future[None] | None = None


@dataclass(frozen=True)
class Expectation:
    """The app change whose deltas are being timed."""

    app: str
    old: str | None
    """The version before the change (None: the app is new)."""
    gone: bool
    """The app was deleted: any delta without it counts."""

    def seen_in(self, apps: dict[str, Any]) -> bool:
        """Whether a delta carrying these desired apps shows the change."""
        if self.gone:
            return self.app not in apps
        version = apps.get(self.app)
        return version is not None and version != self.old


@dataclass(frozen=True)
class Config:
    """What every node of this worker shares: the broker, the trust anchor, the certificates."""

    worker: int
    host: str
    port: int
    ca_pem: str
    cert_dir: Path
    keepalive: int
    seed: int


class Fleet:
    """The nodes of this worker and everything measured about them."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.nodes: dict[str, Node] = {}
        self.rng = random.Random(config.seed)
        self.in_flight: dict[str, Node] = {}
        self.answered = asyncio.Event()
        """Set by every answer: a window's end waits on it for its last reports."""
        self.meters: list[Meter] = []
        self.interval: float | None = None
        self.saturation: int = 0
        self._ring: Iterator[Node] = iter(())
        self._tokens = itertools.count(1)
        self.dropped = 0
        self.expected: Expectation | None = None
        self.arrivals: dict[str, float] = {}
        self.unconfirmed: set[str] = set()
        """Nodes rung whose document read has not shown the change yet."""

    # connecting

    async def connect(
        self, nids: list[str], concurrency: int, progress: Callable[[Reply], None]
    ) -> Reply:
        """Connect these nodes (subscribe, read the shadow), `concurrency` handshakes at a time."""
        semaphore = asyncio.Semaphore(concurrency)
        errors: list[str] = []
        started = time.monotonic()
        done = 0

        async def one(nid: str) -> None:
            nonlocal done
            async with semaphore:
                error = await self._connect_with_retries(nid)
            if error:
                errors.append(f"{nid}: {error}")
            done += 1
            if done % 250 == 0:
                progress({"event": "progress", "connected": done - len(errors)})

        await asyncio.gather(*(one(nid) for nid in nids))
        return {
            "connected": len(nids) - len(errors),
            "failed": len(errors),
            "errors": errors[:5],
            "seconds": round(time.monotonic() - started, 2),
        }

    async def _connect_with_retries(self, nid: str) -> str | None:
        error = ""
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                await self._connect(nid)
            except (OSError, MqttError, ssl.SSLError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.5 * 2**attempt * (0.5 + self.rng.random()))
            else:
                return None
        return error

    async def _connect(self, nid: str) -> None:
        prefix = f"baetyl/v1/{nid}"
        node = self.nodes.get(nid) or Node(
            nid, f"{prefix}/shadow/update".encode(), f"{prefix}/shadow/get".encode()
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=self.config.ca_pem)
        context.load_cert_chain(self.config.cert_dir / f"{nid}.pem")
        client = await MqttClient.open(
            self.config.host,
            self.config.port,
            context=context,
            client_id=nid,
            keepalive=self.config.keepalive,
            on_message=functools.partial(self._message, node),
            on_lost=functools.partial(self._lost, node),
        )
        try:
            await client.subscribe([f"{prefix}/shadow/update/+", f"{prefix}/shadow/get/+"])
            # The reconnect contract (DESIGN §4): subscribe, then read the shadow.
            node.document = asyncio.get_running_loop().create_future()
            client.publish(node.get_topic, GET_PAYLOAD)
            await asyncio.wait_for(node.document, REPORT_TIMEOUT)
        except BaseException:
            client.abort()
            raise
        node.client, node.reported = client, False
        self.nodes[nid] = node
        if self.interval is not None:
            self._schedule(node, time.monotonic() + self.rng.uniform(0, self.interval))

    def disconnect(self) -> Reply:
        """Close every connection cleanly (DISCONNECT: no will)."""
        count = 0
        for node in self.nodes.values():
            if node.timer is not None:
                node.timer.cancel()
            if node.client is not None:
                node.client.close()
                count += 1
            node.client = None
        self.nodes.clear()
        self.in_flight.clear()
        return {"disconnected": count}

    def _lost(self, node: Node, exc: Exception | None) -> None:
        del exc
        self.dropped += 1
        node.client = None
        if node.token is not None:
            self.in_flight.pop(node.token, None)
            node.token = None

    # reporting

    def set_interval(self, interval: float | None) -> Reply:
        """Start periodic reports with a random phase per node, or stop them (None)."""
        self.interval = interval
        for node in self.nodes.values():
            if node.timer is not None:
                node.timer.cancel()
                node.timer = None
            if interval is not None and node.client is not None:
                self._schedule(node, time.monotonic() + self.rng.uniform(0, interval))
        return {"nodes": len(self.nodes)}

    def _schedule(self, node: Node, due: float) -> None:
        node.timer = asyncio.get_running_loop().call_at(due, self._tick, node, due)

    def _tick(self, node: Node, due: float) -> None:
        if self.interval is None or node.client is None:
            return
        self._schedule(node, due + self.interval)
        now = time.monotonic()
        if node.token is not None:
            if now - node.sent_at < REPORT_TIMEOUT:
                for meter in self.meters:
                    meter.on_skipped(now)
                return
            self.in_flight.pop(node.token, None)  # given up: a late answer is ignored
        self._send(node, now)

    def _send(self, node: Node, now: float) -> None:
        assert node.client is not None
        if node.reported:
            section = payloads.cycle_report(
                node.nid, node.apps, self.rng, apps_changed=node.apps_changed, removed=node.removed
            )
        else:
            section = payloads.full_report(node.nid, node.apps, self.rng, removed=node.removed)
        node.reported, node.apps_changed, node.removed = True, False, set()
        token = f"w{self.config.worker}-{next(self._tokens)}"
        body = orjson.dumps({"state": {"reported": section}, "clientToken": token})
        node.token, node.sent_at = token, now
        self.in_flight[token] = node
        try:
            node.client.publish(node.report_topic, body)
        except MqttError:
            self._lost(node, None)
            return
        for meter in self.meters:
            meter.on_sent(now)

    async def measure(self, start: float, end: float, grace: float) -> Reply:
        """Count the reports sent in [start, end); answer once they are in or `grace` passed."""
        meter = Meter(start, end)
        self.meters.append(meter)
        try:
            await asyncio.sleep(max(0.0, end - time.monotonic()))
            deadline = time.monotonic() + grace
            while any(meter.inside(node.sent_at) for node in self.in_flight.values()):
                self.answered.clear()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.answered.wait(), remaining)
        finally:
            self.meters.remove(meter)
        return meter.result()

    async def saturate(self, start: float, end: float, inflight: int, grace: float) -> Reply:
        """Keep `inflight` reports outstanding (one per node at most) until `end`."""
        self._ring = itertools.cycle([node for node in self.nodes.values() if node.client])
        self.saturation = inflight
        try:
            self._fill()
            return await self.measure(start, end, grace)
        finally:
            self.saturation = 0

    def _fill(self) -> None:
        attempts = len(self.nodes)
        while len(self.in_flight) < self.saturation and attempts > 0:
            node = next(self._ring, None)
            if node is None:
                return
            attempts -= 1
            if node.token is None and node.client is not None:
                self._send(node, time.monotonic())

    # receiving

    def _message(self, node: Node, topic: str, payload: bytes) -> None:
        if topic.endswith("/update/accepted"):
            self._answer(node, payload, None)
        elif topic.endswith("/update/rejected"):
            self._answer(node, payload, int(orjson.loads(payload).get("code", 0)))
        elif topic.endswith("/update/delta"):
            self._delta(node, payload)
        elif topic.endswith("/get/accepted"):
            self._document(node, payload)
        elif topic.endswith("/get/rejected") and node.document and not node.document.done():
            node.document.set_exception(MqttError(f"shadow/get rejected: {payload[:200]!r}"))

    def _answer(self, node: Node, payload: bytes, code: int | None) -> None:
        now = time.monotonic()
        position = payload.rfind(_TOKEN_KEY)
        if position < 0:
            return
        position += len(_TOKEN_KEY)
        token = payload[position : payload.index(b'"', position)].decode()
        if self.in_flight.pop(token, None) is None or node.token != token:
            return  # given up on already, or not ours
        node.token = None
        self.answered.set()
        for meter in self.meters:
            meter.on_answer(node.sent_at, now, code)
        if self.saturation:
            self._fill()

    def _delta(self, node: Node, payload: bytes) -> None:
        now = time.monotonic()
        message = orjson.loads(payload)
        state, pushed = message.get("state"), message.get("desired")
        expected = self.expected
        if isinstance(pushed, dict):
            # The push after a desired change carries the whole desired section (decision
            # #124): the node takes it as it is, as agents do, and reads nothing.
            desired = _apps(pushed)
            fresh = expected is not None and node.nid not in self.arrivals
            if fresh and expected is not None and expected.seen_in(desired):
                self.arrivals[node.nid] = now
            self._take_desired(node, desired, reported=node.apps)
            return
        apps = state.get("apps") if isinstance(state, dict) else None
        if expected is not None and node.nid not in self.arrivals:
            if not state:
                # A push with only the new version (a cloud before decision #124): it counts
                # now, and the document read next must show the change.
                self.arrivals[node.nid] = now
                self.unconfirmed.add(node.nid)
            elif expected.seen_in(apps if isinstance(apps, dict) else {}):
                self.arrivals[node.nid] = now
        if not state:
            self._get(node)  # desired moved on: read the document
        elif isinstance(apps, dict):
            # The agent applies what it was told and says so in its next report.
            node.apps.update({str(k): str(v) for k, v in apps.items() if v is not None})
            node.apps_changed = True

    def _take_desired(
        self, node: Node, desired: dict[str, str], *, reported: dict[str, str]
    ) -> None:
        """Run the node's own apps and what the cloud wants there now; what the cloud still
        believes runs besides (`reported`) is reported as removed (null) next time."""
        node.apps = {**payloads.LOCAL_APPS, **desired}
        node.removed |= set(reported) - set(node.apps)
        node.apps_changed = True

    def _get(self, node: Node) -> None:
        if node.client is not None:
            with contextlib.suppress(MqttError):
                node.client.publish(node.get_topic, GET_PAYLOAD)

    def _document(self, node: Node, payload: bytes) -> None:
        state = orjson.loads(payload).get("state", {})
        desired = _apps(state.get("desired"))
        if node.nid in self.unconfirmed:
            self.unconfirmed.discard(node.nid)
            if self.expected is not None and not self.expected.seen_in(desired):
                del self.arrivals[node.nid]  # rung, but without the change: not delivered
        self._take_desired(node, desired, reported=_apps(state.get("reported")))
        if node.document is not None and not node.document.done():
            node.document.set_result(None)

    # deltas

    def expect(self, app: str, old: str | None, gone: bool) -> Reply:
        """Record, per node, when the first delta showing this app change arrives."""
        self.expected = Expectation(app, old, gone)
        self.arrivals = {}
        self.unconfirmed = set()
        return {}

    def collected(self, times: bool) -> Reply:
        """How many nodes got the expected delta (and when, if `times`)."""
        confirmed = {n: t for n, t in self.arrivals.items() if n not in self.unconfirmed}
        reply: Reply = {"count": len(confirmed)}
        if times:
            reply["times"] = list(confirmed.values())
        return reply

    def status(self) -> Reply:
        """Connections, drops and memory of this process."""
        return {
            "connected": sum(1 for node in self.nodes.values() if node.client is not None),
            "dropped": self.dropped,
            "in_flight": len(self.in_flight),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }

    async def keepalive(self) -> None:
        """PINGREQ for connections that sent nothing for half their keepalive."""
        idle = self.config.keepalive / 2
        while True:
            await asyncio.sleep(KEEPALIVE_CHECK)
            now = time.monotonic()
            for node in self.nodes.values():
                client = node.client
                if client is not None and now - client.last_sent > idle:
                    with contextlib.suppress(MqttError):
                        client.ping()


def _apps(section: Any) -> dict[str, str]:
    """The `apps` map of a shadow section, or empty."""
    apps = section.get("apps") if isinstance(section, dict) else None
    if not isinstance(apps, dict):
        return {}
    return {str(name): str(version) for name, version in apps.items() if version is not None}


class Server:
    """Reads commands from stdin, runs each as a task, writes the answers to stdout."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.done = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def emit(self, message: Reply) -> None:
        """Write one JSON line (the controller reads stdout continuously)."""
        sys.stdout.buffer.write(orjson.dumps(message) + b"\n")
        sys.stdout.buffer.flush()

    async def serve(self) -> None:
        """Until `exit` or the end of stdin."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**24)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        pinger = asyncio.create_task(self.fleet.keepalive())
        try:
            while not self.done.is_set():
                line = await reader.readline()
                if not line:
                    break
                task = asyncio.create_task(self._run(json.loads(line)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            pinger.cancel()
            for task in list(self._tasks):
                task.cancel()
            self.fleet.disconnect()
            await asyncio.sleep(0.2)  # let the DISCONNECTs leave

    async def _run(self, command: dict[str, Any]) -> None:
        ident = command.pop("id")
        name = command.pop("cmd")
        try:
            result = await self._call(name, command)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the controller
            self.emit({"id": ident, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
            return
        self.emit({"id": ident, "ok": True, **result})

    async def _call(self, name: str, args: dict[str, Any]) -> Reply:
        fleet = self.fleet
        handlers: dict[str, Callable[[], Awaitable[Reply] | Reply]] = {
            "connect": lambda: fleet.connect(args["nids"], args["concurrency"], self.emit),
            "disconnect": fleet.disconnect,
            "reports": lambda: fleet.set_interval(args["interval"]),
            "measure": lambda: fleet.measure(args["start"], args["end"], args["grace"]),
            "saturate": lambda: fleet.saturate(
                args["start"], args["end"], args["inflight"], args["grace"]
            ),
            "expect": lambda: fleet.expect(args["app"], args["old"], args["gone"]),
            "arrivals": lambda: fleet.collected(args["times"]),
            "status": fleet.status,
            "exit": self._exit,
        }
        result = handlers[name]()
        return await result if isinstance(result, Awaitable) else result

    def _exit(self) -> Reply:
        self.done.set()
        return {}


def main() -> None:
    """Entry point: the configuration comes as one JSON argument."""
    # asyncio gives every TLS connection a 256 KiB read buffer: 640 MB for 2,500 nodes that
    # exchange 1-3 KiB messages. One TLS record (16 KiB) is all a read needs here.
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER
    settings = json.loads(sys.argv[1])
    config = Config(
        worker=settings["worker"],
        host=settings["host"],
        port=settings["port"],
        ca_pem=Path(settings["ca_file"]).read_text(encoding="ascii"),
        cert_dir=Path(settings["cert_dir"]),
        keepalive=settings["keepalive"],
        seed=settings["seed"],
    )
    asyncio.run(Server(Fleet(config)).serve())


if __name__ == "__main__":
    main()
