"""The planner's rules, one table row each: remove, fetch, deploy, backoff, bad specs."""

from __future__ import annotations

from agent.contracts.desired import DesiredState
from agent.contracts.resources import Application, ResourceKind
from agent.core.engine.planner import Plan, Want, needed, plan, wanted

APP = ResourceKind.APPLICATION
CONFIG = ResourceKind.CONFIGURATION
SECRET = ResourceKind.SECRET


def spec(name: str, version: str, *, config: str = "", secret: str = "") -> Application:
    volumes = []
    mounts = []
    if config:
        cname, _, cversion = config.partition("@")
        volumes.append({"name": "conf", "config": {"name": cname, "version": cversion}})
        mounts.append({"name": "conf", "mountPath": "etc"})
    if secret:
        sname, _, sversion = secret.partition("@")
        volumes.append({"name": "sec", "secret": {"name": sname, "version": sversion}})
        mounts.append({"name": "sec", "mountPath": "sec"})
    return Application.model_validate(
        {
            "name": name,
            "version": version,
            "mode": "native",
            "services": [{"name": "main", "command": ["true"], "volumeMounts": mounts}],
            "volumes": volumes,
        }
    )


def test_wanted_reads_apps_and_sysapps() -> None:
    desired = DesiredState(apps={"web": "v1"}, sysapps={"agent": "s1"}, nodeprops={"a": "b"})
    assert wanted(desired) == {
        "web": Want("web", "v1"),
        "agent": Want("agent", "s1", system=True),
    }
    assert wanted(DesiredState()) == {}


def test_an_app_no_longer_desired_is_removed() -> None:
    got = plan({}, {"old": "v1"}, {}, set(), retry_at={}, now=0)
    assert got == Plan(remove=("old",))


def test_an_unknown_spec_is_fetched_first() -> None:
    got = plan({"web": Want("web", "v1")}, {}, {}, set(), retry_at={}, now=0)
    assert got.fetch == ((APP, "web", "v1"),)
    assert not got.deploy


def test_mounted_resources_are_fetched_before_deploying() -> None:
    app = spec("web", "v1", config="conf@c1", secret="pw@s1")
    specs = {(APP, "web", "v1"): app}
    stored = {(APP, "web", "v1"), (CONFIG, "conf", "c1")}
    got = plan({"web": Want("web", "v1")}, {}, specs, stored, retry_at={}, now=0)
    assert got.fetch == ((SECRET, "pw", "s1"),)
    stored.add((SECRET, "pw", "s1"))
    got = plan({"web": Want("web", "v1")}, {}, specs, stored, retry_at={}, now=0)
    assert got.deploy == (Want("web", "v1"),)


def test_a_running_desired_version_needs_nothing() -> None:
    specs = {(APP, "web", "v1"): spec("web", "v1")}
    got = plan({"web": Want("web", "v1")}, {"web": "v1"}, specs, set(specs), retry_at={}, now=0)
    assert got.settled


def test_a_new_version_is_deployed_over_the_running_one() -> None:
    specs = {(APP, "web", "v2"): spec("web", "v2")}
    got = plan({"web": Want("web", "v2")}, {"web": "v1"}, specs, set(specs), retry_at={}, now=0)
    assert got.deploy == (Want("web", "v2"),)
    assert got.remove == ()


def test_a_failed_app_waits_for_its_backoff() -> None:
    specs = {(APP, "web", "v1"): spec("web", "v1")}
    want = {"web": Want("web", "v1")}
    waiting = plan(want, {}, specs, set(specs), retry_at={"web": 10.0}, now=5.0)
    assert waiting.blocked == {"web": 10.0}
    assert waiting.settled
    later = plan(want, {}, specs, set(specs), retry_at={"web": 10.0}, now=10.5)
    assert later.deploy == (Want("web", "v1"),)


def test_a_mount_without_a_version_is_invalid_not_fetched() -> None:
    specs = {(APP, "web", "v1"): spec("web", "v1", config="conf@")}
    got = plan({"web": Want("web", "v1")}, {}, specs, set(specs), retry_at={}, now=0)
    assert "names no version" in got.invalid["web"]
    assert got.fetch == ()


def test_a_stored_spec_that_does_not_load_is_invalid() -> None:
    key = (APP, "web", "v1")
    got = plan({"web": Want("web", "v1")}, {}, {}, {key}, retry_at={}, now=0)
    assert "unusable" in got.invalid["web"]


def test_needed_keeps_specs_and_their_mounts() -> None:
    app = spec("web", "v1", config="conf@c1")
    keep = needed({"web": Want("web", "v1")}, {(APP, "web", "v1"): app})
    assert keep == {(APP, "web", "v1"), (CONFIG, "conf", "c1")}


def test_built_in_system_apps_are_left_to_the_engine() -> None:
    desired = DesiredState(apps={"web": "1"}, sysapps={"baetyl-function": "builtin", "sys": "2"})
    assert set(wanted(desired)) == {"web", "sys"}
