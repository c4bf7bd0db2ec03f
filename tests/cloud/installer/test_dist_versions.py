"""The agent versions a cloud serves, read from its wheels' names (cloud.installer.dist)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cloud.installer import dist


def test_versions_are_read_from_wheel_names_and_odd_files_are_ignored(tmp_path: Path) -> None:
    for name in (
        "baetyl_py-0.1.0-py3-none-any.whl",
        "baetyl_py-0.10.0-py3-none-any.whl",
        "baetyl_py-0.2.0rc1-py3-none-any.whl",
        "baetyl_py-broken.whl",
        "other-1.0-py3-none-any.whl",
        "baetyl_py-0.3.0-py3-none-any.whl.part",
    ):
        (tmp_path / name).write_bytes(name.encode())
    served = dist.wheels(tmp_path)
    assert sorted(served, key=dist.version_key) == ["0.1.0", "0.2.0rc1", "0.10.0"]
    assert served["0.10.0"].name == "baetyl_py-0.10.0-py3-none-any.whl"


def test_the_newest_file_of_a_version_wins(tmp_path: Path) -> None:
    older = tmp_path / "baetyl_py-1.0-py3-none-any.whl"
    newer = tmp_path / "baetyl_py-1.0-py3-none-linux_x86_64.whl"
    older.write_bytes(b"a")
    newer.write_bytes(b"b")
    os.utime(older, (1_000, 1_000))
    os.utime(newer, (2_000, 2_000))
    assert dist.wheels(tmp_path) == {"1.0": newer}


def test_version_order_puts_a_release_above_its_pre_releases() -> None:
    ordered = ["0.9", "1.0.0rc1", "1.0", "1.0.post1", "1.0.1", "1.10", "v2.0.0"]
    shuffled = [ordered[i] for i in (4, 6, 1, 0, 5, 3, 2)]
    assert sorted(shuffled, key=dist.version_key) == ordered
    assert dist.version_key("1.0") == dist.version_key("1.0.0")


def test_a_missing_directory_serves_nothing(tmp_path: Path) -> None:
    assert dist.wheels(tmp_path / "absent") == {}


def test_file_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "w.whl"
    data = os.urandom(3 * 1024 * 1024 + 7)
    path.write_bytes(data)
    assert dist.file_sha256(path) == hashlib.sha256(data).hexdigest()
