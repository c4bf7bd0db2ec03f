"""`baetylctl` end to end: the installed console script as a child process against a real cloud."""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from pathlib import Path

import yaml

from cloud.pki.ca import CertificateAuthority
from tests.cloud.ctl.conftest import BAETYLCTL, Ctl
from tests.harness.cloud import CloudServer

APP_YAML = textwrap.dedent(
    """\
    name: hello
    mode: native
    labels: {team: edge}
    selector: role=gateway
    services:
      - name: web
        command: [python3, -m, http.server, "8080"]
    """
)
SECOND_APP_YAML = textwrap.dedent(
    """\
    name: batch
    mode: native
    selector: env=dev
    services:
      - name: worker
        command: [sleep, "3600"]
    """
)


def write(path: Path, text: str) -> str:
    """Write `text` to `path`; returns the path as a command-line argument."""
    path.write_text(text, encoding="utf-8")
    return str(path)


# Nodes.


async def test_node_create_list_get_and_delete(ctl: Ctl) -> None:
    created = await ctl.ok(
        "node", "create", "edge-1", "-l", "env=prod", "-l", "role=gateway", "--description", "hq"
    )
    assert created.out == "node/edge-1 created\n"
    await ctl.ok("node", "create", "edge-2", "--label", "env=dev", "--mode", "kube")

    listed = await ctl.ok("node", "list")
    header, *rows = listed.table()
    assert header == ["NAME", "READY", "MODE", "LABELS", "VERSION", "CREATED"]
    assert [row[:4] for row in rows] == [
        ["edge-2", "never", "kube", "env=dev"],
        ["edge-1", "never", "native", "env=prod,role=gateway"],
    ]

    only_prod = await ctl.ok("node", "list", "-l", "env=prod")
    assert [row[0] for row in only_prod.table()[1:]] == ["edge-1"]
    by_name = await ctl.ok("node", "list", "--name", "ge-2")
    assert [row[0] for row in by_name.table()[1:]] == ["edge-2"]

    node = (await ctl.ok("node", "get", "edge-1", "-o", "json")).json()
    assert node["labels"] == {"env": "prod", "role": "gateway", "baetyl-node-name": "edge-1"}
    assert (node["description"], node["nodeMode"], node["ready"]) == ("hq", "native", 0)

    deleted = await ctl.ok("node", "delete", "edge-1")
    assert deleted.out == "node/edge-1 deleted\n"
    gone = await ctl("node", "get", "edge-1")
    assert gone.code == 1
    assert "The (node) resource (edge-1) is not found" in gone.err


async def test_node_label_sets_and_removes_labels_and_apps_follow(ctl: Ctl) -> None:
    await ctl.ok("node", "create", "edge-1", "-l", "env=prod", "-l", "old=yes")
    await ctl.ok("app", "apply", "-f", "-", stdin=APP_YAML)

    labeled = await ctl.ok("node", "label", "edge-1", "role=gateway", "env=staging", "old-")
    assert labeled.out == "node/edge-1 labeled\n"
    node = (await ctl.ok("node", "get", "edge-1", "-o", "json")).json()
    assert node["labels"] == {"env": "staging", "role": "gateway", "baetyl-node-name": "edge-1"}
    assert [app["name"] for app in node["desire"]["apps"]] == ["hello"]

    await ctl.ok("node", "label", "edge-1", "role-")
    node = (await ctl.ok("node", "get", "edge-1", "-o", "json")).json()
    assert "role" not in node["labels"]
    assert node["desire"]["apps"] == []


async def test_node_label_warns_about_a_label_that_is_not_there(ctl: Ctl) -> None:
    await ctl.ok("node", "create", "edge-1", "-l", "env=prod")
    done = await ctl.ok("node", "label", "edge-1", "missing-")
    assert "warning: node edge-1 has no label 'missing' to remove" in done.err


async def test_node_label_refuses_bad_edits_as_usage_errors(ctl: Ctl) -> None:
    bad_syntax = await ctl("node", "label", "edge-1", "novalue")
    assert bad_syntax.code == 2
    assert "expected KEY=VALUE to set or KEY- to remove a label" in bad_syntax.err
    twice = await ctl("node", "label", "edge-1", "a=1", "a-")
    assert twice.code == 2
    assert "label 'a' given more than once" in twice.err


# Applications.


async def test_app_apply_creates_then_updates_from_yaml(ctl: Ctl, tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    write(manifest, APP_YAML)
    first = await ctl.ok("app", "apply", "-f", str(manifest))
    assert first.out == "app/hello created\n"
    version = (await ctl.ok("app", "get", "hello", "-o", "json")).json()["version"]

    again = await ctl.ok("app", "apply", "-f", str(manifest))
    assert again.out == "app/hello unchanged\n"

    write(manifest, APP_YAML.replace('"8080"', '"8081"'))
    changed = await ctl.ok("app", "apply", "-f", str(manifest), "-o", "json")
    app = changed.json()
    assert app["services"][0]["command"][-1] == "8081"
    assert app["version"] != version


async def test_app_apply_takes_several_documents_from_a_file_or_stdin(
    ctl: Ctl, tmp_path: Path
) -> None:
    both = APP_YAML + "---\n" + SECOND_APP_YAML
    done = await ctl.ok("app", "apply", "-f", write(tmp_path / "apps.yaml", both))
    assert done.out == "app/hello created\napp/batch created\n"

    edited = both.replace("sleep", "/bin/sleep")
    piped = await ctl.ok("app", "apply", "-f", "-", "-o", "json", stdin=edited)
    answers = piped.json()
    assert [app["name"] for app in answers] == ["hello", "batch"]
    assert answers[1]["services"][0]["command"][0] == "/bin/sleep"

    listed = await ctl.ok("app", "list")
    assert listed.table()[0] == ["NAME", "VERSION", "MODE", "SELECTOR", "SERVICES", "CREATED"]
    assert [row[0] for row in listed.table()[1:]] == ["batch", "hello"]


async def test_app_apply_goes_on_after_a_refused_document_and_exits_1(
    ctl: Ctl, tmp_path: Path
) -> None:
    refused = APP_YAML.replace("hello", "broken").replace("role=gateway", "role in (a")
    text = refused + "---\n" + SECOND_APP_YAML
    done = await ctl("app", "apply", "-f", write(tmp_path / "apps.yaml", text))
    assert done.code == 1
    assert done.out == "app/batch created\n"
    assert "error: app/broken: " in done.err
    assert "ErrRequestParamInvalid" in done.err

    alone = await ctl("app", "apply", "-f", "-", "-o", "json", stdin=refused)
    assert (alone.code, alone.out) == (1, "")
    assert "no apps found" not in alone.err


async def test_app_get_output_can_be_applied_back(ctl: Ctl, tmp_path: Path) -> None:
    await ctl.ok("app", "apply", "-f", "-", stdin=APP_YAML)
    exported = (await ctl.ok("app", "get", "hello", "-o", "yaml")).out
    again = await ctl.ok("app", "apply", "-f", write(tmp_path / "hello.yaml", exported))
    assert again.out == "app/hello unchanged\n"
    listed = (await ctl.ok("app", "list", "-o", "yaml")).out
    whole = await ctl.ok("app", "apply", "-f", "-", stdin=listed)
    assert whole.out == "app/hello unchanged\n"


async def test_app_list_get_and_delete(ctl: Ctl) -> None:
    await ctl.ok("app", "apply", "-f", "-", stdin=APP_YAML + "---\n" + SECOND_APP_YAML)
    got = await ctl.ok("app", "get", "hello")
    header, row = got.table()
    assert header[0] == "NAME"
    assert (row[0], row[2], row[3], row[4]) == ("hello", "native", "role=gateway", "web")
    filtered = await ctl.ok("app", "list", "--selector", "team=edge")
    assert [row[0] for row in filtered.table()[1:]] == ["hello"]

    deleted = await ctl.ok("app", "delete", "hello")
    assert deleted.out == "app/hello deleted\n"
    left = (await ctl.ok("app", "list", "-o", "json")).json()
    assert [item["name"] for item in left["items"]] == ["batch"]


async def test_an_empty_list_says_so_on_stderr(ctl: Ctl) -> None:
    done = await ctl.ok("app", "list")
    assert done.out == ""
    assert done.err == "no apps found\n"
    registries = await ctl.ok("registry", "list")
    assert registries.err == "no registries found\n"
    as_json = (await ctl.ok("app", "list", "-o", "json")).json()
    assert (as_json["total"], as_json["items"]) == (0, [])


# Configurations.


async def test_config_apply_accepts_the_item_list_and_the_simple_map(
    ctl: Ctl, tmp_path: Path
) -> None:
    text = textwrap.dedent(
        """\
        name: web-conf
        labels: {app: web}
        data:
          index.html: "<h1>hi</h1>"
          port: "8080"
        ---
        name: raw-conf
        description: written as the REST view
        data:
          - key: a.txt
            value: {type: kv, value: hello}
        """
    )
    done = await ctl.ok("config", "apply", "-f", write(tmp_path / "configs.yaml", text))
    assert done.out == "config/web-conf created\nconfig/raw-conf created\n"

    web = (await ctl.ok("config", "get", "web-conf", "-o", "json")).json()
    assert web["data"] == [
        {"key": "index.html", "value": {"type": "kv", "value": "<h1>hi</h1>"}},
        {"key": "port", "value": {"type": "kv", "value": "8080"}},
    ]
    assert web["labels"] == {"app": "web"}
    raw = (await ctl.ok("config", "get", "raw-conf", "-o", "yaml")).yaml()
    assert raw["data"] == [{"key": "a.txt", "value": {"type": "kv", "value": "hello"}}]

    listed = await ctl.ok("config", "list")
    assert listed.table() == [
        ["NAME", "VERSION", "DATA", "LABELS", "CREATED"],
        ["raw-conf", raw["version"], "1", "-", listed.table()[1][4]],
        ["web-conf", web["version"], "2", "app=web", listed.table()[2][4]],
    ]

    exported = (await ctl.ok("config", "get", "web-conf", "-o", "yaml")).out
    unchanged = await ctl.ok("config", "apply", "-f", "-", stdin=exported)
    assert unchanged.out == "config/web-conf unchanged\n"
    edited = await ctl.ok("config", "apply", "-f", "-", stdin=text.replace("8080", "9090"))
    assert edited.out == "config/web-conf configured\nconfig/raw-conf unchanged\n"

    await ctl.ok("config", "delete", "raw-conf")
    assert (await ctl("config", "get", "raw-conf")).code == 1


async def test_config_apply_refuses_values_that_are_not_text_before_sending(ctl: Ctl) -> None:
    done = await ctl("config", "apply", "-f", "-", stdin="name: c\ndata:\n  port: 8080\n")
    assert done.code == 1
    assert "stdin, document 1: data.port is int; values must be text" in done.err
    assert (await ctl.ok("config", "list", "-o", "json")).json()["total"] == 0


async def test_config_in_use_cannot_be_deleted_and_the_server_says_why(ctl: Ctl) -> None:
    await ctl.ok("config", "apply", "-f", "-", stdin="name: web-conf\ndata: {a: b}\n")
    mounted = APP_YAML + textwrap.dedent(
        """\
        volumes:
          - name: conf
            config: {name: web-conf}
        """
    )
    await ctl.ok("app", "apply", "-f", "-", stdin=mounted)
    refused = await ctl("config", "delete", "web-conf")
    assert refused.code == 1
    assert refused.err.startswith("error: ")
    assert "(ErrResourceHasBeenUsed, request " in refused.err


# Secrets, registries, certificates.


async def test_secret_from_literals_and_files_shows_data_only_when_got(
    ctl: Ctl, tmp_path: Path
) -> None:
    password = write(tmp_path / "password.txt", "s3cr3t-file")
    created = await ctl.ok(
        "secret",
        "create",
        "db",
        "--from-literal",
        "user=admin",
        "--from-literal",
        "dsn=postgres://db/x?a=b",
        "--from-file",
        password,
        "--from-file",
        f"again={password}",
        "-l",
        "team=data",
    )
    assert created.out == "secret/db created\n"

    listed = await ctl.ok("secret", "list", "-o", "json")
    (item,) = listed.json()["items"]
    assert "data" not in item
    assert "s3cr3t" not in listed.out
    table = await ctl.ok("secret", "list")
    assert table.table()[1][:3] == ["db", item["version"], "-"]

    got = (await ctl.ok("secret", "get", "db", "-o", "json")).json()
    assert got["data"] == {
        "user": "admin",
        "dsn": "postgres://db/x?a=b",
        "password.txt": "s3cr3t-file",
        "again": "s3cr3t-file",
    }
    assert got["labels"]["team"] == "data"
    await ctl.ok("secret", "delete", "db")
    assert (await ctl.ok("secret", "list", "-o", "json")).json()["total"] == 0


async def test_secret_needs_data_and_readable_files(ctl: Ctl, tmp_path: Path) -> None:
    empty = await ctl("secret", "create", "db")
    assert empty.code == 2
    assert "a secret needs data" in empty.err
    missing = await ctl("secret", "create", "db", "--from-file", str(tmp_path / "nope"))
    assert missing.code == 1
    assert f"cannot read file {tmp_path / 'nope'}: No such file or directory" in missing.err


async def test_registry_password_comes_from_stdin_and_is_never_printed(ctl: Ctl) -> None:
    secret = "hunter2-registry-password"
    created = await ctl.ok(
        "registry",
        "create",
        "hub",
        "--address",
        "registry.example.com",
        "--username",
        "bob",
        "--password-stdin",
        "-o",
        "json",
        stdin=secret + "\n",
    )
    shown = [created]
    shown.append(await ctl.ok("registry", "get", "hub", "-o", "json"))
    shown.append(await ctl.ok("registry", "get", "hub", "-o", "yaml"))
    shown.append(await ctl.ok("registry", "list", "-o", "json"))
    shown.append(await ctl.ok("registry", "list"))
    for run in shown:
        assert secret not in run.out + run.err
        assert "password" not in run.out
    assert created.json()["address"] == "registry.example.com"
    assert shown[-1].table() == [
        ["NAME", "ADDRESS", "USERNAME", "VERSION", "CREATED"],
        ["hub", "registry.example.com", "bob", created.json()["version"], shown[-1].table()[1][4]],
    ]
    await ctl.ok("registry", "delete", "hub")


async def test_registry_password_flag_works_with_a_warning(ctl: Ctl) -> None:
    done = await ctl.ok(
        "registry", "create", "hub", "--address", "r.example.com", "--username", "u",
        "--password", "pw",
    )  # fmt: skip
    assert "warning: --password leaves the password in the shell history" in done.err
    both = await ctl(
        "registry", "create", "hub2", "--address", "r", "--username", "u",
        "--password", "pw", "--password-stdin",
    )  # fmt: skip
    assert both.code == 2
    assert "not allowed with argument" in both.err


async def test_certificate_create_uploads_cert_and_key_and_never_shows_the_key(
    ctl: Ctl, tmp_path: Path
) -> None:
    authority = CertificateAuthority.create("ctl test CA")
    issued = authority.issue_server("web.example.com", dns_names=["web.example.com"])
    cert = tmp_path / "tls.crt"
    key = tmp_path / "tls.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    key_text = issued.key_pem.decode()

    created = await ctl.ok(
        "certificate", "create", "web-tls", "--cert", str(cert), "--key", str(key)
    )
    assert created.out == "certificate/web-tls created\n"
    got = await ctl.ok("certificate", "get", "web-tls", "-o", "yaml")
    view = got.yaml()
    assert view["data"] == {"certificate": issued.cert_pem.decode()}
    assert view["issuer"] == "ctl test CA"
    assert view["serialNumber"] == str(issued.serial_number)
    listed = await ctl.ok("certificate", "list")
    header, row = listed.table()
    assert header == ["NAME", "ISSUER", "SERIAL", "EXPIRES", "CREATED"]
    assert row[0] == "web-tls"
    for run in (created, got, listed, await ctl.ok("certificate", "list", "-o", "json")):
        assert key_text not in run.out
        assert "PRIVATE KEY" not in run.out
    await ctl.ok("certificate", "delete", "web-tls")


async def test_certificate_with_someone_elses_key_is_refused_by_the_server(
    ctl: Ctl, tmp_path: Path
) -> None:
    authority = CertificateAuthority.create()
    cert = tmp_path / "tls.crt"
    key = tmp_path / "other.key"
    cert.write_bytes(authority.issue_server("web").cert_pem)
    key.write_bytes(authority.issue_client("someone-else").key_pem)
    done = await ctl("certificate", "create", "web-tls", "--cert", str(cert), "--key", str(key))
    assert done.code == 1
    assert "does not match the certificate" in done.err
    assert "(ErrRequestParamInvalid, request " in done.err


# Output formats.


async def test_every_output_format_of_get_and_list(ctl: Ctl) -> None:
    await ctl.ok("node", "create", "edge-1", "-l", "env=prod")
    for args in (("node", "get", "edge-1"), ("node", "list")):
        as_json = (await ctl.ok(*args, "-o", "json")).json()
        as_yaml = (await ctl.ok(*args, "--output", "yaml")).yaml()
        assert as_json == as_yaml
        table = await ctl.ok(*args, "-o", "table")
        assert table.table()[0] == ["NAME", "READY", "MODE", "LABELS", "VERSION", "CREATED"]
        assert table.table()[1][0] == "edge-1"
    page = (await ctl.ok("node", "list", "-o", "json")).json()
    assert (page["total"], page["items"][0]["name"]) == (1, "edge-1")


async def test_global_options_work_before_the_resource_and_after_the_verb(
    ctl: Ctl, cloud: CloudServer
) -> None:
    await ctl.ok("node", "create", "edge-1")
    before = await ctl.ok("-o", "json", "--timeout", "5", "node", "get", "edge-1")
    after = await ctl.ok("node", "get", "edge-1", "-o", "json", "--timeout", "5")
    assert before.json() == after.json()
    flagged = await ctl(
        "node", "get", "edge-1", "--url", "http://127.0.0.1:1", env={"BAETYL_URL": cloud.url}
    )
    assert flagged.code == 1
    assert "cannot connect to http://127.0.0.1:1" in flagged.err


# Server, token and their sources.


async def test_url_and_token_from_the_config_file(offline_ctl: Ctl, cloud: CloudServer) -> None:
    config = offline_ctl.config_file
    config.parent.mkdir(parents=True)
    config.write_text(yaml.safe_dump({"url": cloud.url, "token": cloud.admin_token}))
    config.chmod(0o600)
    done = await offline_ctl.ok("node", "create", "edge-1")
    assert done.err == ""

    config.chmod(0o644)
    warned = await offline_ctl.ok("node", "list")
    assert f"warning: config file {config} holds a token and other users can read it" in warned.err


async def test_flags_beat_environment_which_beats_the_config_file(
    offline_ctl: Ctl, cloud: CloudServer
) -> None:
    config = offline_ctl.config_file
    config.parent.mkdir(parents=True)
    config.write_text(yaml.safe_dump({"url": "http://127.0.0.1:1", "token": "file-token"}))
    config.chmod(0o600)
    env_wins = await offline_ctl(
        "node", "list", env={"BAETYL_URL": cloud.url, "BAETYL_TOKEN": cloud.admin_token}
    )
    assert env_wins.code == 0, env_wins.err
    file_token = await offline_ctl("node", "list", env={"BAETYL_URL": cloud.url})
    assert file_token.code == 1
    assert "the token is not valid" in file_token.err.lower()
    flags_win = await offline_ctl(
        "node",
        "list",
        "--url",
        cloud.url,
        "--token",
        cloud.admin_token,
        env={"BAETYL_URL": "http://127.0.0.1:1", "BAETYL_TOKEN": "env-token"},
    )
    assert flags_win.code == 0, flags_win.err


async def test_a_missing_token_is_a_clear_error(offline_ctl: Ctl) -> None:
    done = await offline_ctl("node", "list")
    assert done.code == 1
    assert done.out == ""
    assert done.err.startswith("error: no API token: pass --token, set BAETYL_TOKEN")
    assert str(offline_ctl.config_file) in done.err


async def test_a_wrong_token_gets_the_servers_message(ctl: Ctl) -> None:
    done = await ctl("app", "list", "--token", "not-a-token")
    assert done.code == 1
    assert done.err.startswith("error: ")
    assert "(ErrRequestAccessDenied, request " in done.err


async def test_a_server_error_prints_its_message_code_and_request_id(ctl: Ctl) -> None:
    done = await ctl("app", "get", "nope")
    assert done.code == 1
    assert done.out == ""
    line = done.err.strip()
    prefix = (
        "error: The (application) resource (nope) is not found in namespace(default). "
        "(ErrResourceNotFound, request "
    )
    assert line.startswith(prefix)
    assert line.endswith(")")
    assert "Traceback" not in done.err


async def test_an_unreachable_server_is_a_clear_error(offline_ctl: Ctl) -> None:
    done = await offline_ctl("app", "list", "--url", "http://127.0.0.1:1", "--token", "t")
    assert done.code == 1
    assert done.err.startswith("error: cannot connect to http://127.0.0.1:1: Connection refused")
    assert "Traceback" not in done.err


async def test_a_bad_manifest_is_reported_before_anything_is_sent(
    offline_ctl: Ctl, tmp_path: Path
) -> None:
    broken = write(tmp_path / "broken.yaml", "name: x\n data: [\n")
    done = await offline_ctl("app", "apply", "-f", broken)
    assert done.code == 1
    assert done.err.startswith(f"error: {broken} is neither valid YAML nor JSON")
    nameless = await offline_ctl("app", "apply", "-f", "-", stdin="mode: native\n")
    assert nameless.code == 1
    assert "stdin, document 1: needs a 'name'" in nameless.err
    twice = await offline_ctl("app", "apply", "-f", "-", stdin=APP_YAML + "---\n" + APP_YAML)
    assert "hello defined more than once" in twice.err
    missing = await offline_ctl("app", "apply", "-f", str(tmp_path / "absent.yaml"))
    assert missing.code == 1
    assert "No such file or directory" in missing.err


async def test_json_manifests_are_accepted(ctl: Ctl) -> None:
    document = yaml.safe_load(APP_YAML)
    indented = json.dumps(document, indent="\t")  # tabs: valid JSON, invalid YAML
    done = await ctl.ok("app", "apply", "-f", "-", stdin=indented)
    assert done.out == "app/hello created\n"
    listed = json.dumps([document, yaml.safe_load(SECOND_APP_YAML)])
    both = await ctl.ok("app", "apply", "-f", "-", stdin=listed)
    assert both.out == "app/hello unchanged\napp/batch created\n"


async def test_a_reader_that_goes_away_ends_the_run_quietly(ctl: Ctl) -> None:
    await ctl.ok("node", "create", "edge-1")
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `baetylctl node list | head -0`: nobody reads
    try:
        process = await asyncio.create_subprocess_exec(
            BAETYLCTL,
            "node",
            "list",
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
            env=ctl.environment(None),
        )
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 141
    assert err == b""
