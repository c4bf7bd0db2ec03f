"""`baetyl-cloud` as a user runs it: a real process serving, stopping on SIGTERM, making tokens."""

from __future__ import annotations

import asyncio
import shutil
import signal
import stat
import sys
import tempfile
from pathlib import Path

import aiohttp
import pytest

from cloud.cli import build_parser
from cloud.cli_settings import serve_settings
from cloud.objects.s3 import S3Settings
from cloud.settings import (
    BridgeSettings,
    CloudSettings,
    InstallSettings,
    ManagedBrokerSettings,
    ObjectSettings,
    QuotaDefaults,
)
from tests.harness.common import free_port
from tools.kit.cloud import admin_token, serve_args, start_serve

BIN = Path(sys.executable).parent / "baetyl-cloud"


async def run(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        BIN, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_serve_answers_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port, data_dir, log_file = free_port(), tmp_path / "cloud", tmp_path / "cloud.log"
    argv = serve_args(data_dir, port, "--no-mqtt")
    url = f"http://127.0.0.1:{port}"
    process = await start_serve(argv, url=url, log_file=log_file, linked=False)
    try:
        token = admin_token(data_dir)
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(f"http://127.0.0.1:{port}/v1/tokens", headers=headers) as answer:
                assert answer.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        log = log_file.read_text(encoding="utf-8")
        assert '"message": "baetyl-cloud serving"' in log
        assert '"message": "baetyl-cloud stopping"' in log
        assert (data_dir / "cloud.db").exists()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_token_create_prints_a_token_the_server_accepts(tmp_path: Path) -> None:
    data_dir = tmp_path / "cloud"
    code, out, err = await run(
        "token", "create", "--data-dir", str(data_dir), "--namespace", "tenant-a", "--role", "read"
    )
    assert code == 0, err
    token = out.strip()
    assert token.startswith("bt_")
    port = free_port()
    argv = serve_args(data_dir, port, "--no-mqtt")
    url, log_file = f"http://127.0.0.1:{port}", tmp_path / "cloud.log"
    process = await start_serve(argv, url=url, log_file=log_file, linked=False)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
            async with session.get(f"http://127.0.0.1:{port}/v1/tokens") as answer:
                body = await answer.json()
                assert [item["namespace"] for item in body["items"]] == ["tenant-a"]
            async with session.post(f"http://127.0.0.1:{port}/v1/tokens", json={}) as answer:
                assert answer.status == 403
    finally:
        process.terminate()
        await process.wait()


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["serve", "--data-dir", "x", "--mqtt-ca", "ca.pem"], 2, "go with --mqtt-url"),
        (["serve", "--data-dir", "x", "--no-mqtt", "--listen", "nohost"], 2, "expected HOST:PORT"),
        (
            ["serve", "--data-dir", "x", "--no-mqtt", "--db", "mysql://h/db"],
            2,
            "unsupported database URL",
        ),
        (["serve", "--no-mqtt"], 2, "--data-dir"),
        (["serve", "--data-dir", "x", "--mqtt-url", "mqtt://h:1883"], 2, "mqtts://HOST:PORT"),
        (["serve", "--data-dir", "x", "--mqtt-url", "mqtts://h"], 2, "mqtts://HOST:PORT"),
        (["serve", "--data-dir", "x", "--mqtt-url", "mqtts://h:99999"], 2, "mqtts://HOST:PORT"),
        (["serve", "--data-dir", "x", "--mqtt-url", "mqtts://h:1/x"], 2, "only mqtts://"),
        (
            ["serve", "--data-dir", "x", "--no-mqtt", "--mqtt-url", "mqtts://h:8883"],
            2,
            "exclude each other",
        ),
        (
            ["serve", "--data-dir", "x", "--mqtt-url", "mqtts://h:8883", "--mqtt-ca", "ca"],
            2,
            "needs --mqtt-cert, --mqtt-key",
        ),
        (
            # The group is derived from secret.key (decision #73): no flag can name a guessable one.
            ["serve", "--data-dir", "x", "--mqtt-share-group", "baetyl-cloud"],
            2,
            "unrecognized arguments: --mqtt-share-group",
        ),
        (
            [
                "serve",
                "--data-dir",
                "{tmp}",
                "--mqtt-url",
                "mqtts://127.0.0.1:8883",
                "--mqtt-ca",
                "{tmp}/none.pem",
                "--mqtt-cert",
                "{tmp}/none.pem",
                "--mqtt-key",
                "{tmp}/none.pem",
            ],
            1,
            "no such file",
        ),
        (["serve", "--data-dir", "x", "--mqtt-keepalive", "2"], 2, "from 5 to 3600, got 2"),
        (["serve", "--data-dir", "x", "--mqtt-keepalive", "1.5"], 2, "expected a whole number"),
        (["serve", "--data-dir", "x", "--mqtt-rate-limit", "0"], 2, "from 0.1 to 100000"),
        (["serve", "--data-dir", "x", "--mqtt-rate-limit", "many"], 2, "expected a number"),
        (["serve", "--data-dir", "x", "--command-timeout", "nan"], 2, "from 0.1 to 300"),
        (
            ["serve", "--data-dir", "x", "--no-mqtt", "--listen", "0.0.0.0:9004"],
            2,
            "give --init-url http://HOST:PORT",
        ),
        (
            ["serve", "--data-dir", "x", "--mqtt-listen", "0.0.0.0:8883"],
            2,
            "give --node-mqtt-url mqtts://HOST:8883",
        ),
        (["serve", "--data-dir", "x", "--init-url", "ftp://h"], 2, "expected http(s)://HOST"),
        (["serve", "--data-dir", "x", "--init-url", "http://h/?q=1"], 2, "without query"),
        (["serve", "--data-dir", "x", "--node-mqtt-url", "mqtt://h:1"], 2, "mqtts://HOST:PORT"),
        (["serve", "--data-dir", "x", "--node-cert-days", "0"], 2, "from 1 to 3650, got 0"),
        (["serve", "--data-dir", "x", "--install-token-ttl", "5"], 2, "from 60 to 604800, got 5"),
        (["token", "create", "--data-dir", "x", "--role", "root"], 2, "invalid choice"),
        (
            ["token", "create", "--data-dir", "{tmp}", "--namespace", "Bad_NS"],
            1,
            "namespace 'Bad_NS'",
        ),
        (["broker", "--data-dir", "x"], 2, "--replica"),
        (["broker", "--data-dir", "x", "--replica", "a:b"], 2, "a replica name uses"),
        (["broker", "--data-dir", "x", "--replica", "r", "--server-name", "a b"], 2, "host name"),
        (["broker", "--data-dir", "x", "--replica", "r", "--sync-interval", "0"], 2, "0.5"),
        (["broker", "--data-dir", "x", "--replica", "r", "--db", "mysql://h/d"], 2, "--db"),
        (["kube-manifest"], 2, "--public-host"),
        ([], 2, "required"),
    ],
)
async def test_bad_arguments_get_a_clear_error(
    tmp_path: Path, args: list[str], code: int, fragment: str
) -> None:
    got, _, err = await run(*[a.replace("{tmp}", str(tmp_path / "d")) for a in args])
    assert got == code
    assert fragment in err
    assert "Traceback" not in err


async def test_serve_runs_and_stops_its_own_broker_by_default(
    request: pytest.FixtureRequest,
) -> None:
    """Without --mqtt-url or --no-mqtt the cloud makes its PKI, starts Mosquitto, and the broker
    goes away with the cloud."""
    port, mqtt_port = free_port(), free_port()
    # Not under pytest's tmp_path: its 0700 parents would keep the broker's account out.
    data_dir = Path(tempfile.mkdtemp(prefix="baetyl-cloud-test-"))
    request.addfinalizer(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    argv = serve_args(data_dir, port, "--mqtt-listen", f"127.0.0.1:{mqtt_port}")
    url, log_file = f"http://127.0.0.1:{port}", data_dir.with_suffix(".log")
    request.addfinalizer(lambda: log_file.unlink(missing_ok=True))
    process = await start_serve(argv, url=url, log_file=log_file)
    try:
        assert (data_dir / "pki" / "ca.pem").is_file()
        assert stat.S_IMODE((data_dir / "pki" / "ca.key").stat().st_mode) == 0o600
        assert stat.S_IMODE((data_dir / "cloud.db").stat().st_mode) == 0o600
        reader, writer = await asyncio.open_connection("127.0.0.1", mqtt_port)  # broker is up
        writer.close()
        await writer.wait_closed()
        del reader
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", mqtt_port)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_serve_without_options_runs_on_the_settings_defaults(tmp_path: Path) -> None:
    parser = build_parser()
    settings, managed = serve_settings(parser, parser.parse_args(["serve", "--data-dir", "d"]))
    assert managed == ManagedBrokerSettings(server_names=("127.0.0.1",))
    assert settings == CloudSettings(
        data_dir=Path("d"),
        install=InstallSettings(
            init_url="http://127.0.0.1:9004", node_mqtt_url="mqtts://127.0.0.1:8883"
        ),
    )


def test_serve_options_replace_only_the_settings_they_name() -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            *("serve", "--data-dir", "d", "--listen", "10.0.0.5:9100"),
            *("--mqtt-listen", "[::1]:8884", "--mqtt-replica", "r2", "--mqtt-keepalive", "60"),
            *("--mqtt-rate-limit", "5", "--command-timeout", "3", "--max-nodes", "7"),
            *("--node-cert-days", "30"),
        ]
    )
    settings, managed = serve_settings(parser, args)
    assert managed == ManagedBrokerSettings(
        host="::1",
        port=8884,
        server_names=("::1",),
        bridge=BridgeSettings(replica="r2", keepalive=60, max_messages_per_second=5.0),
    )
    assert (settings.host, settings.port, settings.command_timeout) == ("10.0.0.5", 9100, 3.0)
    assert settings.quotas == QuotaDefaults(max_node_count=7)
    assert settings.install == InstallSettings(
        init_url="http://10.0.0.5:9100", node_mqtt_url="mqtts://[::1]:8884", node_cert_days=30
    )


def test_serve_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    _usage, text = " ".join(capsys.readouterr().out.split()).split(" options: ", 1)
    for option, default in [
        ("--listen", "127.0.0.1:9004"),
        ("--mqtt-listen", "127.0.0.1:8883"),
        ("--mqtt-replica", "cloud-0"),
        ("--mqtt-keepalive", "30"),
        ("--mqtt-rate-limit", "20"),
        ("--command-timeout", "10"),
        ("--install-token-ttl", "3600"),
        ("--node-cert-days", "365"),
        ("--max-nodes", "0"),
    ]:
        described = text.split(f"{option} ", 1)[1].split(" --", 1)[0]
        assert f"default {default})" in described, (option, described)


async def test_the_database_url_may_come_from_the_environment(tmp_path: Path) -> None:
    """`--db` defaults to $BAETYL_CLOUD_DB: the Kubernetes manifests keep the URL, which holds a
    password, out of the command line (visible to every user of the host in `ps`)."""
    database = tmp_path / "from-env.db"
    process = await asyncio.create_subprocess_exec(
        BIN, "token", "create", "--data-dir", str(tmp_path / "d"),
        env={"BAETYL_CLOUD_DB": f"sqlite://{database}", "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out.decode().startswith("bt_")
    assert database.stat().st_size > 0
    assert not (tmp_path / "d" / "cloud.db").exists()


def test_object_store_options() -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            *("serve", "--data-dir", "d", "--object-max-bytes", "1000", "--object-url-ttl", "600"),
            *("--s3-bucket", "objs", "--s3-endpoint", "http://minio:9000", "--s3-region", "eu-1"),
        ]
    )
    settings, _ = serve_settings(parser, args)
    assert settings.objects == ObjectSettings(
        max_bytes=1000,
        url_ttl=600.0,
        s3=S3Settings(bucket="objs", endpoint_url="http://minio:9000", region="eu-1"),
    )
    alone = parser.parse_args(["serve", "--data-dir", "d", "--s3-endpoint", "http://m:9000"])
    with pytest.raises(SystemExit):
        serve_settings(parser, alone)
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--data-dir", "d", "--object-url-ttl", "5"])  # under 60 s
