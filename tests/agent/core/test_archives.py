"""Unpacking hostile archives: nothing may land outside the target, and limits hold.

Every archive here is built byte by byte with the standard library, including the malicious
ones (names with `..`, absolute names, links, bombs) that a careless extractor would follow.
"""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.archives import ArchiveError, UnpackLimits, member_path, unpack

LIMITS = UnpackLimits(max_bytes=10_000, max_members=50)


def make_zip(path: Path, members: dict[str, bytes], *, modes: dict[str, int] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (modes or {}).get(name, stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zipped.writestr(info, data)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes], mode: str) -> Path:
    with tarfile.open(path, mode) as tarred:
        for info in members:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            tarred.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def file_info(name: str, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_zip_unpacks_with_directories_and_executable_bits(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "a.zip",
        {"index.py": b"print(1)\n", "lib/util.py": b"X = 1\n", "bin/run": b"#!/bin/sh\n"},
        modes={"bin/run": stat.S_IFREG | 0o755},
    )
    unpack(archive, "zip", tmp_path / "out", LIMITS)
    assert files_under(tmp_path / "out") == {
        "index.py": b"print(1)\n",
        "lib/util.py": b"X = 1\n",
        "bin/run": b"#!/bin/sh\n",
    }
    assert stat.S_IMODE((tmp_path / "out/bin/run").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "out/index.py").stat().st_mode) == 0o644


@pytest.mark.parametrize(("kind", "mode"), [("tgz", "w:gz"), ("tar", "w")])
def test_a_tar_unpacks(tmp_path: Path, kind: str, mode: str) -> None:
    members = [file_info("./app/main.py"), file_info("app/run.sh", 0o4755)]
    data = {"./app/main.py": b"main\n", "app/run.sh": b"#!/bin/sh\n"}
    archive = make_tar(tmp_path / "a", members, data, mode)
    unpack(archive, kind, tmp_path / "out", LIMITS)
    assert files_under(tmp_path / "out") == {"app/main.py": b"main\n", "app/run.sh": b"#!/bin/sh\n"}
    # Executable, but never set-uid: the archive's owner bits are not trusted.
    assert stat.S_IMODE((tmp_path / "out/app/run.sh").stat().st_mode) == 0o755


@pytest.mark.parametrize(
    "name", ["../evil.py", "a/../../evil.py", "/tmp/evil.py", "a\\..\\evil.py"]
)
def test_a_zip_slip_name_refuses_the_whole_zip(tmp_path: Path, name: str) -> None:
    archive = make_zip(tmp_path / "a.zip", {"good.py": b"ok", name: b"evil"})
    (tmp_path / "sub").mkdir()
    with pytest.raises(ArchiveError, match="member"):
        unpack(archive, "zip", tmp_path / "sub" / "out", LIMITS)
    assert not (tmp_path / "sub" / "out").exists()  # nothing of it, not even the good member
    assert not (tmp_path / "evil.py").exists()
    assert not (tmp_path / "sub" / "evil.py").exists()


@pytest.mark.parametrize("name", ["../evil.py", "/tmp/evil.py", "a/../../evil.py"])
def test_a_tar_slip_name_is_refused(tmp_path: Path, name: str) -> None:
    archive = make_tar(tmp_path / "a.tgz", [file_info(name)], {name: b"evil"}, "w:gz")
    (tmp_path / "sub").mkdir()
    with pytest.raises(ArchiveError, match="leave the directory"):
        unpack(archive, "tgz", tmp_path / "sub" / "out", LIMITS)
    assert not (tmp_path / "sub" / "out").exists()
    assert not (tmp_path / "evil.py").exists()


@pytest.mark.parametrize("link_type", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_links_in_a_tar_are_refused(tmp_path: Path, link_type: bytes) -> None:
    link = tarfile.TarInfo("etc")
    link.type = link_type
    link.linkname = "/etc"
    archive = make_tar(
        tmp_path / "a.tar", [link, file_info("etc/passwd")], {"etc/passwd": b"x"}, "w"
    )
    with pytest.raises(ArchiveError, match="no links"):
        unpack(archive, "tar", tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_devices_and_fifos_in_a_tar_are_refused(tmp_path: Path) -> None:
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    archive = make_tar(tmp_path / "a.tar", [fifo], {}, "w")
    with pytest.raises(ArchiveError, match="only files and directories"):
        unpack(archive, "tar", tmp_path / "out", LIMITS)


def test_a_symlink_in_a_zip_is_refused(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "a.zip", {"link": b"/etc/passwd"}, modes={"link": stat.S_IFLNK | 0o777}
    )
    with pytest.raises(ArchiveError, match="only files and directories"):
        unpack(archive, "zip", tmp_path / "out", LIMITS)


def test_a_zip_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    # 1 MB of zeros compresses to about 1 kB: the declared sizes are not what is checked.
    archive = make_zip(tmp_path / "bomb.zip", {"zeros": bytes(1_000_000)})
    assert archive.stat().st_size < 5_000
    with pytest.raises(ArchiveError, match="more than 10000 bytes"):
        unpack(archive, "zip", tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "many.zip", {f"f{i}": b"" for i in range(51)})
    with pytest.raises(ArchiveError, match="more than 50 members"):
        unpack(archive, "zip", tmp_path / "out", LIMITS)


def test_a_member_twice_is_refused(tmp_path: Path) -> None:
    members = [file_info("a.py"), file_info("a.py")]
    archive = make_tar(tmp_path / "a.tar", members, {"a.py": b"x"}, "w")
    with pytest.raises(ArchiveError, match="twice"):
        unpack(archive, "tar", tmp_path / "out", LIMITS)


@pytest.mark.parametrize("kind", ["zip", "tgz", "tar"])
def test_garbage_is_not_an_archive(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / "junk"
    archive.write_bytes(b"this is not an archive at all" * 10)
    with pytest.raises(ArchiveError, match="not a readable"):
        unpack(archive, kind, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


@given(st.text(max_size=40))
def test_member_path_never_leaves_the_directory(name: str) -> None:
    try:
        path = member_path(name)
    except ArchiveError:
        return
    if path is not None:
        assert not path.is_absolute()
        assert ".." not in path.parts
        assert (Path("/base") / path).resolve().is_relative_to("/base")
