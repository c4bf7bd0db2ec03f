"""`POST/PUT /v1/yaml` and `POST /v1/yaml/delete`: a multi-document file of Kubernetes objects
or Baetyl-Py resources, applied in dependency order, all or nothing (issue 16)."""

from __future__ import annotations

import base64
import io
import json
import textwrap
from typing import Any

import aiohttp
import pytest

from cloud.api.http import MAX_BODY_BYTES
from cloud.api.yaml_upload import MAX_DOCUMENTS
from tests.cloud.pki.selfsigned import make_pair
from tests.harness.cloud import CloudServer, Reply

EMPTY_LISTS = ("configs", "secrets", "certificates", "registries", "apps", "nodes")


async def send_file(
    cloud: CloudServer,
    method: str,
    path: str,
    text: str | bytes,
    *,
    token: str | None = None,
    field: str = "file",
    filename: str = "resources.yaml",
) -> Reply:
    """Send `text` as the multipart field `field`, as `curl -F file=@resources.yaml` does."""
    form = aiohttp.FormData()
    data = text.encode() if isinstance(text, str) else text
    form.add_field(field, io.BytesIO(data), filename=filename, content_type="application/x-yaml")
    headers = {"Authorization": f"Bearer {token or cloud.admin_token}"}
    async with cloud.session.request(method, cloud.url + path, data=form, headers=headers) as r:
        body = await r.json(content_type=None)
        return Reply(r.status, body, r.headers.copy())


async def applied(cloud: CloudServer, text: str, *, method: str = "PUT") -> Any:
    answer = await send_file(cloud, method, "/v1/yaml", text)
    assert answer.status == 200, answer.body
    return answer.body


async def refused(
    cloud: CloudServer, method: str, path: str, text: str | bytes, status: int = 400
) -> str:
    answer = await send_file(cloud, method, path, text)
    assert answer.status == status, answer.body
    return str(answer.body["message"])


async def names(cloud: CloudServer, collection: str, token: str | None = None) -> list[str]:
    page = await cloud.ok("GET", f"/v1/{collection}", token=token)
    return sorted(item["name"] for item in page["items"])


async def nothing_stored(cloud: CloudServer) -> None:
    for collection in EMPTY_LISTS:
        assert await names(cloud, collection) == [], collection


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def outcomes(answer: Any) -> list[tuple[str, str, str]]:
    return [(r["kind"], r["name"], r["result"]) for r in answer["results"]]


def kube_file() -> str:
    """A Kubernetes file as Baetyl users write them: every kind Baetyl converts."""
    pair = make_pair("tls.example.test")
    docker = json.dumps({"auths": {"registry.example.com:5000": {
        "username": "bot", "password": "pull-pw", "auth": b64("bot:pull-pw"),
    }}})  # fmt: skip
    return textwrap.dedent(
        f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: nginx
          namespace: default
          labels: {{app: nginx}}
        spec:
          replicas: 1
          selector: {{matchLabels: {{app: nginx}}}}
          template:
            metadata: {{labels: {{app: nginx}}}}
            spec:
              containers:
                - name: nginx
                  image: nginx:1.25
                  args: ["-g", "daemon off;"]
                  env: [{{name: MODE, value: edge}}]
                  ports: [{{containerPort: 80}}]
                  resources: {{limits: {{cpu: 1, memory: 200Mi}}}}
                  volumeMounts:
                    - {{name: site, mountPath: /etc/nginx/conf.d}}
                    - {{name: creds, mountPath: /etc/creds, readOnly: true}}
                    - {{name: tls, mountPath: /etc/tls}}
                    - {{name: cache, mountPath: /cache}}
              imagePullSecrets: [{{name: hub}}]
              volumes:
                - {{name: site, configMap: {{name: site}}}}
                - {{name: creds, secret: {{secretName: creds}}}}
                - {{name: tls, secret: {{secretName: tls}}}}
                - {{name: cache, emptyDir: {{}}}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: nginx-svc}}
        spec:
          type: NodePort
          selector: {{app: nginx}}
          ports: [{{name: web, port: 80, targetPort: 80, nodePort: 30080}}]
        ---
        apiVersion: v1
        kind: Secret
        type: kubernetes.io/tls
        metadata: {{name: tls}}
        data:
          tls.crt: {b64(pair.cert_pem)}
          tls.key: {b64(pair.key_pem)}
        ---
        apiVersion: v1
        kind: Secret
        type: kubernetes.io/dockerconfigjson
        metadata: {{name: hub}}
        data:
          .dockerconfigjson: {b64(docker)}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {{name: creds, labels: {{team: edge}}, annotations: {{note: kept-by-kubernetes}}}}
        data: {{password: {b64("s3cr3t")}}}
        stringData: {{user: admin}}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: site}}
        data:
          default.conf: |
            server {{ listen 80; }}
          site.zip: |
            type: object
            source: http
            url: https://downloads.example.com/site.zip
            unpack: zip
        """
    )


async def test_a_kubernetes_file_becomes_registry_secret_certificate_config_and_app(
    cloud: CloudServer,
) -> None:
    answer = await applied(cloud, kube_file())
    assert outcomes(answer) == [
        ("registry", "hub", "created"),
        ("secret", "creds", "created"),
        ("certificate", "tls", "created"),
        ("config", "site", "created"),
        ("app", "nginx", "created"),
    ]
    assert answer["total"] == 5
    assert [item["name"] for item in answer["items"]] == ["hub", "creds", "tls", "site", "nginx"]
    assert [r["document"] for r in answer["results"]] == [4, 5, 3, 6, 1]
    assert "pull-pw" not in json.dumps(answer)
    assert "s3cr3t" not in json.dumps(answer)

    registry = await cloud.ok("GET", "/v1/registries/hub")
    assert (registry["address"], registry["username"]) == ("registry.example.com:5000", "bot")
    secret = await cloud.ok("GET", "/v1/secrets/creds")
    assert secret["data"] == {"password": "s3cr3t", "user": "admin"}
    assert secret["labels"] == {"team": "edge", "secret-type": "config"}
    certificate = await cloud.ok("GET", "/v1/certificates/tls")
    assert certificate["issuer"] == "tls.example.test"
    config = await cloud.ok("GET", "/v1/configs/site")
    assert config["data"] == [
        {"key": "default.conf", "value": {"type": "kv", "value": "server { listen 80; }\n"}},
        {"key": "site.zip", "value": {
            "type": "object", "source": "http",
            "url": "https://downloads.example.com/site.zip", "unpack": "zip",
        }},
    ]  # fmt: skip
    app = await cloud.ok("GET", "/v1/apps/nginx")
    assert (app["mode"], app["type"], app["workload"], app["replica"]) == (
        "kube", "container", "deployment", 1,
    )  # fmt: skip
    assert app["labels"] == {"app": "nginx"}
    (service,) = app["services"]
    assert service["ports"] == [
        {"containerPort": 80, "hostPort": 0, "hostIP": "", "protocol": "TCP",
         "serviceType": "NodePort", "nodePort": 30080},
    ]  # fmt: skip
    assert service["resources"]["limits"] == {"cpu": "1", "memory": "200Mi"}
    assert service["env"] == [{"name": "MODE", "value": "edge"}]
    volumes = {v["name"]: {k: x for k, x in v.items() if k != "name"} for v in app["volumes"]}
    assert volumes["site"]["config"]["name"] == "site"
    assert volumes["creds"]["secret"]["name"] == "creds"
    assert volumes["tls"]["certificate"]["name"] == "tls"
    assert volumes["cache"] == {"emptyDir": {"medium": ""}}
    assert [r["name"] for r in app["registries"]] == ["hub"]


def baetyl_file() -> str:
    """A Baetyl-Py file: each document is its kind's REST body with `kind` beside it, written
    here in the reverse of the order they must be applied in."""
    pair = make_pair("gw.example.test")
    key = textwrap.indent(pair.key_pem, "    ")
    cert = textwrap.indent(pair.cert_pem, "    ")
    return (
        textwrap.dedent(
            """\
        kind: node
        name: edge-1
        labels: {role: gw}
        ---
        kind: application
        name: web
        mode: native
        selector: role=gw
        services:
          - name: web
            command: [python3, -m, http.server, "8080"]
            volumeMounts:
              - {name: settings, mountPath: settings}
              - {name: creds, mountPath: creds}
              - {name: tls, mountPath: tls}
        volumes:
          - {name: settings, config: {name: settings}}
          - {name: creds, secret: {name: creds}}
          - {name: tls, certificate: {name: tls}}
        registries: [{name: hub}]
        ---
        kind: config
        name: settings
        data:
          - {key: app.conf, value: {type: kv, value: "port=8080"}}
        ---
        kind: certificate
        name: tls
        data:
          certificate: |
        CERT
          key: |
        KEY
        ---
        kind: secret
        name: creds
        data: {token: s3cr3t}
        ---
        kind: registry
        name: hub
        address: registry.example.com
        username: bot
        password: pull-pw
        """
        )
        .replace("CERT\n", cert)
        .replace("KEY\n", key)
    )


async def test_a_baetyl_py_file_is_applied_in_dependency_order(cloud: CloudServer) -> None:
    before = len(cloud.desired_changes)
    answer = await applied(cloud, baetyl_file())
    assert outcomes(answer) == [
        ("registry", "hub", "created"),
        ("secret", "creds", "created"),
        ("certificate", "tls", "created"),
        ("config", "settings", "created"),
        ("app", "web", "created"),
        ("node", "edge-1", "created"),
    ]
    node = await cloud.ok("GET", "/v1/nodes/edge-1")
    assert [a["name"] for a in node["desire"]["apps"]] == ["web"]
    # The node's new desire is announced once, after the commit.
    assert cloud.desired_changes[before:] == [["default.edge-1"]]
    app = await cloud.ok("GET", "/v1/apps/web")
    config = await cloud.ok("GET", "/v1/configs/settings")
    mounted = {v["name"]: v for v in app["volumes"]}
    assert mounted["settings"]["config"]["version"] == config["version"]

    again = await applied(cloud, baetyl_file().replace("port=8080", "port=9090"))
    results = {(kind, name): result for kind, name, result in outcomes(again)}
    assert results[("config", "settings")] == "configured"
    assert results[("registry", "hub")] == "unchanged"
    assert results[("node", "edge-1")] == "unchanged"
    changed = await cloud.ok("GET", "/v1/configs/settings")
    assert changed["version"] != config["version"]
    app = await cloud.ok("GET", "/v1/apps/web")
    assert {v["name"]: v for v in app["volumes"]}["settings"]["config"]["version"] == changed[
        "version"
    ]


async def test_put_keeps_what_a_node_document_leaves_out(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1", "labels": {"a": "1"},
                                         "description": "hq"})  # fmt: skip
    answer = await applied(cloud, "kind: node\nname: edge-1\nlabels: {a: '2'}\n")
    assert outcomes(answer) == [("node", "edge-1", "configured")]
    node = await cloud.ok("GET", "/v1/nodes/edge-1")
    assert (node["labels"]["a"], node["description"]) == ("2", "hq")


@pytest.mark.parametrize(
    ("middle", "fragment"),
    [
        ("kind: config\nname: two\ndata: [{key: a, vaule: {type: kv}}]\n", "did you mean 'value'?"),
        ("kind: configmap\nname: two\n", "kind: 'configmap' is not one of"),
        ("kind: app\nname: two\nservices: []\n", "services: List should have at least 1"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: two}\n", "kind 'Pod' is not converted"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\nimmutable: true\n",
            "immutable: not converted",
        ),
        (
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: two}\nspec:\n  replicas: 2\n"
            "  template: {spec: {containers: [{name: c, image: busybox}]}}\n",
            "spec.replicas: a DaemonSet has no such field",
        ),
        ("kind: secret\nname: two\ndata: {k: v}\nnamespace: other\n", "the body names 'other'"),
        (
            "apiVersion: apps/v2\nkind: Deployment\nmetadata: {name: two}\n",
            "apiVersion: a Deployment is apps/v1, not 'apps/v2'",
        ),
        (
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: two}\nspec:\n  template:\n"
            "    spec:\n      containers:\n        - name: c\n          image: busybox\n"
            "          env: [{name: A, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n",
            "spec.template.spec.containers.0.env.0.valueFrom: not converted (or misspelt)",
        ),
    ],
    ids=[
        "typo",
        "kind",
        "rule",
        "kube-kind",
        "kube-field",
        "kube-shape",
        "namespace",
        "api-version",
        "value-from",
    ],
)
async def test_one_bad_document_leaves_nothing_stored(
    cloud: CloudServer, middle: str, fragment: str
) -> None:
    text = (
        "kind: secret\nname: one\ndata: {k: v}\n---\n"
        + middle
        + "---\nkind: config\nname: three\ndata: []\n"
    )
    for method in ("POST", "PUT"):
        message = await refused(cloud, method, "/v1/yaml", text)
        assert message.startswith("document 2 (line 5, "), message
        assert fragment in message
    await nothing_stored(cloud)


async def test_every_bad_document_is_named_in_one_answer(cloud: CloudServer) -> None:
    text = (
        "kind: config\nname: one\ndata: []\nlabel: {a: b}\n---\n"
        "kind: config\nname: two\ndata: []\n---\n"
        "apiVersion: v1\nkind: Secret\nmetadata: {name: three}\ndata: {k: not-base64!}\n"
    )
    message = await refused(cloud, "PUT", "/v1/yaml", text)
    first, second = message.split("; document 3 ")
    assert first == "document 1 (line 1, config one): label: unknown field; did you mean 'labels'?"
    assert second == "(line 10, Secret three): data.k: not base64 (use stringData for plain text)"
    await nothing_stored(cloud)


async def test_a_write_that_fails_late_rolls_back_the_earlier_ones(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1", "labels": {"role": "gw"}})
    before = list(cloud.desired_changes)
    # Every document reads well; the app names a configuration nobody has, which only its
    # use case finds out, after the secret and the config were written in the transaction.
    text = textwrap.dedent(
        """\
        kind: secret
        name: creds
        data: {token: t}
        ---
        kind: config
        name: settings
        data: []
        ---
        kind: app
        name: web
        mode: native
        selector: role=gw
        services: [{name: web, command: [sleep, "60"]}]
        ---
        kind: app
        name: broken
        mode: native
        selector: role=gw
        services: [{name: web, command: [sleep, "60"], volumeMounts: [{name: vv, mountPath: vv}]}]
        volumes: [{name: vv, config: {name: missing}}]
        """
    )
    message = await refused(cloud, "PUT", "/v1/yaml", text)
    assert message.startswith("document 4 (line 15, app broken): ")
    assert "references configuration 'missing', which does not exist" in message
    for collection in ("secrets", "configs", "apps"):
        assert await names(cloud, collection) == []
    node = await cloud.ok("GET", "/v1/nodes/edge-1")
    assert node["desire"]["apps"] == []
    assert cloud.desired_changes == before  # nothing was announced for the app rolled back


async def test_post_twice_is_a_conflict_and_leaves_nothing_half_made(cloud: CloudServer) -> None:
    text = "kind: config\nname: settings\ndata: []\n"
    await applied(cloud, text, method="POST")
    more = "kind: secret\nname: creds\ndata: {k: v}\n---\n" + text
    answer = await send_file(cloud, "POST", "/v1/yaml", more)
    assert (answer.status, answer.body["code"]) == (409, "ErrResourceConflict")
    assert answer.body["message"] == (
        "document 2 (line 5, config settings): config 'settings' already exists"
    )
    assert await names(cloud, "secrets") == []
    # A clash found only when writing (a registry holds the secret's name: no secret of that
    # name exists, so none is found before) takes back the registry written before it.
    await cloud.ok("POST", "/v1/registries", {"name": "shared", "address": "r.example",
                                              "username": "u", "password": "p"})  # fmt: skip
    clash = (
        "kind: secret\nname: shared\ndata: {k: v}\n---\n"
        "kind: registry\nname: fresh\naddress: r.example\nusername: u\npassword: p\n"
    )
    answer = await send_file(cloud, "POST", "/v1/yaml", clash)
    assert (answer.status, answer.body["code"]) == (409, "ErrResourceConflict")
    assert answer.body["message"].startswith("document 1 (line 1, secret shared): ")
    assert await names(cloud, "registries") == ["shared"]
    assert await names(cloud, "secrets") == []


async def test_delete_takes_the_file_back_in_reverse_order(cloud: CloudServer) -> None:
    await applied(cloud, baetyl_file())
    answer = await send_file(cloud, "POST", "/v1/yaml/delete", baetyl_file())
    assert answer.status == 200, answer.body
    assert answer.body["success"] is True
    assert outcomes(answer.body) == [
        ("node", "edge-1", "deleted"),
        ("app", "web", "deleted"),
        ("config", "settings", "deleted"),
        ("certificate", "tls", "deleted"),
        ("secret", "creds", "deleted"),
        ("registry", "hub", "deleted"),
    ]
    await nothing_stored(cloud)
    again = await send_file(cloud, "POST", "/v1/yaml/delete", baetyl_file())
    assert {result for _, _, result in outcomes(again.body)} == {"absent"}


async def test_delete_of_a_kubernetes_file_takes_the_service_ports_back(
    cloud: CloudServer,
) -> None:
    await applied(cloud, kube_file())
    service_only = kube_file().split("---\n")[1]
    answer = await send_file(cloud, "POST", "/v1/yaml/delete", service_only)
    assert outcomes(answer.body) == [("app", "nginx", "configured")]
    (port,) = (await cloud.ok("GET", "/v1/apps/nginx"))["services"][0]["ports"]
    assert "nodePort" not in port
    assert "serviceType" not in port
    answer = await send_file(cloud, "POST", "/v1/yaml/delete", kube_file())
    assert [result for _, _, result in outcomes(answer.body)] == ["deleted"] * 5
    await nothing_stored(cloud)


async def test_a_service_applies_to_stored_apps_and_must_select_something(
    cloud: CloudServer,
) -> None:
    await applied(cloud, kube_file())
    moved = kube_file().split("---\n")[1].replace("30080", "30081")
    answer = await applied(cloud, moved)
    assert outcomes(answer) == [("app", "nginx", "configured")]
    assert answer["total"] == 0
    (port,) = (await cloud.ok("GET", "/v1/apps/nginx"))["services"][0]["ports"]
    assert port["nodePort"] == 30081
    assert outcomes(await applied(cloud, moved)) == [("app", "nginx", "unchanged")]
    message = await refused(cloud, "PUT", "/v1/yaml", moved.replace("app: nginx", "app: other"))
    assert "spec.selector: no application has the labels app=other" in message
    message = await refused(
        cloud, "PUT", "/v1/yaml", moved.replace("targetPort: 80", "targetPort: 81")
    )
    assert "spec.ports: no container port 81 in the applications it selects (nginx)" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (b"", "the file holds no document"),
        ("# nothing\n---\n", "the file holds no document"),
        (b"\xff\xfe", "not UTF-8"),
        ("kind: config\nname: aa\n  data: [\n", "not valid YAML: line 3"),
        ("kind: config\nname: aa\nname: b\n", "the key 'name' is repeated"),
        ("kind: config\nname: &n a\ndescription: *n\n", "aliases (*name) are not accepted"),
        ("- kind: config\n  name: aa\n", "document 1 (line 1): expected a mapping, found list"),
        ("kind: config\nname: aa\ndata: !!binary aGk=\n", "a YAML bytes is not accepted"),
        ("kind: config\nname: x\ndata: []\n" + "---\nkind: config\nname: x\n" * MAX_DOCUMENTS,
         f"more than {MAX_DOCUMENTS} documents"),
        ("kind: config\ndata: []\n", "name: a name is required"),
        ("kind: secret\nname: aa\ndata: {k: v}\n---\nkind: registry\nname: aa\n"
         "address: r\nusername: u\npassword: p\n", "the name 'aa' is taken by document 1"),
    ],
    ids=["empty", "no-document", "binary", "syntax", "repeated-key", "alias", "list", "bytes",
         "too-many", "nameless", "same-name"],
)  # fmt: skip
async def test_a_file_that_is_not_a_good_yaml_file_is_a_400(
    cloud: CloudServer, text: str | bytes, fragment: str
) -> None:
    for method, path in (("PUT", "/v1/yaml"), ("POST", "/v1/yaml"), ("POST", "/v1/yaml/delete")):
        message = await refused(cloud, method, path, text)
        if path.endswith("delete") and fragment.startswith(("name:", "the name")):
            continue  # a delete reads names only; checked for the writes
        assert fragment in message, (path, message)
    await nothing_stored(cloud)


async def test_the_file_must_come_as_the_multipart_field_file(cloud: CloudServer) -> None:
    text = "kind: config\nname: aa\ndata: []\n"
    for answer in (
        await cloud.call("PUT", "/v1/yaml", {"kind": "config", "name": "a"}),
        await send_file(cloud, "PUT", "/v1/yaml", text, field="upload"),
    ):
        assert (answer.status, answer.body["code"]) == (400, "ErrRequestParamInvalid")
        assert "multipart/form-data field 'file'" in answer.body["message"]
    # A part whose headers do not parse (a control character in a field name: found by the
    # OpenAPI fuzz test) is the client's error too.
    boundary = "b0undary"
    raw = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="a\x1ab"\r\n\r\n{{}}\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    headers = {
        "Authorization": f"Bearer {cloud.admin_token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    async with cloud.session.put(cloud.url + "/v1/yaml", data=raw, headers=headers) as reply:
        body = await reply.json()
        assert (reply.status, body["code"]) == (400, "ErrRequestParamInvalid"), body
        assert "the multipart body cannot be read (Invalid HTTP header" in body["message"]
    big = "kind: config\nname: aa\ndata: []\n#" + "x" * MAX_BODY_BYTES + "\n"
    assert "larger than" in await refused(cloud, "PUT", "/v1/yaml", big)
    # Any file name will do (Baetyl wants .yaml or .yml): the content decides.
    answer = await send_file(cloud, "PUT", "/v1/yaml", text, filename="a.json")
    assert answer.status == 200, answer.body
    await cloud.ok("DELETE", "/v1/configs/aa")
    await nothing_stored(cloud)


async def test_a_read_token_and_another_namespace_change_nothing(cloud: CloudServer) -> None:
    reader = await cloud.token(role="read")
    for method, path in (("POST", "/v1/yaml"), ("PUT", "/v1/yaml"), ("POST", "/v1/yaml/delete")):
        answer = await send_file(cloud, method, path, baetyl_file(), token=reader)
        assert (answer.status, answer.body["code"]) == (403, "ErrRequestForbidden")
    await nothing_stored(cloud)

    # A namespace in a document is refused with the message every route gives.
    direct = await cloud.call("POST", "/v1/configs", {"name": "aa", "namespace": "other"})
    in_file = await refused(cloud, "PUT", "/v1/yaml", "kind: config\nname: aa\nnamespace: other\n")
    assert in_file == f"document 1 (line 1, config aa): {direct.body['message']}"
    kube = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: aa, namespace: other}\n"
    assert in_file.split(": ", 1)[1] in await refused(cloud, "PUT", "/v1/yaml", kube)
    for path in ("/v1/yaml", "/v1/yaml/delete"):
        method = "PUT" if path == "/v1/yaml" else "POST"
        message = await refused(cloud, method, path, kube)
        assert "the body names 'other'" in message
    await nothing_stored(cloud)

    # Another tenant's file reaches its own namespace only.
    await applied(cloud, "kind: config\nname: settings\ndata: []\n")
    other = await cloud.token(namespace="tenant-b")
    answer = await send_file(cloud, "POST", "/v1/yaml/delete", "kind: config\nname: settings\n",
                             token=other)  # fmt: skip
    assert outcomes(answer.body) == [("config", "settings", "absent")]
    assert await names(cloud, "configs") == ["settings"]
    answer = await send_file(cloud, "POST", "/v1/yaml", "kind: config\nname: settings\ndata: []\n",
                             token=other)  # fmt: skip
    assert answer.status == 200, answer.body
    assert answer.body["items"][0]["namespace"] == "tenant-b"


async def test_daemonsets_and_jobs_become_apps_of_their_workload(cloud: CloudServer) -> None:
    text = textwrap.dedent(
        """\
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: agent, labels: {tier: edge}}
        spec:
          selector: {matchLabels: {tier: edge}}
          template:
            spec:
              hostNetwork: true
              containers: [{name: agent, image: busybox, command: [sleep, "3600"]}]
        ---
        apiVersion: batch/v1
        kind: Job
        metadata: {name: pi}
        spec:
          backoffLimit: 2
          completions: 3
          parallelism: 1
          template:
            metadata: {name: pi}
            spec:
              restartPolicy: OnFailure
              initContainers: [{name: prepare, image: busybox, args: [echo, hi]}]
              containers: [{name: pi, image: perl, command: [perl, -e, "print 1"]}]
        """
    )
    answer = await applied(cloud, text, method="POST")
    assert outcomes(answer) == [("app", "agent", "created"), ("app", "pi", "created")]
    agent = await cloud.ok("GET", "/v1/apps/agent")
    assert (agent["workload"], agent["hostNetwork"], agent["labels"]) == (
        "daemonset", True, {"tier": "edge"},
    )  # fmt: skip
    job = await cloud.ok("GET", "/v1/apps/pi")
    assert job["workload"] == "job"
    assert job["jobConfig"] == {
        "completions": 3, "parallelism": 1, "backoffLimit": 2, "restartPolicy": "OnFailure",
    }  # fmt: skip
    assert [s["name"] for s in job["initServices"]] == ["prepare"]
