"""Native programs from a configuration (`programConfig`): the runnable service the node makes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from agent.contracts.objects import OBJECT_PREFIX, ObjectItem
from agent.contracts.resources import Application, Configuration
from agent.core.backend import DeployError, Deployment
from agent.core.objects import content_path
from agent.core.programs import PROGRAM_MOUNT, node_platform, runnable

PROGRAM_LABELS = {"baetyl-config-type": "baetyl-program"}


def app(**service: Any) -> Application:
    return Application.model_validate(
        {
            "name": "prog",
            "version": "v1",
            "mode": "native",
            "services": [{"name": "main", "programConfig": "prog-conf", **service}],
        }
    )


def item(platform: str) -> ObjectItem:
    digest = hashlib.sha256(platform.encode()).hexdigest()
    return ObjectItem(
        source="local", bucket="programs", object=f"{platform}.zip", sha256=digest, unpack="zip"
    )


def program_config(data: dict[str, str], labels: dict[str, str] | None = None) -> Configuration:
    return Configuration(name="prog-conf", version="c1", labels=labels or {}, data=data)


def test_the_platform_names_follow_baetyl() -> None:
    assert node_platform("x86_64") == "linux-amd64"
    assert node_platform("aarch64") == "linux-arm64-v8"
    assert node_platform("armv7l") == "linux-arm-v7"


def test_a_text_program_yml_gives_the_entry(tmp_path: Path) -> None:
    config = program_config({"program.yml": "entry: bin/server\n", "bin-readme": "x"})
    made = runnable(
        Deployment(app(args=["--verbose"]), {"prog-conf": config}),
        interpreter="/py",
        platform="linux-amd64",
        objects_dir=tmp_path,
    )
    [service] = made.app.services
    assert service.command == [f"$(BAETYL_INSTANCE_DIR){PROGRAM_MOUNT}/bin/server"]
    assert service.args == ["--verbose"]
    [mount] = service.volume_mounts
    assert (mount.mount_path, mount.read_only) == (PROGRAM_MOUNT, True)
    assert [v.config.name for v in made.app.volumes if v.config] == ["prog-conf"]


def test_the_entry_comes_from_the_platforms_archive_and_other_platforms_are_dropped(
    tmp_path: Path,
) -> None:
    mine, other = item("linux-amd64"), item("linux-arm-v7")
    tree = content_path(tmp_path, mine)
    tree.mkdir(parents=True)
    (tree / "program.yml").write_text("entry: run.py\n")
    config = program_config(
        {
            f"{OBJECT_PREFIX}linux-amd64": mine.to_text(),
            f"{OBJECT_PREFIX}linux-arm-v7": other.to_text(),
        },
        PROGRAM_LABELS,
    )
    made = runnable(
        Deployment(app(), {"prog-conf": config}),
        interpreter="/py",
        platform="linux-amd64",
        objects_dir=tmp_path,
    )
    assert made.app.services[0].command == ["/py", f"$(BAETYL_INSTANCE_DIR){PROGRAM_MOUNT}/run.py"]
    assert list(made.configs["prog-conf"].object_items()) == ["linux-amd64"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "has no program.yml for platform linux-amd64"),
        ({"program.yml": "entry: ../../etc/evil\n"}, "inside the program"),
        ({"program.yml": "entry: /bin/sh\n"}, "inside the program"),
        ({"program.yml": "exec: x\n"}, "needs 'entry"),
        ({"program.yml": "entry: [\n"}, "not YAML"),
    ],
)
def test_a_program_that_cannot_run_is_a_deploy_error(
    tmp_path: Path, data: dict[str, str], fragment: str
) -> None:
    with pytest.raises(DeployError, match="service main") as refused:
        runnable(
            Deployment(app(), {"prog-conf": program_config(data)}),
            interpreter="/py",
            platform="linux-amd64",
            objects_dir=tmp_path,
        )
    assert fragment in str(refused.value)


def test_a_command_given_is_kept_and_the_program_mounted(tmp_path: Path) -> None:
    made = runnable(
        Deployment(app(command=["/bin/echo"]), {"prog-conf": program_config({})}),
        interpreter="/py",
        platform="linux-amd64",
        objects_dir=tmp_path,
    )
    assert made.app.services[0].command == ["/bin/echo"]
    assert made.app.services[0].volume_mounts[0].mount_path == PROGRAM_MOUNT


def test_program_config_rules_in_the_spec() -> None:
    with pytest.raises(ValueError, match="needs a command or a programConfig"):
        Application.model_validate(
            {"name": "prog", "version": "1", "mode": "native", "services": [{"name": "main"}]}
        )
    with pytest.raises(ValueError, match="programConfig is for native apps"):
        Application.model_validate(
            {
                "name": "prog",
                "version": "1",
                "mode": "kube",
                "services": [{"name": "main", "image": "x", "programConfig": "prog-conf"}],
            }
        )
    spec = app()
    assert spec.pin(spec.references()[0][0], "prog-conf", "c9")
    assert spec.services[0].program_config is not None
    assert spec.services[0].program_config.version == "c9"
