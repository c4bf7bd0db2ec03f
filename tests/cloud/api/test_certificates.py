"""`/v1/certificates` through a real server: facts read from the PEM, keys checked and hidden."""

from __future__ import annotations

import json
from typing import Any

from cloud.pki.certinfo import read_certificate
from cloud.store import secrets as secret_store
from tests.cloud.api.node_helpers import app_mounting
from tests.cloud.api.tables import refusals
from tests.cloud.pki.selfsigned import NOT_AFTER, NOT_BEFORE, Pair, key_text, make_pair, new_key
from tests.harness.cloud import CloudServer, Reply, backend


def certificate(name: str, pair: Pair, *, key: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "data": {"certificate": pair.cert_pem, "key": pair.key_pem if key is None else key},
    }
    body.update(extra)
    return body


def key_body(pair: Pair) -> str:
    """The base64 body of the key PEM: must never appear in any response."""
    return "".join(pair.key_pem.strip().splitlines()[1:-1])


def assert_no_key(pair: Pair, *answers: Reply | Any) -> None:
    for answer in answers:
        text = json.dumps(answer.body if isinstance(answer, Reply) else answer)
        assert key_body(pair)[:40] not in text
        assert "PRIVATE KEY" not in text


def app_using(name: str, cert_name: str, selector: str = "") -> dict[str, Any]:
    volume = {"name": "tls", "certificate": {"name": cert_name}}
    return app_mounting(name, volume, mount_path="tls", selector=selector)


async def test_a_certificate_is_shown_with_its_facts_and_never_its_key(
    cloud: CloudServer,
) -> None:
    pair = make_pair("mqtt.example.test", key_type="rsa", serial=987654321)
    created = await cloud.call(
        "POST", "/v1/certificates", certificate("mqtt-tls", pair, description="broker")
    )
    assert created.status == 200, created.body
    view = created.body
    facts = read_certificate(pair.cert_pem).fields()
    for field, value in facts.items():
        assert view[field] == value
    assert view["issuer"] == "mqtt.example.test"
    assert view["serialNumber"] == "987654321"
    assert view["signatureAlgorithm"] == "SHA256-RSA"
    assert view["data"] == {"certificate": pair.cert_pem}
    assert view["labels"] == {"secret-type": "certificate"}
    assert view["description"] == "broker"

    got = await cloud.call("GET", "/v1/certificates/mqtt-tls")
    assert got.body == view
    listed = await cloud.call("GET", "/v1/certificates")
    assert listed.body["total"] == 1
    item = listed.body["items"][0]
    assert "data" not in item
    assert item == {k: v for k, v in view.items() if k != "data"}
    assert_no_key(pair, created, got, listed)


async def test_certificate_dates_are_its_validity_as_rfc3339_and_cannot_be_written(
    cloud: CloudServer,
) -> None:
    pair = make_pair("dates.example.test")  # valid from NOT_BEFORE to NOT_AFTER
    assert (NOT_BEFORE.isoformat(), NOT_AFTER.isoformat()) == (
        "2024-01-02T03:04:05+00:00",
        "2034-01-02T03:04:05+00:00",
    )
    dates = {"effectiveTime": "2024-01-02T03:04:05Z", "expiredTime": "2034-01-02T03:04:05Z"}
    created = await cloud.ok("POST", "/v1/certificates", certificate("dated", pair))
    assert {key: created[key] for key in dates} == dates
    listed = await cloud.ok("GET", "/v1/certificates")
    assert {key: listed["items"][0][key] for key in dates} == dates
    # Baetyl's view writes Go's time text; either way the dates are read-only view fields.
    claimed = {"effectiveTime": "2000-01-01 00:00:00 +0000 UTC", "expiredTime": "2999-01-01"}
    put = await cloud.ok("PUT", "/v1/certificates/dated", {**created, **claimed})
    assert {key: put[key] for key in dates} == dates
    assert put["version"] == created["version"]


async def test_baetyls_cert_field_name_is_accepted(cloud: CloudServer) -> None:
    pair = make_pair()
    body = {"name": "legacy", "data": {"cert": pair.cert_pem, "key": pair.key_pem}}
    created = await cloud.ok("POST", "/v1/certificates", body)
    assert created["data"]["certificate"] == pair.cert_pem


async def test_the_key_is_encrypted_at_rest(cloud: CloudServer) -> None:
    pair = make_pair()
    await cloud.ok("POST", "/v1/certificates", certificate("tls", pair))
    stored = await secret_store.get("default", "tls")
    assert stored is not None
    assert stored.sealed is not None
    assert key_body(pair)[:40] not in stored.sealed
    assert "PRIVATE KEY" not in json.dumps(stored.info)
    assert stored.secret_type == "certificate"
    if backend() == "sqlite":
        database = b"".join(p.read_bytes() for p in cloud.data_dir.glob("cloud.db*"))
        assert key_body(pair)[:40].encode() not in database


async def test_replace_without_a_key_keeps_the_stored_key(cloud: CloudServer) -> None:
    pair = make_pair()
    first = await cloud.ok("POST", "/v1/certificates", certificate("tls", pair))
    described = await cloud.ok(
        "PUT", "/v1/certificates/tls", certificate("tls", pair, key="", description="kept")
    )
    assert described["version"] == first["version"]
    assert described["description"] == "kept"
    # A GET result can be PUT back: it has no key, and its read-only facts are ignored.
    round_trip = await cloud.ok("PUT", "/v1/certificates/tls", described)
    assert round_trip == described


async def test_a_new_certificate_and_key_give_a_new_version_and_facts(cloud: CloudServer) -> None:
    first_pair, second_pair = make_pair("one.test"), make_pair("two.test", serial=2)
    first = await cloud.ok("POST", "/v1/certificates", certificate("tls", first_pair))
    second = await cloud.ok("PUT", "/v1/certificates/tls", certificate("tls", second_pair))
    assert second["version"] != first["version"]
    assert (second["issuer"], second["serialNumber"]) == ("two.test", "2")
    assert second["fingerPrint"] != first["fingerPrint"]
    assert second["data"]["certificate"] == second_pair.cert_pem
    assert_no_key(second_pair, second)


async def test_a_new_certificate_that_does_not_match_the_stored_key_is_refused(
    cloud: CloudServer,
) -> None:
    await cloud.ok("POST", "/v1/certificates", certificate("tls", make_pair()))
    before = await cloud.ok("GET", "/v1/certificates/tls")
    answer = await cloud.call(
        "PUT", "/v1/certificates/tls", certificate("tls", make_pair(), key="")
    )
    assert answer.status == 400
    assert "does not match" in answer.body["message"]
    assert await cloud.ok("GET", "/v1/certificates/tls") == before


BAD_PAIR = make_pair()


def _bad_creates() -> list[tuple[str, Any, int, str, str]]:
    pair = BAD_PAIR
    other_key = key_text(new_key())
    encrypted = key_text(pair.key, password=b"secret")
    return [
        ("no key", certificate("cc", pair, key=""), 400, "ErrRequestParamInvalid", "data.key"),
        ("no certificate", {"name": "cc", "data": {"key": pair.key_pem}}, 400,
         "ErrRequestParamInvalid", "certificate"),
        ("no data", {"name": "c"}, 400, "ErrRequestParamInvalid", "data"),
        ("key of another certificate", certificate("cc", pair, key=other_key), 400,
         "ErrRequestParamInvalid", "does not match"),
        ("encrypted key", certificate("cc", pair, key=encrypted), 400,
         "ErrRequestParamInvalid", "encrypted"),
        ("key in the certificate field",
         {"name": "cc", "data": {"certificate": pair.cert_pem + pair.key_pem, "key": pair.key_pem}},
         400, "ErrRequestParamInvalid", "only CERTIFICATE"),
        ("garbage certificate", {"name": "cc", "data": {"certificate": "xyz", "key": pair.key_pem}},
         400, "ErrRequestParamInvalid", "data.certificate"),
        ("both field names",
         {"name": "cc", "data": {"cert": pair.cert_pem, "certificate": pair.cert_pem}},
         400, "ErrRequestParamInvalid", "not both"),
        ("unknown data field",
         {"name": "cc", "data": {"certificate": pair.cert_pem, "key": pair.key_pem, "ca": "x"}},
         400, "ErrRequestParamInvalid", "ca"),
        ("reserved name", certificate("baetyl-tls", pair), 400, "ErrRequestParamInvalid", "baetyl"),
        ("bad name", certificate("-tls", pair), 400, "ErrRequestParamInvalid", "name"),
        ("bad label", certificate("cc", pair, labels={"k": "-v"}), 400,
         "ErrRequestParamInvalid", "label"),
        ("other namespace", certificate("cc", pair, namespace="tenant-b"), 400,
         "ErrRequestParamInvalid", "namespace"),
        ("duplicate", certificate("existing", pair), 409, "ErrResourceConflict", "certificate"),
    ]  # fmt: skip


BAD_CREATES = _bad_creates()


@refusals(BAD_CREATES)
async def test_bad_creates_are_refused_and_change_nothing(
    cloud: CloudServer, body: Any, status: int, code: str, fragment: str
) -> None:
    existing = await cloud.ok("POST", "/v1/certificates", certificate("existing", make_pair()))
    answer = await cloud.refused("POST", "/v1/certificates", body, status, code, fragment)
    assert key_body(BAD_PAIR)[:40] not in answer.body["message"]  # no key echoed into errors
    listed = await cloud.ok("GET", "/v1/certificates")
    assert listed["items"] == [{k: v for k, v in existing.items() if k != "data"}]


async def test_a_mounted_certificate_lists_its_apps_and_cannot_be_deleted(
    cloud: CloudServer,
) -> None:
    await cloud.ok("POST", "/v1/certificates", certificate("tls", make_pair()))
    app = await cloud.ok("POST", "/v1/apps", app_using("web", "tls"))
    uses = await cloud.ok("GET", "/v1/certificates/tls/apps")
    assert [(u["name"], u["version"]) for u in uses["items"]] == [("web", app["version"])]
    answer = await cloud.call("DELETE", "/v1/certificates/tls")
    assert answer.status == 403
    assert answer.body["code"] == "ErrResourceHasBeenUsed"


async def test_a_new_certificate_reaches_the_mounting_app(cloud: CloudServer) -> None:
    first = await cloud.ok("POST", "/v1/certificates", certificate("tls", make_pair()))
    app_v1 = await cloud.ok("POST", "/v1/apps", app_using("web", "tls"))
    assert app_v1["volumes"][0]["certificate"]["version"] == first["version"]
    second = await cloud.ok("PUT", "/v1/certificates/tls", certificate("tls", make_pair()))
    app_v2 = await cloud.ok("GET", "/v1/apps/web")
    assert app_v2["version"] != app_v1["version"]
    assert app_v2["volumes"][0]["certificate"]["version"] == second["version"]


async def test_openapi_never_describes_a_key_in_a_view(cloud: CloudServer) -> None:
    schemas = (await cloud.ok("GET", "/v1/openapi.json"))["components"]["schemas"]
    assert "key" not in schemas["CertificateView"]["properties"].get("data", {}).get(
        "properties", {}
    )
    assert "key" not in schemas["CertificatePem"]["properties"]
