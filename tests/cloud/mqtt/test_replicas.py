"""Two `baetyl-cloud serve` replicas on one PostgreSQL and one broker lose no shadow write.

200 nodes report over MQTT while apps are created and deleted through the REST APIs of both
replicas. Afterwards every shadow must hold each node's last reported values and exactly the
surviving apps that match it, and its version must count every write once. A trigger in the test
database records each shadow write with the replica that made it (the connection's
`application_name`), so the version chain and the split of the work are checked where they happen.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import pytest

from agent.contracts.topics import Channel
from tests.cloud.mqtt.conftest import AgentFactory, native_app
from tests.harness.cloud_process import CloudProcess, ReplicaSpec, running_replica
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI
from tests.harness.postgres import PostgresCluster

pytestmark = [pytest.mark.postgres, pytest.mark.mosquitto, pytest.mark.timeout(90)]

NODES = 200
REPORTS = 5
APPS = 12
REPLICAS = ("r1", "r2")
UPDATE_ANSWERS = (Channel.SHADOW_UPDATE_ACCEPTED, Channel.SHADOW_UPDATE_REJECTED)
Labels = dict[str, str]
Json = dict[str, Any]
T = TypeVar("T")

# Selectors of several shapes, each with its meaning written out independently of the cloud's.
SELECTORS: tuple[tuple[str, Callable[[Labels], bool]], ...] = (
    ("group=g0", lambda labels: labels["group"] == "g0"),
    ("rack in (r1,r3)", lambda labels: labels["rack"] in {"r1", "r3"}),
    ("group=g2,rack!=r4", lambda labels: labels["group"] == "g2" and labels["rack"] != "r4"),
    ("group notin (g0,g1)", lambda labels: labels["group"] not in {"g0", "g1"}),
    ("rack=r0", lambda labels: labels["rack"] == "r0"),
    (
        "group in (g1,g3),rack!=r2",
        lambda labels: labels["group"] in {"g1", "g3"} and labels["rack"] != "r2",
    ),
)

# Every UPDATE of a shadow row, in commit order per row (the writers hold the row lock until
# they commit), with the replica whose connection made it.
AUDIT_SQL = """
CREATE TABLE test_shadow_write (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    old_version bigint NOT NULL,
    new_version bigint NOT NULL,
    reported_changed boolean NOT NULL,
    desired_changed boolean NOT NULL,
    writer text NOT NULL
);
CREATE FUNCTION test_record_shadow_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_shadow_write
        (name, old_version, new_version, reported_changed, desired_changed, writer)
    VALUES (
        NEW.name, OLD.version, NEW.version,
        NEW.reported::text IS DISTINCT FROM OLD.reported::text,
        NEW.desired::text IS DISTINCT FROM OLD.desired::text,
        current_setting('application_name')
    );
    RETURN NULL;
END
$$;
CREATE TRIGGER test_record_shadow_write AFTER UPDATE ON baetyl_node_shadow
    FOR EACH ROW EXECUTE FUNCTION test_record_shadow_write();
"""


@dataclass(frozen=True)
class AppPlan:
    """One app of the test: the replica that creates it, the one that deletes it (if any), when.

    `create_after` and `delete_after` count accepted reports, so the app changes are spread over
    the reporting phase whatever the machine's speed.
    """

    name: str
    selector: str
    matches: Callable[[Labels], bool]
    creator: int
    deleter: int | None
    create_after: int
    delete_after: int

    def desired_writes(self, labels: Labels) -> int:
        """Shadow writes this app causes on a node: its placement, then its removal."""
        if not self.matches(labels):
            return 0
        return 1 if self.deleter is None else 2


@dataclass(frozen=True)
class Fleet:
    """The simulated nodes: names, nids and labels."""

    names: list[str]
    labels: dict[str, Labels]

    @classmethod
    def make(cls, run: str) -> Fleet:
        names = [f"n{run}-{index:03d}" for index in range(NODES)]
        labels = {
            name: {"group": f"g{index % 4}", "rack": f"r{index % 5}"}
            for index, name in enumerate(names)
        }
        return cls(names, labels)

    @staticmethod
    def nid(name: str) -> str:
        return f"default.{name}"


@dataclass(frozen=True)
class Api:
    """The REST API of one replica."""

    replica: str
    url: str
    session: aiohttp.ClientSession

    async def ok(self, method: str, path: str, body: Json | None = None) -> Any:
        async with self.session.request(method, self.url + path, json=body) as answer:
            payload = await answer.json(content_type=None)
            assert answer.status == 200, f"{self.replica}: {method} {path} -> {payload}"
            return payload

    async def text(self, path: str) -> str:
        """GET a text/plain answer that must be 200."""
        async with self.session.get(self.url + path) as answer:
            body = await answer.text()
            assert answer.status == 200, f"{self.replica}: GET {path} -> {answer.status} {body}"
            return body


class AcceptedReports:
    """Counts accepted reports; app changes wait here for their turn (not a progress printer)."""

    def __init__(self) -> None:
        self.accepted = 0
        self._changed = asyncio.Condition()

    async def add(self) -> None:
        async with self._changed:
            self.accepted += 1
            self._changed.notify_all()

    async def reached(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.accepted >= count)


def app_plans(run: str) -> list[AppPlan]:
    """Apps created through both replicas; half of them deleted through the other replica."""
    total = NODES * REPORTS
    plans = []
    for index in range(APPS):
        selector, matches = SELECTORS[index % len(SELECTORS)]
        create_after = index * total // (2 * APPS)
        plans.append(
            AppPlan(
                name=f"a{run}-{index:02d}",
                selector=selector,
                matches=matches,
                creator=index % 2,
                deleter=(index + 1) % 2 if index % 4 < 2 else None,
                create_after=create_after,
                delete_after=create_after + total // 4,
            )
        )
    return plans


def report(nid: str, step: int) -> Json:
    """Report `step`: a key every report overwrites, a key of its own, a nested key 3 share."""
    return {"seq": step, f"step{step}": {"node": nid}, "stats": {f"c{step % 3}": step}}


def final_reported(nid: str) -> Json:
    """What the merge of all of a node's reports must leave (the last value of each key)."""
    stats: Json = {}
    expected: Json = {"seq": REPORTS - 1, "stats": stats}
    for step in range(REPORTS):
        expected[f"step{step}"] = {"node": nid}
        stats[f"c{step % 3}"] = step
    return expected


async def report_all(agent: AgentFactory, nid: str, progress: AcceptedReports) -> list[int]:
    """Send the node's reports one at a time, as an agent does; return each accepted version."""
    versions = []
    async with agent(nid) as node:
        for step in range(REPORTS):
            token = f"{nid}-{step}"
            request = {"state": {"reported": report(nid, step)}, "clientToken": token}
            channel, answer = await node.ask(Channel.SHADOW_UPDATE, request, UPDATE_ANSWERS)
            assert channel is Channel.SHADOW_UPDATE_ACCEPTED, (nid, step, answer)
            assert answer["clientToken"] == token, (nid, step, answer)
            versions.append(int(answer["version"]))
            await progress.add()
    return versions


async def create_and_delete(
    plan: AppPlan, apis: Sequence[Api], progress: AcceptedReports, versions: dict[str, str]
) -> None:
    await progress.reached(plan.create_after)
    created = await apis[plan.creator].ok("POST", "/v1/apps", native_app(plan.name, plan.selector))
    versions[plan.name] = created["version"]
    if plan.deleter is not None:
        await progress.reached(plan.delete_after)
        await apis[plan.deleter].ok("DELETE", f"/v1/apps/{plan.name}")


async def bounded(limit: int, jobs: Iterable[Awaitable[T]]) -> list[T]:
    """Run `jobs` with at most `limit` at a time; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return await asyncio.gather(*(one(job) for job in jobs))


@asynccontextmanager
async def two_replicas(
    tmp_path: Path, dsn: str, mosquitto: MosquittoBroker, pki: HarnessPKI
) -> AsyncIterator[tuple[CloudProcess, CloudProcess]]:
    """Replicas r1 and r2 started as docs/operations.md says; the audit trigger is in place."""

    def spec(replica: str) -> ReplicaSpec:
        return ReplicaSpec(
            replica=replica,
            data_dir=tmp_path / replica,
            # The audit trigger reads the writer's name from its connection.
            db_url=f"{dsn}?application_name={replica}",
            broker=f"mqtts://{mosquitto.host}:{mosquitto.port}",
            ca_file=pki.ca_file,
            cert=pki.cloud(replica),
            log_file=tmp_path / f"{replica}.log",
        )

    first_spec, second_spec = spec(REPLICAS[0]), spec(REPLICAS[1])
    async with AsyncExitStack() as stack:
        # One after the other, because the second needs the first one's secret.key (replicas
        # starting together is safe: migrations take an advisory lock, see test_migrations).
        first = await stack.enter_async_context(running_replica(first_spec))
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(AUDIT_SQL)
        finally:
            await connection.close()
        # Secrets are sealed with secret.key: every replica must hold the same one.
        second_spec.data_dir.mkdir(mode=0o700)
        shutil.copy2(first_spec.data_dir / "secret.key", second_spec.data_dir / "secret.key")
        second = await stack.enter_async_context(running_replica(second_spec))
        yield first, second


Replicas = tuple[CloudProcess, CloudProcess]
ReplicaApis = Callable[[str], AbstractAsyncContextManager[tuple[str, Replicas, list[Api]]]]


@pytest.fixture
def replica_apis(
    tmp_path: Path, postgres: PostgresCluster, mosquitto: MosquittoBroker, pki: HarnessPKI
) -> ReplicaApis:
    """`async with replica_apis(database) as (dsn, replicas, apis)`: a fresh database, two
    replicas on it and an admin API client of each; the database is dropped afterwards. The
    first replica's token serves on both: tokens live in the database."""

    @asynccontextmanager
    async def start(database: str) -> AsyncIterator[tuple[str, Replicas, list[Api]]]:
        dsn = postgres.create_database(database)
        try:
            async with (
                two_replicas(tmp_path, dsn, mosquitto, pki) as replicas,
                aiohttp.ClientSession(
                    headers={"Authorization": f"Bearer {replicas[0].admin_token}"}
                ) as session,
            ):
                yield dsn, replicas, [Api(r.spec.replica, r.url, session) for r in replicas]
        finally:
            postgres.drop_database(database)

    return start


async def audit_rows(dsn: str) -> list[Json]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT * FROM test_shadow_write ORDER BY id")
    finally:
        await connection.close()
    return [dict(row) for row in rows]


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if json.loads(line).get("level") == "error"]


def failed_checks(
    nid: str,
    labels: Labels,
    *,
    shadow: Json,
    accepted: list[int],
    writes: list[Json],
    plans: list[AppPlan],
    app_versions: dict[str, str],
) -> list[str]:
    """What is wrong with one node's final shadow, its accepted versions and its stored writes."""
    want_apps = {
        plan.name: app_versions[plan.name]
        for plan in plans
        if plan.deleter is None and plan.matches(labels)
    }
    desired_writes = sum(plan.desired_writes(labels) for plan in plans)
    final = shadow["version"]
    desired = shadow["state"]["desired"]
    checks = {
        "reported is the merge of every report": (
            shadow["state"]["reported"] == final_reported(nid)
        ),
        "desired holds exactly the surviving apps that match": (
            desired.get("apps", {}) == want_apps and not desired.get("sysapps")
        ),
        "each accepted version is above the one before": (
            accepted[0] >= 2 and all(b > a for a, b in itertools.pairwise(accepted))
        ),
        "the version counts every write once": final == 1 + REPORTS + desired_writes,
        "each stored write raised the version by one (no gap, no repeat)": (
            [(row["old_version"], row["new_version"]) for row in writes]
            == [(version, version + 1) for version in range(1, final)]
        ),
        "the accepted versions are the versions the reports stored": (
            [row["new_version"] for row in writes if row["reported_changed"]] == accepted
        ),
        "each stored write changed one section": all(
            row["reported_changed"] != row["desired_changed"] for row in writes
        ),
    }
    return [f"{nid}: {what}" for what, passed in checks.items() if not passed]


async def test_two_replicas_split_the_reports_and_lose_no_shadow_write(
    replica_apis: ReplicaApis, agent: AgentFactory
) -> None:
    run = uuid.uuid4().hex[:8]
    fleet = Fleet.make(run)
    plans = app_plans(run)
    app_versions: dict[str, str] = {}
    progress = AcceptedReports()
    async with replica_apis(f"replicas_{run}") as (
        dsn,
        replicas,
        apis,
    ):
        await bounded(
            8,
            (
                apis[0].ok("POST", "/v1/nodes", {"name": name, "labels": fleet.labels[name]})
                for name in fleet.names
            ),
        )
        async with asyncio.TaskGroup() as group:
            reporting = [
                group.create_task(report_all(agent, fleet.nid(name), progress))
                for name in fleet.names
            ]
            for plan in plans:
                group.create_task(create_and_delete(plan, apis, progress, app_versions))
        accepted = [task.result() for task in reporting]
        # Read through both replicas: they must tell the same.
        shadows: list[Json] = await bounded(
            16,
            (
                apis[index % 2].ok("GET", f"/v1/nodes/{name}/shadow")
                for index, name in enumerate(fleet.names)
            ),
        )
        writes = await audit_rows(dsn)
        exit_codes = [await replica.stop() for replica in replicas]
        logs = [replica.log() for replica in replicas]

    assert exit_codes == [0, 0]
    assert [error_lines(log) for log in logs] == [[], []]
    by_node: dict[str, list[Json]] = {name: [] for name in fleet.names}
    for write in writes:
        by_node[write["name"]].append(write)
    wrong = [
        failure
        for name, shadow, seen in zip(fleet.names, shadows, accepted, strict=True)
        for failure in failed_checks(
            fleet.nid(name),
            fleet.labels[name],
            shadow=shadow,
            accepted=seen,
            writes=by_node[name],
            plans=plans,
            app_versions=app_versions,
        )
    ]
    assert not wrong, f"{len(wrong)} failed checks, e.g. {wrong[:10]}"

    # The broker hands each report to one member of the share group: both replicas stored some.
    # Desired writes come from the replica whose REST API took the app change.
    report_writers = Counter(row["writer"] for row in writes if row["reported_changed"])
    assert sum(report_writers.values()) == NODES * REPORTS
    assert all(report_writers[replica] > 0 for replica in REPLICAS), report_writers
    want_desired: Counter[str] = Counter()
    for plan in plans:
        matched = sum(plan.matches(labels) for labels in fleet.labels.values())
        want_desired[REPLICAS[plan.creator]] += matched
        if plan.deleter is not None:
            want_desired[REPLICAS[plan.deleter]] += matched
    assert Counter(row["writer"] for row in writes if row["desired_changed"]) == want_desired


async def answer_logs(agent: AgentFactory, nid: str, ready: asyncio.Event, calls: int) -> int:
    """Be an online node that answers `calls` logs commands; returns how many it answered."""
    answered = 0
    async with agent(nid) as node:
        await node.publish(Channel.PRESENCE, {"online": True})
        ready.set()
        while answered < calls:
            request = await node.next(Channel.CMD_REQUEST, timeout=60)
            text = f"{nid} {request['args']['app']}\n"
            reply = {"clientToken": request["clientToken"], "ok": True, "result": text}
            await node.publish(Channel.CMD_RESPONSE, reply)
            answered += 1
    return answered


async def test_a_command_is_answered_whichever_replica_sent_it(
    replica_apis: ReplicaApis, agent: AgentFactory
) -> None:
    # Answers would land on a random replica through a shared subscription; each replica
    # hears every answer instead and takes its own (decision #39).
    run = uuid.uuid4().hex[:8]
    names = [f"logs-{run}-{n}" for n in range(4)]
    per_node = 6
    async with replica_apis(f"commands_{run}") as (
        _dsn,
        replicas,
        apis,
    ):
        for name in names:
            await apis[0].ok("POST", "/v1/nodes", {"name": name, "labels": {"run": run}})
        await apis[1].ok("POST", "/v1/apps", native_app(f"web-{run}", f"run={run}"))
        ready = [asyncio.Event() for _ in names]
        async with asyncio.TaskGroup() as group:
            nodes = [
                group.create_task(answer_logs(agent, f"default.{name}", flag, per_node))
                for name, flag in zip(names, ready, strict=True)
            ]
            for flag in ready:
                await flag.wait()
            for name in names:  # presence is stored asynchronously by both replicas
                for api in apis:
                    await wait_online(api, name)
            texts = await asyncio.gather(
                *(
                    apis[call % 2].text(f"/v1/nodes/{name}/apps/web-{run}/logs")
                    for name in names
                    for call in range(per_node)
                )
            )
        exit_codes = [await replica.stop() for replica in replicas]
    assert [task.result() for task in nodes] == [per_node] * len(names)
    assert texts == [f"default.{name} web-{run}\n" for name in names for _ in range(per_node)]
    assert exit_codes == [0, 0]


async def wait_online(api: Api, name: str) -> None:
    """Wait until the replica's node view says the node is online."""
    async with asyncio.timeout(15):
        while (await api.ok("GET", f"/v1/nodes/{name}"))["ready"] != 1:
            await asyncio.sleep(0.05)
