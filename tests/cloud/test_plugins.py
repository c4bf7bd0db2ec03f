"""The cloud's plug-in points with the test plug-in package (tests/plugins/baetyl_test_plugins,
installed by `make install`): a plug-in chosen by name is the one the cloud uses, and a name or
a plug-in that cannot be used stops the start with a message, never a traceback.

The cloud is the real one: in-process for what a plug-in does (its effect is looked for where the
plug-in keeps things, not in a mock), as `baetyl-cloud serve` for the start itself.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from agent.contracts.objects import OBJECT_PREFIX, ObjectItem
from agent.init import keys
from cloud.api.keys import CONTEXT
from cloud.cli import build_parser
from cloud.cli_settings import serve_settings
from cloud.plugins import AUTH, OBJECT_STORAGE, PKI_SIGNER, PluginError
from cloud.services import objects
from cloud.settings import InstallSettings, ObjectSettings, PluginSettings
from cloud.store import configs as config_store
from tests.harness.cloud import CloudServer, start_cloud
from tests.harness.common import free_port
from tools.kit.cloud import serve_args, start_serve
from tools.kit.procs import stop_child

BIN = Path(sys.executable).parent / "baetyl-cloud"
CODE = b"print('hello from a plug-in store')\n" * 50
ADMIN = {"X-Test-User": "default:admin"}
READER = {"X-Test-User": "default:read"}


@asynccontextmanager
async def cloud_with(
    tmp_path: Path, cloud_db_url: str | None, **chosen: str
) -> AsyncIterator[CloudServer]:
    """A running cloud whose plug-ins are those named in `chosen` (the built-ins otherwise)."""
    runner, server = await start_cloud(
        tmp_path / "cloud",
        cloud_db_url,
        install=InstallSettings(node_mqtt_url="mqtts://broker.example:8883"),
        plugins=PluginSettings(**chosen),
    )
    try:
        yield server
    finally:
        await server.session.close()
        await runner.cleanup()


async def run(*args: str) -> tuple[int, str]:
    """`baetyl-cloud ARGS`: its exit code and its stderr."""
    process = await asyncio.create_subprocess_exec(
        BIN, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


def test_the_built_ins_are_found_through_their_entry_points_beside_the_test_plug_ins() -> None:
    assert {"token", "test-header"} <= set(AUTH.names())
    assert {"directory", "s3", "test-flat"} <= set(OBJECT_STORAGE.names())
    assert {"ca", "test-own-ca"} <= set(PKI_SIGNER.names())


async def test_requests_are_authenticated_by_the_chosen_plug_in(
    tmp_path: Path, cloud_db_url: str | None
) -> None:
    async with cloud_with(tmp_path, cloud_db_url, auth="test-header") as cloud:
        created = await cloud.call(
            "POST", "/v1/nodes", {"name": "edge-1"}, headers=ADMIN, anonymous=True
        )
        assert created.status == 200, created.body
        listed = await cloud.call("GET", "/v1/nodes", headers=READER, anonymous=True)
        assert [node["name"] for node in listed.body["items"]] == ["edge-1"]
        # The route's access still applies to whatever the plug-in says the caller is.
        refused = await cloud.call(
            "POST", "/v1/nodes", {"name": "edge-2"}, headers=READER, anonymous=True
        )
        assert (refused.status, refused.body["code"]) == (403, "ErrRequestForbidden")
        # The built-in token check is not in use: the cloud's own admin token means nothing.
        bearer = await cloud.call("GET", "/v1/nodes")
        assert (bearer.status, bearer.body["code"]) == (401, "ErrRequestAccessDenied")
        assert "X-Test-User" in bearer.body["message"]
        bad = await cloud.call("GET", "/v1/nodes", headers={"X-Test-User": "default:root"})
        assert bad.status == 401
        assert (await cloud.call("GET", "/health", anonymous=True)).status == 200


async def test_objects_are_kept_by_the_chosen_object_store(
    tmp_path: Path, cloud_db_url: str | None
) -> None:
    async with cloud_with(tmp_path, cloud_db_url, object_storage="test-flat") as cloud:
        record = await cloud.upload("code", "fns/hello.py", CODE)
        root = cloud.data_dir / "flat-objects" / "default"
        index = json.loads((root / "index.json").read_bytes())
        assert index["code/fns/hello.py"]["sha256"] == record["sha256"]
        assert (root / "blobs" / record["sha256"]).read_bytes() == CODE
        assert not (cloud.data_dir / "objects").exists(), "the built-in store was not used"

        listed = await cloud.ok("GET", "/v2/objects/local/buckets/code/objects")
        assert [item["object"] for item in listed["objects"]] == ["fns/hello.py"]
        # A node's download: the cloud's presigned URL, served from the plug-in's file.
        item = {"type": "object", "source": "local", "bucket": "code", "object": "fns/hello.py"}
        await cloud.ok("POST", "/v1/configs", {"name": "fn", "data": [{"key": "c", "value": item}]})
        stored = await config_store.get("default", "fn")
        assert stored is not None
        assert cloud.app is not None
        served = objects.served(cloud.app[CONTEXT], "default", stored)
        url = ObjectItem.model_validate_json(served.data[OBJECT_PREFIX + "c"]).url
        async with cloud.session.get(url) as answer:
            assert (answer.status, await answer.read()) == (200, CODE)
        await cloud.ok("DELETE", "/v1/configs/fn")
        async with cloud.session.get(
            f"{cloud.url}/v1/objects/code/fns/hello.py",
            headers={"Authorization": f"Bearer {cloud.admin_token}"},
        ) as answer:
            assert (answer.status, await answer.read()) == (200, CODE)

        second = (await cloud.upload("code", "fns/hello.py", b"print('v2')\n"))["sha256"]
        assert not (root / "blobs" / record["sha256"]).exists(), "the replaced blob was swept"
        await cloud.ok("DELETE", "/v1/objects/code/fns/hello.py")
        assert json.loads((root / "index.json").read_bytes()) == {}
        assert not (root / "blobs" / second).exists()


async def test_node_certificates_are_signed_by_the_chosen_signer(
    tmp_path: Path, cloud_db_url: str | None
) -> None:
    async with cloud_with(tmp_path, cloud_db_url, pki_signer="test-own-ca") as cloud:
        await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
        command = (await cloud.ok("GET", "/v1/nodes/edge-1/init"))["cmd"]
        token = re.search(r"token=([A-Za-z0-9_.-]+)", command)
        assert token is not None, command
        csr = keys.csr_pem(keys.new_key(), "default.edge-1")
        answer = await cloud.call(
            "POST", "/v1/active", {"token": token.group(1), "csr": csr}, anonymous=True
        )
        assert answer.status == 200, answer.body
        signer = cloud.data_dir / "test-signer" / "ca.pem"
        assert answer.body["ca"] == signer.read_text()
        ca = x509.load_pem_x509_certificate(signer.read_bytes())
        issued = x509.load_pem_x509_certificate(answer.body["certificate"].encode())
        issued.verify_directly_issued_by(ca)
        issuer = issued.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert issuer == "Baetyl-Py Test Signer CA"
        crl = x509.load_pem_x509_crl((cloud.data_dir / "pki" / "crl.pem").read_bytes())
        assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
        assert not (cloud.data_dir / "pki" / "ca.pem").exists(), "the built-in CA was not made"


def test_an_unknown_name_is_refused_with_the_installed_ones() -> None:
    with pytest.raises(PluginError) as caught:
        AUTH.check("tokn")
    message = str(caught.value)
    assert message.startswith("--auth: no authentication plug-in named 'tokn' is installed")
    assert "did you mean 'token'?" in message
    assert "installed: test-header, test-sync-auth, token;" in message
    assert "entry-point group baetyl_py.plugins.auth" in message


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--auth", "tokn"], "--auth: no authentication plug-in named 'tokn'"),
        (["--object-store", "flat"], "--object-store: no object storage plug-in named 'flat'"),
        (["--pki-signer", "vault"], "--pki-signer: no PKI signer plug-in named 'vault'"),
        (["--object-store", "s3"], "--object-store s3 needs --s3-bucket"),
        (
            ["--object-store", "test-flat", "--s3-bucket", "b"],
            "--s3-* options configure the s3 object store, not 'test-flat'",
        ),
    ],
)
async def test_serve_refuses_a_plug_in_it_cannot_find_before_starting(
    tmp_path: Path, options: list[str], fragment: str
) -> None:
    data_dir = tmp_path / "cloud"
    code, err = await run("serve", "--data-dir", str(data_dir), "--no-mqtt", *options)
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err
    assert not data_dir.exists(), "nothing was started"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (
            ["--auth", "test-sync-auth"],
            "authentication plug-in 'test-sync-auth' (baetyl_test_plugins.auth:SyncAuth) does "
            "not implement Authenticator: authenticate must be a coroutine function (async def)",
        ),
        (
            ["--object-store", "test-half"],
            "object storage plug-in 'test-half' (baetyl_test_plugins.objects:HalfObjectStore) "
            "does not implement ObjectStore: no blob_location; no buckets; no delete; no "
            "objects; no sweep",
        ),
    ],
)
async def test_serve_refuses_a_plug_in_that_does_not_implement_its_protocol(
    tmp_path: Path, options: list[str], fragment: str
) -> None:
    code, err = await run("serve", "--data-dir", str(tmp_path / "cloud"), "--no-mqtt", *options)
    assert code == 1
    assert f"baetyl-cloud: error: {fragment}" in err
    assert "Traceback" not in err


async def test_serve_uses_the_plug_in_its_command_line_names(tmp_path: Path) -> None:
    port, log_file = free_port(), tmp_path / "cloud.log"
    argv = serve_args(tmp_path / "cloud", port, "--no-mqtt", "--auth", "test-header")
    url = f"http://127.0.0.1:{port}"
    process = await start_serve(argv, url=url, log_file=log_file, linked=False)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/v1/nodes", headers=ADMIN) as answer:
                assert answer.status == 200
            token = (tmp_path / "cloud" / "admin.token").read_text().strip()
            bearer = {"Authorization": f"Bearer {token}"}
            async with session.get(f"{url}/v1/nodes", headers=bearer) as answer:
                assert answer.status == 401
    finally:
        await stop_child(process, grace=15)


def test_the_object_store_defaults_to_s3_with_a_bucket_and_else_to_the_directory() -> None:
    parser = build_parser()

    def chosen(*options: str) -> str:
        args = parser.parse_args(["serve", "--data-dir", "d", *options])
        return serve_settings(parser, args)[0].object_storage

    assert chosen() == "directory"
    assert chosen("--s3-bucket", "objs") == "s3"
    assert chosen("--object-store", "s3", "--s3-bucket", "objs") == "s3"
    assert chosen("--object-store", "test-flat") == "test-flat"
    settings, _ = serve_settings(parser, parser.parse_args(["serve", "--data-dir", "d"]))
    assert settings.plugins == PluginSettings(auth="token", pki_signer="ca")
    assert settings.objects == ObjectSettings()
