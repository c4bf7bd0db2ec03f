"""Instance directories and volumes: paths stay inside the instance, whatever the spec says."""

from __future__ import annotations

import stat
from pathlib import Path, PurePosixPath

import pytest

from agent.core.backend import DeployError
from agent.core.native import layout
from tests.agent.core.native.kit import application, deployment, service


@pytest.mark.parametrize(
    ("path", "relative"),
    [("/etc/conf", "etc/conf"), ("etc/conf", "etc/conf"), ("./a//b/", "a/b"), ("/a/./b", "a/b")],
)
def test_mount_paths_land_inside_the_instance(path: str, relative: str) -> None:
    assert layout.container_path(path, what="mountPath") == PurePosixPath(relative)


@pytest.mark.parametrize("path", ["..", "a/../../b", "/", ".", "a\x00b"])
def test_paths_that_escape_or_say_nothing_are_refused(path: str) -> None:
    with pytest.raises(DeployError):
        layout.container_path(path, what="mountPath")


def test_layout_paths_follow_baetyl() -> None:
    paths = layout.Layout(Path("/run"), Path("/log"), "default")
    assert paths.instance_dir("app", "7", "svc", 2) == Path("/run/default/app/7/svc/2")
    assert paths.log_path("app", "svc", 2) == Path("/log/default/app/svc-2.log")
    assert paths.parse_instance_dir(Path("/run/default/app/7/svc/2")) == ("app", "7", "svc", 2)
    assert paths.parse_instance_dir(Path("/elsewhere/app/7/svc/2")) is None


def test_materialise_never_writes_through_a_host_path_link(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    app = application(
        services=[
            service(
                volumeMounts=[
                    {"name": "host", "mountPath": "/data"},
                    {"name": "conf", "mountPath": "/data/conf"},
                ]
            )
        ],
        volumes=[
            {"name": "host", "hostPath": {"path": str(host)}},
            {"name": "conf", "config": {"name": "conf"}},
        ],
    )
    spec = deployment(app, configs={"conf": {"k": "v"}})
    with pytest.raises(DeployError, match="lies inside volume 'host'"):
        layout.check(spec)
    # Even without the check, materialising refuses to follow the link.
    with pytest.raises(DeployError, match="link out of the instance"):
        layout.materialise(tmp_path / "instance", spec, app.services[0])
    assert list(host.iterdir()) == []


def test_materialise_starts_fresh_and_reports_overlapping_mounts(tmp_path: Path) -> None:
    directory = tmp_path / "instance"
    directory.mkdir()
    (directory / "stale").write_text("old")
    app = application(
        services=[
            service(
                volumeMounts=[
                    {"name": "conf", "mountPath": "etc"},
                    {"name": "scratch", "mountPath": "etc/x"},
                ]
            )
        ],
        volumes=[{"name": "conf", "config": {"name": "conf"}}, {"name": "scratch", "emptyDir": {}}],
    )
    spec = deployment(app, configs={"conf": {"x": "file"}})
    with pytest.raises(DeployError, match=r"volume 'scratch'.*not a directory"):
        layout.materialise(directory, spec, app.services[0])
    assert not (directory / "stale").exists()


def test_host_paths_of_the_create_types_are_created(tmp_path: Path) -> None:
    app = application(
        services=[
            service(
                volumeMounts=[
                    {"name": "dir", "mountPath": "d"},
                    {"name": "file", "mountPath": "f"},
                ],
                workingDir="/srv/work",
            )
        ],
        volumes=[
            {
                "name": "dir",
                "hostPath": {"path": str(tmp_path / "a/b"), "type": "DirectoryOrCreate"},
            },
            {"name": "file", "hostPath": {"path": str(tmp_path / "c/f"), "type": "FileOrCreate"}},
        ],
    )
    cwd = layout.materialise(tmp_path / "instance", deployment(app), app.services[0])
    assert (tmp_path / "a/b").is_dir()
    assert (tmp_path / "c/f").is_file()
    assert cwd == (tmp_path / "instance/srv/work").resolve()
    assert cwd.is_dir()
    assert stat.S_IMODE((tmp_path / "instance").stat().st_mode) == 0o755


def test_referenced_versions_must_match(tmp_path: Path) -> None:
    app = application(
        services=[service(volumeMounts=[{"name": "conf", "mountPath": "c"}])],
        volumes=[{"name": "conf", "config": {"name": "conf", "version": "9"}}],
    )
    with pytest.raises(DeployError, match="needs configuration 'conf' version '9', got '1'"):
        layout.check(deployment(app, configs={"conf": {"k": "v"}}))
    bad_key = application(
        services=[service(volumeMounts=[{"name": "conf", "mountPath": "c", "subPath": "nope"}])],
        volumes=[{"name": "conf", "config": {"name": "conf"}}],
    )
    with pytest.raises(DeployError, match="subPath 'nope' is not a key"):
        layout.check(deployment(bad_key, configs={"conf": {"k": "v"}}))
