"""Copy-truncate rotation and reading the newest lines of a log and its rotated copies."""

from __future__ import annotations

from pathlib import Path

from agent.core.native import logfiles


def test_rotation_shifts_copies_and_keeps_only_so_many(tmp_path: Path) -> None:
    log = tmp_path / "svc-1.log"
    for round_ in range(4):
        log.write_text(f"round {round_}\n" * 10)
        assert logfiles.rotate_if_needed(log, max_bytes=50, keep=2)
        assert log.read_text() == ""
    assert log.with_name("svc-1.log.1").read_text().startswith("round 3")
    assert log.with_name("svc-1.log.2").read_text().startswith("round 2")
    assert not log.with_name("svc-1.log.3").exists()
    log.write_text("small\n")
    assert not logfiles.rotate_if_needed(log, max_bytes=50, keep=2)


def test_rotation_without_backups_just_truncates(tmp_path: Path) -> None:
    log = tmp_path / "svc-1.log"
    log.write_text("x" * 100)
    assert logfiles.rotate_if_needed(log, max_bytes=10, keep=0)
    assert log.read_text() == ""
    assert list(tmp_path.iterdir()) == [log]


def test_tail_reaches_into_rotated_copies(tmp_path: Path) -> None:
    log = tmp_path / "svc-1.log"
    log.with_name("svc-1.log.1").write_text("".join(f"old {n}\n" for n in range(5)))
    log.write_text("new 0\nnew 1\n")
    lines = logfiles.read_recent(
        log, keep=2, tail_lines=4, cutoff=None, samples=None, max_bytes=10_000
    )
    assert lines == ["old 3", "old 4", "new 0", "new 1"]


def test_a_byte_limit_drops_the_partial_first_line(tmp_path: Path) -> None:
    log = tmp_path / "svc-1.log"
    log.write_text("".join(f"line {n}\n" for n in range(100)))
    lines = logfiles.read_recent(
        log, keep=0, tail_lines=None, cutoff=None, samples=None, max_bytes=20
    )
    assert lines == ["line 98", "line 99"]


def test_size_samples_tell_where_a_time_begins(tmp_path: Path) -> None:
    samples = logfiles.SizeSamples()
    samples.add(100.0, 10)
    samples.add(105.0, 50)
    samples.add(110.0, 50)
    assert samples.offset_at(99.0) is None
    assert samples.offset_at(104.0) == 10
    assert samples.offset_at(200.0) == 50
    samples.add(120.0, 5)  # smaller: the file was truncated (rotated)
    assert samples.offset_at(110.0) is None
    assert samples.offset_at(121.0) == 5


def test_merge_prefixes_lines_only_when_several_instances() -> None:
    assert logfiles.merge([("main-1", ["a", "b"])]) == "a\nb\n"
    assert logfiles.merge([("main-1", ["a"]), ("main-2", ["b"])]) == "[main-1] a\n[main-2] b\n"
    assert logfiles.merge([("main-1", [])]) == ""
