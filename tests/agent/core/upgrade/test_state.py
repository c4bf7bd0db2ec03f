"""upgrade.json: which virtualenv starts, and how a trial ends (agent.core.upgrade.state)."""

from __future__ import annotations

from pathlib import Path

from agent.core.upgrade import state


def venv(top: Path, name: str) -> Path:
    """A directory that looks like an agent virtualenv (its baetyl-core exists)."""
    path = top / name
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "baetyl-core").write_text("#!/bin/sh\n", encoding="ascii")
    return path


def on_trial(top: Path, *, deadline: float) -> state.UpgradeFile:
    old, new = venv(top, "old"), venv(top, "new")
    return state.UpgradeFile(
        current=state.Installed(version="1.0", venv=str(old)),
        trial=state.Trial(
            version="1.1",
            venv=str(new),
            sha256="a" * 64,
            deadline=deadline,
            previous=state.Installed(version="1.0", venv=str(old)),
        ),
    )


def test_no_file_means_the_virtualenv_the_agent_was_started_from(tmp_path: Path) -> None:
    loaded = state.load(tmp_path / "upgrade.json")
    assert loaded == state.UpgradeFile()
    assert state.launch_venv(loaded) is None


def test_a_damaged_file_never_stops_the_agent(tmp_path: Path) -> None:
    path = tmp_path / "upgrade.json"
    for content in (b"{", b"[]", b'{"current": {"version": 1}}', b"\xff\xfe"):
        path.write_bytes(content)
        assert state.launch_venv(state.load(path)) is None


def test_a_trial_runs_until_its_deadline_then_the_previous_version(tmp_path: Path) -> None:
    trial = on_trial(tmp_path, deadline=1000.0)
    assert state.launch_venv(trial, now=999.0) == tmp_path / "new"
    assert state.launch_venv(trial, now=1000.0) == tmp_path / "old"


def test_a_virtualenv_that_is_gone_is_never_chosen(tmp_path: Path) -> None:
    trial = on_trial(tmp_path, deadline=1000.0)
    (tmp_path / "new" / "bin" / "baetyl-core").unlink()
    assert state.launch_venv(trial, now=1.0) is None


def test_rollback_makes_the_previous_version_current_and_remembers_the_wheel(
    tmp_path: Path,
) -> None:
    path = tmp_path / "upgrade.json"
    state.save(path, state.rolled_back(on_trial(tmp_path, deadline=1000.0), "it hung"))
    back = state.load(path)
    assert back.trial is None
    assert back.current is not None
    assert back.current.version == "1.0"
    assert back.failed == {"a" * 64: "it hung"}
    assert back.status is not None
    assert (back.status.state, back.status.version, back.status.previous) == (
        "rolledBack",
        "1.1",
        "1.0",
    )
    assert state.launch_venv(back, now=1.0) == tmp_path / "old"
    assert path.stat().st_mode & 0o777 == 0o600


def test_confirmation_makes_the_trial_current_and_keeps_the_one_before(tmp_path: Path) -> None:
    done = state.confirmed(on_trial(tmp_path, deadline=1000.0))
    assert done.trial is None
    assert done.current == state.Installed(version="1.1", venv=str(tmp_path / "new"))
    assert done.previous == state.Installed(version="1.0", venv=str(tmp_path / "old"))
    assert done.status is not None
    assert done.status.state == "done"
    assert state.launch_venv(done, now=5000.0) == tmp_path / "new"


def test_fields_a_later_version_adds_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "upgrade.json"
    path.write_text(
        '{"current": {"version": "2.0", "venv": "/x", "channel": "beta"}, "future": 1}',
        encoding="utf-8",
    )
    loaded = state.load(path)
    assert loaded.current == state.Installed(version="2.0", venv="/x")
