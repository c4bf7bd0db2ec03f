"""Who may call each route: one table over the whole route table, checked against the server.

A read token reads; it never writes and never obtains a credential (an install token, a secret's
data). The table must name every registered route, so a new route cannot be added without
deciding who may call it (issue 12, decision 80).
"""

from __future__ import annotations

import re
from typing import Literal

import pytest

from tests.cloud.api.node_helpers import app_mounting
from tests.cloud.api.test_registries import registry
from tests.cloud.api.test_secrets import secret
from tests.harness.cloud import CloudServer

Who = Literal["anonymous", "read", "admin"]
SECRET_VALUE = "s3cr3t-value-never-for-readers"
REGISTRY_PASSWORD = "registry-password-never-shown"

# (method, path) → the least role that may call it. "anonymous": no bearer token needed (the
# install routes check an install token of their own). "read": any token of the namespace.
# "admin": an admin token — every write, and every read that hands out a credential.
ACCESS: dict[tuple[str, str], Who] = {
    ("GET", "/health"): "anonymous",
    ("GET", "/v1/openapi.json"): "anonymous",
    ("GET", "/metrics"): "anonymous",
    ("POST", "/v1/tokens"): "admin",
    ("GET", "/v1/tokens"): "read",  # ids and 9-character prefixes, never a token
    ("DELETE", "/v1/tokens/{id}"): "admin",
    ("GET", "/v1/apps"): "read",
    ("POST", "/v1/apps"): "admin",
    ("GET", "/v1/apps/{name}"): "read",
    ("PUT", "/v1/apps/{name}"): "admin",
    ("DELETE", "/v1/apps/{name}"): "admin",
    ("GET", "/v1/apps/{name}/configs"): "read",
    ("GET", "/v1/apps/{name}/secrets"): "read",  # names and versions only
    ("GET", "/v1/apps/{name}/certificates"): "read",
    ("GET", "/v1/apps/{name}/registries"): "read",
    ("GET", "/v1/nodes"): "read",
    ("POST", "/v1/nodes"): "admin",
    ("PUT", "/v1/nodes"): "admin",
    ("GET", "/v1/nodes/{name}"): "read",
    ("PUT", "/v1/nodes/{name}"): "admin",
    ("DELETE", "/v1/nodes/{name}"): "admin",
    ("GET", "/v1/nodes/{name}/apps"): "read",
    ("GET", "/v1/nodes/{name}/functions"): "read",
    ("GET", "/v1/nodes/{name}/deploys"): "read",
    ("GET", "/v1/functions"): "read",
    ("GET", "/v1/sysconfig/baetyl-function-runtime"): "read",
    ("GET", "/v1/sysconfig/baetyl_version/latest"): "read",
    ("GET", "/v1/nodes/{name}/stats"): "read",
    ("GET", "/v1/nodes/{name}/apps/{app}/logs"): "read",
    ("GET", "/v1/nodes/{name}/init"): "admin",  # mints an install token for the node
    ("GET", "/v1/nodes/{name}/properties"): "read",
    ("PUT", "/v1/nodes/{name}/properties"): "admin",
    ("PUT", "/v1/nodes/{name}/mode"): "admin",
    ("GET", "/v1/nodes/{name}/core/configs"): "read",
    ("PUT", "/v1/nodes/{name}/core/configs"): "admin",
    ("GET", "/v1/nodes/{name}/core/versions"): "read",
    ("GET", "/v1/nodes/{name}/shadow"): "read",
    ("PATCH", "/v1/nodes/{name}/shadow"): "admin",
    ("POST", "/v1/namespace"): "admin",
    ("GET", "/v1/namespace"): "read",
    ("DELETE", "/v1/namespace"): "admin",
    ("GET", "/v1/quotas"): "read",
    ("GET", "/v1/properties/{name}"): "read",
    ("GET", "/v1/configs"): "read",
    ("POST", "/v1/configs"): "admin",
    ("GET", "/v1/configs/{name}"): "read",
    ("PUT", "/v1/configs/{name}"): "admin",
    ("DELETE", "/v1/configs/{name}"): "admin",
    ("GET", "/v1/configs/{name}/apps"): "read",
    ("GET", "/v1/secrets"): "read",  # never with data
    ("POST", "/v1/secrets"): "admin",
    ("GET", "/v1/secrets/{name}"): "admin",  # the plaintext data
    ("PUT", "/v1/secrets/{name}"): "admin",
    ("DELETE", "/v1/secrets/{name}"): "admin",
    ("GET", "/v1/secrets/{name}/apps"): "read",
    ("GET", "/v1/certificates"): "read",
    ("POST", "/v1/certificates"): "admin",
    ("GET", "/v1/certificates/{name}"): "read",  # the certificate, never its key
    ("PUT", "/v1/certificates/{name}"): "admin",
    ("DELETE", "/v1/certificates/{name}"): "admin",
    ("GET", "/v1/certificates/{name}/apps"): "read",
    ("GET", "/v1/registries"): "read",
    ("POST", "/v1/registries"): "admin",
    ("GET", "/v1/registries/{name}"): "read",  # never the password
    ("PUT", "/v1/registries/{name}"): "admin",
    ("POST", "/v1/registries/{name}/refresh"): "admin",
    ("DELETE", "/v1/registries/{name}"): "admin",
    ("GET", "/v1/registries/{name}/apps"): "read",
    ("GET", "/v1/active"): "anonymous",
    ("POST", "/v1/active"): "anonymous",
    ("GET", "/v1/init/baetyl-install.sh"): "anonymous",
    ("GET", "/v1/init/baetyl-init-deployment.yml"): "anonymous",
    ("GET", "/v1/init/dist/{file}"): "anonymous",
    ("GET", "/v1/objects"): "read",
    ("GET", "/v2/objects"): "read",
    ("GET", "/v2/objects/{source}/buckets"): "read",
    ("GET", "/v2/objects/{source}/buckets/{bucket}/objects"): "read",
    ("PUT", "/v1/objects/{bucket}/{object}"): "admin",
    ("GET", "/v1/objects/{bucket}/{object}"): "read",  # like a configuration's data
    ("DELETE", "/v1/objects/{bucket}/{object}"): "admin",
    ("POST", "/v1/yaml"): "admin",
    ("PUT", "/v1/yaml"): "admin",
    ("POST", "/v1/yaml/delete"): "admin",
    # The signature in the URL is the credential (tests/cloud/api/test_objects.py).
    ("GET", "/v1/objects-data/{namespace}/{sha256}"): "anonymous",
}

# Path parameters filled with resources that exist, so that reads answer with real content.
_NAMES = {
    "/v1/apps/": "web",
    "/v1/nodes/": "edge-1",
    "/v1/configs/": "settings",
    "/v1/secrets/": "db-pass",
    "/v1/certificates/": "tls",
    "/v1/registries/": "hub",
    "/v1/properties/": "some-property",
    "/v1/tokens/": "1",
    "/v1/init/dist/": "baetyl_py-0-py3-none-any.whl",
}


_PARAMS = {
    "{bucket}": "code",
    "{object}": "hello.zip",
    "{source}": "local",
    "{namespace}": "default",
    "{sha256}": "0" * 64,
}


def _concrete(path: str) -> str:
    prefix = next((p for p in _NAMES if path.startswith(p)), None)
    filled = path.replace("{app}", "web")
    for param, value in _PARAMS.items():
        filled = filled.replace(param, value)
    if prefix is not None:
        filled = re.sub(r"\{\w+\}", _NAMES[prefix], filled, count=1)
    return filled


async def _registered(cloud: CloudServer) -> set[tuple[str, str]]:
    document = await cloud.ok("GET", "/v1/openapi.json", anonymous=True)
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }


async def _populate(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1", "labels": {"role": "gw"}})
    await cloud.ok("POST", "/v1/configs", {"name": "settings", "data": []})
    await cloud.upload("code", "hello.zip", b"PK-not-really")
    await cloud.ok("POST", "/v1/secrets", secret("db-pass", SECRET_VALUE))
    await cloud.ok("POST", "/v1/registries", registry("hub", REGISTRY_PASSWORD))
    volume = {"name": "creds", "secret": {"name": "db-pass"}}
    await cloud.ok("POST", "/v1/apps", app_mounting("web", volume, mount_path="creds", selector=""))


async def test_the_access_table_names_every_registered_route(cloud: CloudServer) -> None:
    registered = await _registered(cloud)
    assert registered - ACCESS.keys() == set(), "routes nobody decided access for"
    assert ACCESS.keys() - registered == set(), "table rows for routes that do not exist"


@pytest.mark.parametrize(("method", "path"), sorted(ACCESS), ids=str)
async def test_a_read_token_gets_exactly_what_the_table_says(
    cloud: CloudServer, method: str, path: str
) -> None:
    await _populate(cloud)
    reader = await cloud.token(role="read")
    before = await cloud.ok("GET", "/v1/nodes/edge-1/shadow")
    answer = await cloud.call(method, _concrete(path), {}, token=reader)
    assert answer.status < 500, answer.body
    if ACCESS[(method, path)] == "admin":
        assert (answer.status, answer.body["code"]) == (403, "ErrRequestForbidden"), answer.body
    elif path.startswith("/v1/objects-data/"):
        # Its credential is the URL's signature, which this call does not have: no token helps.
        assert answer.status == 403, answer.body
        assert "expires" in answer.body["message"], answer.body
    else:
        assert answer.status not in (401, 403), answer.body
    text = str(answer.body)
    for credential in (SECRET_VALUE, REGISTRY_PASSWORD, cloud.admin_token, reader):
        assert credential not in text
    assert "token=" not in text  # no install command, script or manifest
    assert await cloud.ok("GET", "/v1/nodes/edge-1/shadow") == before


async def test_a_read_token_cannot_get_an_install_token_to_take_over_a_node(
    cloud: CloudServer,
) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
    reader = await cloud.token(role="read")
    for query in ("", "?mode=kube", "?method=wget", "?mode=native&method=curl"):
        answer = await cloud.call("GET", f"/v1/nodes/edge-1/init{query}", token=reader)
        assert (answer.status, answer.body["code"]) == (403, "ErrRequestForbidden")
        assert "cmd" not in answer.body
    admin = await cloud.call("GET", "/v1/nodes/edge-1/init")
    assert admin.status != 403  # (503 here: this cloud has no broker address to install with)


async def test_a_read_token_lists_secrets_but_cannot_read_their_data(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/secrets", secret("db-pass", SECRET_VALUE))
    reader = await cloud.token(role="read")
    listed = await cloud.ok("GET", "/v1/secrets", token=reader)
    assert [item["name"] for item in listed["items"]] == ["db-pass"]
    assert SECRET_VALUE not in str(listed)
    answer = await cloud.call("GET", "/v1/secrets/db-pass", token=reader)
    assert (answer.status, answer.body["code"]) == (403, "ErrRequestForbidden")
    assert (await cloud.ok("GET", "/v1/secrets/db-pass"))["data"]["password"] == SECRET_VALUE
