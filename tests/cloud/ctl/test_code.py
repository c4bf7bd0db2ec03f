"""`baetylctl config push-code` and `baetylctl object`: the real command against a real cloud."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from cloud.ctlkit.code import zip_directory
from tests.cloud.ctl.conftest import Ctl
from tests.harness.cloud import CloudServer


def code_dir(root: Path, text: str = "return event") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.py").write_text(f"def handler(event, context):\n    {text}\n")
    (root / "lib").mkdir(exist_ok=True)
    (root / "lib" / "util.py").write_text("X = 1\n")
    (root / "__pycache__").mkdir(exist_ok=True)
    (root / "__pycache__" / "index.cpython-311.pyc").write_bytes(b"junk")
    return root


async def test_push_code_creates_then_updates_the_configuration(
    ctl: Ctl, cloud: CloudServer, tmp_path: Path
) -> None:
    code = code_dir(tmp_path / "fn")
    first = await ctl.ok("config", "push-code", "fn-code", str(code))
    assert "config/fn-code created" in first.out
    assert "uploading" in first.err
    config = await cloud.ok("GET", "/v1/configs/fn-code")
    [item] = config["data"]
    assert item["key"] == "code.zip"
    value = item["value"]
    assert (value["source"], value["bucket"], value["object"], value["unpack"]) == (
        "local",
        "functions",
        "fn-code/code.zip",
        "zip",
    )
    # The same code again: same bytes, same version, nothing rolls out.
    os.utime(code / "index.py", (1, 1))
    again = await ctl.ok("config", "push-code", "fn-code", str(code))
    assert "config/fn-code unchanged" in again.out
    assert (await cloud.ok("GET", "/v1/configs/fn-code"))["version"] == config["version"]
    # Changed code: a new version; the config's other items are kept.
    body = {**config, "data": [*config["data"], {"key": "greeting", "value": {"value": "hi"}}]}
    with_kv = await cloud.ok("PUT", "/v1/configs/fn-code", body)
    code_dir(code, "return {'v': 2}")
    changed = await ctl.ok("config", "push-code", "fn-code", str(code))
    assert "config/fn-code configured" in changed.out
    after = await cloud.ok("GET", "/v1/configs/fn-code")
    assert after["version"] != with_kv["version"]
    assert sorted(i["key"] for i in after["data"]) == ["code.zip", "greeting"]
    # What the cloud stores is the zip of the directory, without the caches.
    async with cloud.session.get(
        cloud.url + "/v1/objects/functions/fn-code/code.zip",
        headers={"Authorization": f"Bearer {cloud.admin_token}"},
    ) as response:
        stored = await response.read()
    names = zipfile.ZipFile(io.BytesIO(stored)).namelist()
    assert names == ["index.py", "lib/util.py"]


async def test_object_upload_list_and_delete(ctl: Ctl, tmp_path: Path) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"\x00\x01" * 100)
    uploaded = await ctl.ok("object", "upload", "models/v1/model.bin", str(file))
    assert "object/models/v1/model.bin uploaded" in uploaded.out
    assert (await ctl.ok("object", "list")).table() == [["NAME", "OBJECTS"], ["models", "1"]]
    rows = (await ctl.ok("object", "list", "models")).table()
    assert rows[0] == ["NAME", "SIZE", "SHA256", "UPDATED"]
    assert rows[1][:2] == ["v1/model.bin", "200"]
    await ctl.ok("object", "delete", "models/v1/model.bin")
    empty = await ctl.ok("object", "list", "models")
    assert empty.out == ""


async def test_bad_input_is_refused_before_anything_is_sent(ctl: Ctl, tmp_path: Path) -> None:
    missing = await ctl("config", "push-code", "fn-code", str(tmp_path / "nowhere"))
    assert missing.code != 0
    assert "not a directory" in missing.err
    (tmp_path / "empty").mkdir()
    empty = await ctl("config", "push-code", "fn-code", str(tmp_path / "empty"))
    assert "holds no file" in empty.err
    linked = code_dir(tmp_path / "linked")
    (linked / "passwd").symlink_to("/etc/passwd")
    refused = await ctl("config", "push-code", "fn-code", str(linked))
    assert "symbolic link" in refused.err
    bad = await ctl("object", "upload", "no-slash", str(tmp_path / "x"))
    assert "BUCKET/NAME" in bad.err
    listed = await ctl.ok("object", "list")
    assert listed.out == ""  # nothing was uploaded by any of them


def test_the_zip_is_reproducible(tmp_path: Path) -> None:
    first = zip_directory(code_dir(tmp_path / "a"))
    second_dir = code_dir(tmp_path / "b")
    os.utime(second_dir / "index.py", (10**9, 10**9))
    assert zip_directory(second_dir) == first
