"""The files baetyl-init writes: a core.yml that baetyl-core accepts, keys private, one prefix."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from agent.core.config import load_config, node_identity
from agent.init import files, keys
from agent.init.errors import InitError
from cloud.installer import render
from cloud.pki.ca import CertificateAuthority

NID = "default.edge-1"


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


def activate_into(layout: files.Layout, ca: CertificateAuthority, nid: str = NID) -> None:
    """Write what a successful activation writes (the CA signs instead of the cloud)."""
    files.prepare(layout)
    key = keys.new_key()
    cert = ca.sign_csr(keys.csr_pem(key, nid).encode(), expected_common_name=nid)
    files.write_node_files(
        layout, key_pem=keys.key_pem(key), cert_pem=cert.decode(), ca_pem=ca.cert_pem.decode()
    )
    config = files.core_config(
        layout, mqtt_url="mqtts://broker.example:8883", api_listen="127.0.0.1:30050"
    )
    files.write_config(layout, config, expected_nid=nid)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_activation_leaves_a_config_baetyl_core_accepts(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    layout = files.Layout(tmp_path / "opt")
    activate_into(layout, ca)
    config = load_config(tmp_path / "opt/etc/baetyl/core.yml")
    assert node_identity(config).nid == NID
    assert config.cloud.mqtt == "mqtts://broker.example:8883"
    assert config.node.key == tmp_path / "opt/var/lib/baetyl/node/client.key"
    assert config.store.dir == tmp_path / "opt/var/lib/baetyl/store"
    assert config.run.dir == tmp_path / "opt/var/lib/baetyl/run"
    assert config.log.dir == tmp_path / "opt/var/log/baetyl"
    assert config.api.listen == "127.0.0.1:30050"
    assert list(yaml.safe_load(layout.config_file.read_text()))[:2] == ["node", "cloud"]
    assert mode(layout.key_file) == 0o600
    assert mode(layout.node_dir) == 0o700
    assert mode(layout.cert_file) == mode(layout.ca_file) == 0o644
    assert (tmp_path / "opt/var/run").is_dir()
    found = files.installed(layout)
    assert found is not None
    assert found.nid == NID


def test_a_base_config_is_kept_but_cannot_change_identity_or_broker(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    # The Kubernetes manifest's ConfigMap is such a base.
    docs = yaml.safe_load_all(
        render.deployment_manifest(
            render.InstallValues(cloud_url="http://c:1", token="t", nid=NID), image="i"
        )
    )
    (config_map,) = [doc for doc in docs if doc["kind"] == "ConfigMap"]
    base = yaml.safe_load(config_map["data"]["core.yml"])
    base["cloud"] = {"mqtt": "mqtts://elsewhere:1", "keepalive": "10s"}
    base["node"] = {"cert": "/stolen.pem"}
    base["sync"] = {"report_interval": "5s"}
    layout = files.Layout(tmp_path / "baetyl")
    config = files.core_config(
        layout, mqtt_url="mqtts://broker:8883", api_listen="127.0.0.1:1", base=base
    )
    assert config["engine"] == {"backend": "kube"}
    assert config["cloud"] == {"mqtt": "mqtts://broker:8883", "keepalive": "10s"}
    assert config["node"]["cert"] == str(layout.cert_file)
    assert config["sync"] == {"report_interval": "5s"}
    assert config["store"] == {"dir": str(layout.store_dir)}


def test_a_half_written_installation_does_not_count(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    layout = files.Layout(tmp_path / "opt")
    assert files.installed(layout) is None
    activate_into(layout, ca)
    layout.key_file.write_bytes(keys.key_pem(keys.new_key()))  # a key of another activation
    assert files.installed(layout) is None
    activate_into(layout, ca)
    layout.cert_file.unlink()
    assert files.installed(layout) is None


def test_a_config_that_baetyl_core_would_refuse_is_not_written(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    layout = files.Layout(tmp_path / "opt")
    activate_into(layout, ca)
    before = layout.config_file.read_text()
    config = files.core_config(
        layout, mqtt_url="mqtts://b:1", api_listen="x", base={"sync": {"colour": 1}}
    )
    with pytest.raises(InitError) as refused:
        files.write_config(layout, config, expected_nid=NID)
    assert "sync.colour: unknown key" in str(refused.value)
    assert "api.listen" in str(refused.value)
    with pytest.raises(InitError, match=r"names node 'default\.edge-1', not 'default\.other'"):
        files.write_config(
            layout,
            files.core_config(layout, mqtt_url="mqtts://b:1", api_listen="127.0.0.1:1"),
            expected_nid="default.other",
        )
    assert layout.config_file.read_text() == before


def test_an_unusable_prefix_is_refused_with_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InitError, match="Run as root, or choose another --prefix"):
        files.prepare(files.Layout(blocker / "opt"))
    bad_base = tmp_path / "base.yml"
    bad_base.write_text("- a list\n")
    with pytest.raises(InitError, match="must be a YAML mapping"):
        files.load_base(bad_base)
    bad_base.write_text("a: [\n")
    with pytest.raises(InitError, match="cannot be read as YAML"):
        files.load_base(bad_base)
