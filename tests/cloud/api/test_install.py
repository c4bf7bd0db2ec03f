"""Online installation over REST: install commands, `/v1/active`, the script, manifest and wheel.

The cloud is the real one (in-process, real HTTP); CSRs are made as baetyl-init makes them. The
whole path with a real node is tests/e2e/test_install.py.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.contracts.version import VERSION
from agent.init import keys
from cloud.installer import tokens
from cloud.secretbox import SecretBox
from cloud.settings import InstallSettings
from cloud.store import properties as property_store
from cloud.store.models import ConsumedInstallToken, NodeCertificate
from tests.cloud.ctl.conftest import Ctl
from tests.harness.cloud import CloudServer, start_cloud

BROKER = "mqtts://broker.example:8883"
_TOKEN = re.compile(r"token=([A-Za-z0-9_.-]+)")


@pytest.fixture
async def cloud(tmp_path: Path, cloud_db_url: str | None) -> AsyncIterator[CloudServer]:
    """A cloud that installs nodes: broker address for nodes, 30-day certificates, a dist dir."""
    install = InstallSettings(node_mqtt_url=BROKER, node_cert_days=30, dist_dir=tmp_path / "dist")
    runner, server = await start_cloud(tmp_path / "cloud", cloud_db_url, install=install)
    try:
        yield server
    finally:
        await server.session.close()
        await runner.cleanup()


async def install_token(cloud: CloudServer, name: str, query: str = "") -> str:
    """A fresh token, taken from the node's install command."""
    cmd = (await cloud.ok("GET", f"/v1/nodes/{name}/init{query}"))["cmd"]
    found = _TOKEN.search(cmd)
    assert found, cmd
    return found.group(1)


def csr(nid: str) -> str:
    return keys.csr_pem(keys.new_key(), nid)


async def activate(cloud: CloudServer, token: str, request: str) -> Any:
    return await cloud.call("POST", "/v1/active", {"token": token, "csr": request}, anonymous=True)


async def recorded() -> tuple[int, int]:
    """(certificate rows, consumed tokens): what an activation leaves behind."""
    return await NodeCertificate.all().count(), await ConsumedInstallToken.all().count()


def forged_csr(request: str) -> str:
    """The CSR with one bit of its signature flipped (as if its subject had been altered)."""
    der = bytearray(x509.load_pem_x509_csr(request.encode()).public_bytes(Encoding.DER))
    der[-1] ^= 1
    pem = x509.load_der_x509_csr(bytes(der)).public_bytes(Encoding.PEM)
    return pem.decode()


def expired_token(cloud: CloudServer, name: str) -> str:
    box = SecretBox.load_or_create(cloud.data_dir / "secret.key")
    claims = tokens.TokenClaims("default", name, int(time.time()) - 5, "e" * 32)
    return tokens.sign(box.derive_key(tokens.HKDF_INFO), claims)


async def test_the_install_command_carries_a_fresh_token_for_its_node(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
    await cloud.ok("POST", "/v1/nodes", {"name": "k3s-1", "nodeMode": "kube"})
    cmd = (await cloud.ok("GET", "/v1/nodes/edge-1/init"))["cmd"]
    assert cmd.startswith(f"curl -fsSL -o baetyl-install.sh '{cloud.url}/v1/init/baetyl-install.sh")
    assert cmd.endswith("&& sh baetyl-install.sh")
    wget = (await cloud.ok("GET", "/v1/nodes/edge-1/init?method=wget"))["cmd"]
    assert wget.startswith("wget -q -O baetyl-install.sh ")
    kube = (await cloud.ok("GET", "/v1/nodes/k3s-1/init"))["cmd"]
    assert "/v1/init/baetyl-init-deployment.yml?token=" in kube
    assert kube.endswith("| kubectl apply -f -")
    native_for_kube = (await cloud.ok("GET", "/v1/nodes/k3s-1/init?mode=native"))["cmd"]
    assert "baetyl-install.sh" in native_for_kube

    first, second = await install_token(cloud, "edge-1"), await install_token(cloud, "edge-1")
    assert first != second
    info = await cloud.ok("GET", f"/v1/active?token={first}", anonymous=True)
    assert info["namespace"] == "default"
    assert (info["name"], info["nid"]) == ("edge-1", "default.edge-1")
    assert 3590 < info["expires"] - time.time() <= 3600


async def test_baetylctl_node_init_prints_the_install_command_with_a_fresh_token(
    cloud: CloudServer, tmp_path: Path
) -> None:
    (tmp_path / "home").mkdir()
    ctl = Ctl(tmp_path / "home")
    ctl.env.update(BAETYL_URL=cloud.url, BAETYL_TOKEN=cloud.admin_token)
    await ctl.ok("node", "create", "edge-1")
    first = (await ctl.ok("node", "init", "edge-1")).out.strip()
    assert first.startswith(f"curl -fsSL -o baetyl-install.sh '{cloud.url}/v1/init/")
    assert first.endswith("&& sh baetyl-install.sh")
    again = (await ctl.ok("node", "init", "edge-1", "--method", "wget", "-o", "json")).json()
    assert again["cmd"].startswith("wget -q -O baetyl-install.sh ")
    assert again["cmd"].split("token=")[1] != first.split("token=")[1], "one token per call"

    missing = await ctl("node", "init", "edge-9")
    assert missing.code == 1
    assert "The (node) resource (edge-9) is not found" in missing.err
    assert (await ctl("node", "init", "edge-1", "--method", "ftp")).code == 2
    ctl.env.update(BAETYL_TOKEN=await cloud.token(role="read"))
    read_only = await ctl("node", "init", "edge-1")
    assert (read_only.code, read_only.out) == (1, ""), "a read token gets no install token"
    ctl.env.update(BAETYL_TOKEN="not-a-token")
    refused = await ctl("node", "init", "edge-1")
    assert (refused.code, refused.out) == (1, ""), "no command without a valid token"


async def test_activation_signs_the_csr_and_consumes_the_token(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
    token = await install_token(cloud, "edge-1")
    answer = await activate(cloud, token, csr("default.edge-1"))
    assert answer.status == 200, answer.body
    body = answer.body
    assert set(body) == {"nid", "namespace", "name", "certificate", "ca", "mqtt", "validDays"}
    assert (body["nid"], body["mqtt"], body["validDays"]) == ("default.edge-1", BROKER, 30)
    ca_pem = (cloud.data_dir / "pki" / "ca.pem").read_text()
    assert body["ca"] == ca_pem
    certificate = x509.load_pem_x509_certificate(body["certificate"].encode())
    certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem.encode()))
    cn = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [attribute.value for attribute in cn] == ["default.edge-1"]
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert abs(lifetime - datetime.timedelta(days=30, minutes=1)) < datetime.timedelta(minutes=1)

    (row,) = await NodeCertificate.all()
    assert (row.namespace, row.name, row.revoked_at) == ("default", "edge-1", None)
    assert int(row.serial, 16) == certificate.serial_number
    assert row.not_after == certificate.not_valid_after_utc
    assert await recorded() == (1, 1)

    again = await activate(cloud, token, csr("default.edge-1"))
    assert (again.status, again.body["code"]) == (400, "ErrInvalidToken")
    assert "already used to activate node default.edge-1" in again.body["message"]
    script = await cloud.call("GET", f"/v1/init/baetyl-install.sh?token={token}", anonymous=True)
    assert (script.status, script.body["code"]) == (400, "ErrInvalidToken")
    manifest = await cloud.call(
        "GET", f"/v1/init/baetyl-init-deployment.yml?token={token}", anonymous=True
    )
    assert (manifest.status, manifest.body["code"]) == (400, "ErrInvalidToken")
    # Which node a used token was for is no secret (the token carries it): baetyl-init asks
    # again when it runs a second time, to recognise its own installation.
    assert (await cloud.call("GET", f"/v1/active?token={token}", anonymous=True)).status == 200
    assert await recorded() == (1, 1)


@pytest.mark.parametrize(
    ("case", "status", "code", "message"),
    [
        ("tampered", 400, "ErrInvalidToken", "not issued by this cloud or was altered"),
        ("expired", 400, "ErrInvalidToken", "expired"),
        ("other-cn", 400, "ErrRequestParamInvalid", "does not match the expected 'default.edge-1'"),
        ("garbage-csr", 400, "ErrRequestParamInvalid", "not a valid PEM certificate signing"),
        ("forged-csr", 400, "ErrRequestParamInvalid", "signature is invalid"),
        ("deleted-node", 404, "ErrResourceNotFound", "(edge-1) is not found"),
        ("no-csr", 400, "ErrRequestParamInvalid", "csr"),
    ],
)
async def test_a_refused_activation_changes_nothing(
    cloud: CloudServer, case: str, status: int, code: str, message: str
) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
    token = await install_token(cloud, "edge-1")
    request = csr("default.edge-1")
    body: dict[str, str] = {"token": token, "csr": request}
    if case == "tampered":
        head, tail = token.split(".")
        other = await install_token(cloud, "edge-1")
        body["token"] = f"{other.split('.')[0]}.{tail}" if other != token else head
    elif case == "expired":
        body["token"] = expired_token(cloud, "edge-1")
    elif case == "other-cn":
        body["csr"] = csr("default.edge-2")
    elif case == "garbage-csr":
        body["csr"] = "-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----"
    elif case == "forged-csr":
        body["csr"] = forged_csr(request)
    elif case == "deleted-node":
        await cloud.ok("DELETE", "/v1/nodes/edge-1")
    elif case == "no-csr":
        del body["csr"]
    answer = await cloud.call("POST", "/v1/active", body, anonymous=True)
    assert (answer.status, answer.body["code"]) == (status, code), answer.body
    assert message in answer.body["message"]
    assert await recorded() == (0, 0)
    if case != "deleted-node":  # the token was not used up: it still activates the node
        good = await activate(cloud, token, request)
        assert good.status == 200, good.body
        assert await recorded() == (1, 1)


async def test_a_token_expires_after_the_configured_lifetime(
    tmp_path: Path, cloud_db_url: str | None
) -> None:
    install = InstallSettings(node_mqtt_url=BROKER, token_ttl=1.0)
    runner, short = await start_cloud(tmp_path / "short", cloud_db_url, install=install)
    try:
        await short.ok("POST", "/v1/nodes", {"name": "edge-1"})
        token = await install_token(short, "edge-1")
        await asyncio.sleep(1.5)
        for method, path, body in [
            ("GET", f"/v1/active?token={token}", None),
            ("POST", "/v1/active", {"token": token, "csr": csr("default.edge-1")}),
            ("GET", f"/v1/init/baetyl-install.sh?token={token}", None),
        ]:
            answer = await short.call(method, path, body, anonymous=True)
            assert (answer.status, answer.body["code"]) == (400, "ErrInvalidToken"), path
            assert "expired" in answer.body["message"]
        assert await recorded() == (0, 0)
    finally:
        await short.session.close()
        await runner.cleanup()


async def test_one_token_activates_once_even_when_sent_twice_at_once(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
    token = await install_token(cloud, "edge-1")
    answers = await asyncio.gather(
        *(activate(cloud, token, csr("default.edge-1")) for _ in range(4))
    )
    assert sorted(answer.status for answer in answers) == [200, 400, 400, 400]
    assert await recorded() == (1, 1)


async def test_install_routes_take_the_token_not_a_bearer(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
    command = await cloud.call("GET", "/v1/nodes/edge-1/init", anonymous=True)
    assert (command.status, command.body["code"]) == (401, "ErrRequestAccessDenied")
    reader = await cloud.token(role="read")
    refused = await cloud.call("GET", "/v1/nodes/edge-1/init", token=reader)
    assert (refused.status, refused.body["code"]) == (403, "ErrRequestForbidden")
    assert "cmd" not in refused.body  # an install token is a credential: admin only
    other = await cloud.token(namespace="tenant-b")
    assert (await cloud.call("GET", "/v1/nodes/edge-1/init", token=other)).status == 404
    missing = await cloud.call("GET", "/v1/active", anonymous=True)
    assert (missing.status, missing.body["code"]) == (400, "ErrRequestParamInvalid")
    assert "token" in missing.body["message"]
    bogus = await cloud.call("GET", "/v1/active?token=abc.def", anonymous=True)
    assert (bogus.status, bogus.body["code"]) == (400, "ErrInvalidToken")
    for path in ("/v1/init/baetyl-install.sh", "/v1/init/baetyl-init-deployment.yml"):
        answer = await cloud.call("GET", f"{path}?token=abc.def", anonymous=True)
        assert (answer.status, answer.body["code"]) == (400, "ErrInvalidToken"), path


async def test_the_script_is_served_with_the_newest_wheel(
    cloud: CloudServer, tmp_path: Path
) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
    token = await install_token(cloud, "edge-1")
    path = f"/v1/init/baetyl-install.sh?token={token}"
    answer = await cloud.call("GET", path, anonymous=True)
    assert (answer.status, answer.body["code"]) == (503, "ErrServiceUnavailable")
    assert "make wheel" in answer.body["message"]
    assert str(tmp_path / "dist") in answer.body["message"]

    dist = tmp_path / "dist"
    dist.mkdir()
    old, new = dist / "baetyl_py-0.1.0-py3-none-any.whl", dist / "baetyl_py-0.2.0-py3-none-any.whl"
    old.write_bytes(b"old wheel")
    new.write_bytes(b"new wheel")
    os.utime(old, (time.time(), time.time()))
    os.utime(new, (time.time() - 60, time.time() - 60))
    (dist / "other-1.0-py3-none-any.whl").write_bytes(b"not ours")
    answer = await cloud.call("GET", path, anonymous=True)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/x-shellscript; charset=utf-8"
    script = answer.body
    assert f"WHEEL_FILE={old.name}" in script
    assert f"TOKEN={token}" in script
    assert f"CLOUD_URL={cloud.url}" in script
    assert "NODE_ID=default.edge-1" in script

    async with cloud.session.get(f"{cloud.url}/v1/init/dist/{new.name}") as response:
        assert response.status == 200
        assert await response.read() == b"new wheel"
    for name in ("other-1.0-py3-none-any.whl", "missing.whl", "..%2Fcloud%2Fsecret.key"):
        answer = await cloud.call("GET", f"/v1/init/dist/{name}", anonymous=True)
        assert answer.status == 404, name
    assert await recorded() == (0, 0)  # serving the script consumes nothing


async def test_the_kubernetes_manifest_carries_the_token(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "k3s-1", "nodeMode": "kube"})
    token = await install_token(cloud, "k3s-1")
    async with cloud.session.get(
        f"{cloud.url}/v1/init/baetyl-init-deployment.yml?token={token}"
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/yaml; charset=utf-8"
        docs = list(yaml.safe_load_all(await response.text()))
    (secret,) = [doc for doc in docs if doc["kind"] == "Secret"]
    assert secret["stringData"]["token"] == token
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert init["image"] == f"baetyl-py/agent:{VERSION}"
    assert init["args"][1] == cloud.url


async def test_deleting_nodes_revokes_their_certificates(cloud: CloudServer) -> None:
    tenant = await cloud.token(namespace="tenant-b")
    for name in ("edge-1", "edge-2"):
        await cloud.ok("POST", "/v1/nodes", {"name": name})
        await cloud.ok("POST", "/v1/nodes", {"name": name}, token=tenant)
    for namespace, auth in (("default", None), ("tenant-b", tenant)):
        for name in ("edge-1", "edge-2"):
            command = await cloud.ok("GET", f"/v1/nodes/{name}/init", token=auth)
            token = _TOKEN.search(command["cmd"])
            assert token is not None
            assert (await activate(cloud, token.group(1), csr(f"{namespace}.{name}"))).status == 200
    await cloud.ok("DELETE", "/v1/nodes/edge-1")
    revoked = {
        (row.namespace, row.name): row.revoked_at is not None for row in await NodeCertificate.all()
    }
    assert revoked == {
        ("default", "edge-1"): True,
        ("default", "edge-2"): False,
        ("tenant-b", "edge-1"): False,
        ("tenant-b", "edge-2"): False,
    }
    await cloud.ok("DELETE", "/v1/namespace", token=tenant)
    rows = await NodeCertificate.filter(namespace="tenant-b")
    assert [row.revoked_at is not None for row in rows] == [True, True]
    assert not (await NodeCertificate.get(namespace="default", name="edge-2")).revoked_at


async def test_an_operator_command_template_may_use_the_token(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
    await property_store.put(
        "baetyl-init-command", "curl -sf '{{address}}/v1/init/baetyl-install.sh?token={{token}}'|sh"
    )
    cmd = (await cloud.ok("GET", "/v1/nodes/edge-1/init"))["cmd"]
    assert cmd.startswith(f"curl -sf '{cloud.url}/v1/init/baetyl-install.sh?token=")
    token = _TOKEN.search(cmd)
    assert token is not None
    info = await cloud.ok("GET", f"/v1/active?token={token.group(1)}", anonymous=True)
    assert info["nid"] == "default.edge-1"


async def test_openapi_describes_the_install_routes_as_anonymous(cloud: CloudServer) -> None:
    paths = (await cloud.ok("GET", "/v1/openapi.json", anonymous=True))["paths"]
    for path, method in [
        ("/v1/active", "get"),
        ("/v1/active", "post"),
        ("/v1/init/baetyl-install.sh", "get"),
        ("/v1/init/baetyl-init-deployment.yml", "get"),
        ("/v1/init/dist/{file}", "get"),
    ]:
        assert "security" not in paths[path][method], path
    post = paths["/v1/active"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ActivateRequest"
    }
    assert "security" in paths["/v1/nodes/{name}/init"]["get"]
