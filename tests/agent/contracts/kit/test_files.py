"""Crash-safe writes on a real file system: content, modes, owner, cleanup and the fsyncs."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.contracts.kit import files


def test_a_write_replaces_the_content_and_sets_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "cert.pem"
    target.write_bytes(b"old")
    target.chmod(0o600)
    files.atomic_write(target, b"new", mode=0o644)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(tmp_path.iterdir()) == [target]


def test_the_mode_does_not_depend_on_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        files.atomic_write(tmp_path / "registry.json", b"{}", mode=0o644)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "registry.json").stat().st_mode) == 0o644


def test_missing_parents_are_created_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "key"
    files.atomic_write(target, b"secret")
    assert target.read_bytes() == b"secret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a file to another account needs root")
def test_the_file_is_handed_to_the_owner_given(tmp_path: Path) -> None:
    """The managed broker's files belong to its account, which reads them after dropping root."""
    target = tmp_path / "acl"
    files.atomic_write(target, b"topic read #", owner=(65534, 65534))
    info = target.stat()
    assert (info.st_uid, info.st_gid) == (65534, 65534)
    assert stat.S_IMODE(info.st_mode) == 0o600


def test_a_failed_write_leaves_no_temporary_and_the_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "desired.json"
    target.mkdir()  # renaming a file over a directory fails
    (target / "inside").write_bytes(b"kept")
    with pytest.raises(IsADirectoryError):
        files.atomic_write(target, b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["desired.json"]
    assert (target / "inside").read_bytes() == b"kept"


def test_the_file_is_synced_before_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both fsyncs reach the kernel (recorded on the way through, not replaced): the new file's
    data, then the directory that holds the rename."""
    synced: list[tuple[int, int]] = []  # (file type, inode)
    real_fsync: Callable[[int], None] = os.fsync

    def recording_fsync(fd: int) -> None:
        info = os.fstat(fd)
        synced.append((stat.S_IFMT(info.st_mode), info.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    target = tmp_path / "store" / "reported.json"
    files.atomic_write(target, b"{}")
    monkeypatch.undo()
    assert synced == [
        (stat.S_IFREG, target.stat().st_ino),
        (stat.S_IFDIR, target.parent.stat().st_ino),
    ]


def test_stale_temporaries_of_interrupted_writes_are_removed(tmp_path: Path) -> None:
    kept = tmp_path / "instances.json"
    files.atomic_write_json(kept, {"a": 1})
    stale = tmp_path / ".instances.json.k3j2x.tmp"  # the name an interrupted write leaves
    stale.write_bytes(b"{")
    files.remove_stale_temporaries(tmp_path)
    assert sorted(tmp_path.iterdir()) == [kept]
    assert files.read_json(kept) == {"a": 1}


def test_json_round_trips_and_a_missing_file_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "specs" / "demo.json"
    assert files.read_json(path) is None
    files.atomic_write_json(path, {"name": "démo", "replica": 2})
    assert path.read_bytes() == '{"name":"démo","replica":2}'.encode()
    assert files.read_json(path) == {"name": "démo", "replica": 2}
