"""`baetylctl apply|create|delete -f FILE`: a whole file of any kinds through `/v1/yaml`, all
documents or none, against a real cloud."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.cloud.ctl.conftest import Ctl
from tests.cloud.ctl.test_ctl import write

FILE = textwrap.dedent(
    """\
    kind: app
    name: hello
    mode: native
    selector: role=gateway
    services:
      - name: web
        command: [python3, -m, http.server, "8080"]
        volumeMounts: [{name: settings, mountPath: settings}]
    volumes: [{name: settings, config: {name: settings}}]
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: settings}
    data: {app.conf: "port=8080"}
    ---
    apiVersion: v1
    kind: Secret
    metadata: {name: creds}
    stringData: {token: s3cr3t}
    """
)


async def test_apply_sends_the_whole_file_and_says_what_happened_to_each(
    ctl: Ctl, tmp_path: Path
) -> None:
    manifest = write(tmp_path / "all.yaml", FILE)
    first = await ctl.ok("apply", "-f", manifest)
    assert first.out == "secret/creds created\nconfig/settings created\napp/hello created\n"
    again = await ctl.ok("apply", "-f", manifest)
    assert again.out == "secret/creds unchanged\nconfig/settings unchanged\napp/hello unchanged\n"
    changed = await ctl.ok("apply", "-f", "-", "-o", "json", stdin=FILE.replace("8080", "9090"))
    answer = changed.json()
    assert answer["total"] == 3
    assert [r["result"] for r in answer["results"]] == ["unchanged", "configured", "configured"]
    config = (await ctl.ok("config", "get", "settings", "-o", "json")).json()
    assert config["data"][0]["value"]["value"] == "port=9090"


async def test_a_file_with_a_bad_document_applies_nothing_and_exits_1(
    ctl: Ctl, tmp_path: Path
) -> None:
    broken = FILE.replace("stringData:", "stringDta:")
    done = await ctl("apply", "-f", write(tmp_path / "broken.yaml", broken))
    assert done.code == 1
    assert done.err.startswith("error: document 3 (line 16, Secret creds): stringDta: ")
    assert "did you mean 'stringData'?" in done.err
    assert "ErrRequestParamInvalid, request " in done.err
    assert done.out == ""
    for kind in ("app", "config", "secret"):
        listed = await ctl.ok(kind, "list")
        assert listed.out == ""


async def test_create_refuses_what_exists_and_delete_takes_the_file_back(
    ctl: Ctl, tmp_path: Path
) -> None:
    manifest = write(tmp_path / "all.yaml", FILE)
    created = await ctl.ok("create", "-f", manifest)
    assert created.out.splitlines()[-1] == "app/hello created"
    twice = await ctl("create", "-f", manifest)
    assert twice.code == 1
    assert "secret 'creds' already exists (ErrResourceConflict" in twice.err
    deleted = await ctl.ok("delete", "-f", manifest)
    assert deleted.out == "app/hello deleted\nconfig/settings deleted\nsecret/creds deleted\n"
    skipped = await ctl.ok("delete", "-f", manifest)
    assert skipped.out.splitlines()[0] == "app/hello not found (skipped)"


async def test_a_missing_file_is_reported_before_anything_is_sent(ctl: Ctl, tmp_path: Path) -> None:
    done = await ctl("apply", "-f", str(tmp_path / "nowhere.yaml"))
    assert done.code == 1
    assert done.err.startswith(f"error: cannot read file {tmp_path / 'nowhere.yaml'}: ")
