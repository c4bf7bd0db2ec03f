"""Node info and stats, read from this very machine and checked against what the OS says."""

from __future__ import annotations

import ipaddress
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from agent.contracts.report import NodeInfo, NodeStats
from agent.contracts.version import VERSION
from agent.core import node


@pytest.mark.parametrize(
    ("machine", "arch"),
    [
        ("x86_64", "amd64"),
        ("AMD64", "amd64"),
        ("aarch64", "arm64"),
        ("arm64", "arm64"),
        ("armv7l", "arm"),
        ("armv6l", "arm"),
        ("i686", "386"),
        ("riscv64", "riscv64"),
        ("ppc64le", "ppc64le"),
        ("s390x", "s390x"),
        ("loongarch64", "loong64"),
        ("sparc64", "sparc64"),
    ],
)
def test_architectures_get_go_names_like_baetyl_reports(machine: str, arch: str) -> None:
    assert node.go_arch(machine) == arch


@pytest.mark.parametrize(
    ("content", "image"),
    [
        (
            'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
            "Debian GNU/Linux 12 (bookworm)",
        ),
        ("PRETTY_NAME='Alpine Linux v3.19'\n", "Alpine Linux v3.19"),
        ("PRETTY_NAME=Buildroot\n", "Buildroot"),
        ('PRETTY_NAME="Ubuntu \\"Noble\\" 24.04"\n', 'Ubuntu "Noble" 24.04'),
        ("# PRETTY_NAME=commented\nNAME=x\n", ""),
        ('PRETTY_NAME="unterminated\n', "unterminated"),
    ],
)
def test_os_image_is_the_pretty_name_of_os_release(
    tmp_path: Path, content: str, image: str
) -> None:
    (tmp_path / "os-release").write_text(content)
    assert node.read_os_image((tmp_path / "os-release",)) == image


def test_os_image_falls_back_to_usr_lib_os_release(tmp_path: Path) -> None:
    (tmp_path / "usr-lib-os-release").write_text('PRETTY_NAME="Fallback OS"\n')
    candidates = (tmp_path / "absent", tmp_path / "usr-lib-os-release")
    assert node.read_os_image(candidates) == "Fallback OS"
    assert node.read_os_image((tmp_path / "absent",)) == ""


def test_id_files_are_trimmed_and_missing_ones_are_empty(tmp_path: Path) -> None:
    (tmp_path / "machine-id").write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    (tmp_path / "empty").write_text("")
    assert node.read_id_file(tmp_path / "machine-id") == "3d1219c7c4c5404aaa1f6d2a48adfda4"
    assert node.read_id_file(tmp_path / "empty") == ""
    assert node.read_id_file(tmp_path / "absent") == ""


def test_node_info_describes_this_host() -> None:
    info = node.read_info()
    assert info.hostname == socket.gethostname()
    assert info.os == platform.system().lower() == "linux"
    assert info.arch == node.go_arch(platform.machine())
    assert info.kernel_ver == platform.release()
    assert info.role == "master"
    if Path("/etc/machine-id").exists():
        assert info.machine_id == Path("/etc/machine-id").read_text().strip()
    assert info.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    product = Path("/sys/class/dmi/id/product_uuid")
    if os.access(product, os.R_OK):
        assert info.system_uuid == product.read_text().strip().lower()
    elif Path("/etc/machine-id").exists():
        assert info.system_uuid == info.machine_id
    assert info.container_runtime == ""  # a native node: Baetyl's cloud reads it so
    if info.address:
        address = ipaddress.IPv4Address(info.address)
        assert not address.is_loopback
        assert any(
            entry.address == info.address
            for entries in psutil.net_if_addrs().values()
            for entry in entries
        )


def test_node_info_uses_baetyls_key_spellings() -> None:
    wire = node.read_info(labels={"zone": "a"}).to_wire()
    assert set(wire) == {
        "hostname",
        "address",
        "arch",
        "os",
        "kernelVer",
        "osImage",
        "machineID",
        "bootID",
        "systemUUID",
        "containerRuntime",
        "role",
        "labels",
    }
    assert wire["labels"] == {"zone": "a"}
    assert NodeInfo.model_validate(wire) == node.read_info(labels={"zone": "a"})


async def test_node_info_can_be_collected_from_the_event_loop() -> None:
    info = await node.collect_info(role="worker")
    assert info.role == "worker"
    assert info.hostname == socket.gethostname()


def test_stats_are_kubernetes_quantities_about_this_host(tmp_path: Path) -> None:
    stats = node.StatsCollector(tmp_path).sample()
    assert stats.ready
    assert stats.usage.cpu.endswith("m")
    assert stats.capacity.cpu == str(os.cpu_count())
    assert int(stats.capacity.memory) == psutil.virtual_memory().total
    assert 0 < int(stats.usage.memory) < int(stats.capacity.memory)
    disk = shutil.disk_usage(tmp_path)
    assert int(stats.capacity.disk) == disk.used + disk.free
    assert abs(int(stats.usage.disk) - disk.used) < 256 * 1024 * 1024  # other tests write too
    assert 0 <= stats.percent.cpu <= 100
    assert 0 < stats.percent.memory < 100
    assert 0 < stats.percent.disk <= 100
    assert NodeStats.model_validate(stats.to_wire()) == stats  # valid quantities on the wire


def test_disk_is_measured_where_the_store_will_be_even_before_it_exists(tmp_path: Path) -> None:
    stats = node.StatsCollector(tmp_path / "not" / "yet" / "store").sample()
    disk = shutil.disk_usage(tmp_path)
    assert int(stats.capacity.disk) == disk.used + disk.free


def test_cpu_use_shows_a_busy_process() -> None:
    spin = "print('spinning', flush=True)\nwhile True: pass"
    with subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE) as busy:
        try:
            assert busy.stdout is not None
            busy.stdout.readline()
            collector = node.StatsCollector(Path("/"))
            time.sleep(0.5)
            stats = collector.sample()
        finally:
            busy.kill()
    cores_used = int(stats.usage.cpu.removesuffix("m")) / 1000
    assert cores_used >= 0.25, stats.usage  # one process spinning flat out on its core
    assert stats.percent.cpu >= 25 / (psutil.cpu_count() or 1), stats.percent


async def test_stats_can_be_collected_from_the_event_loop(tmp_path: Path) -> None:
    collector = node.StatsCollector(tmp_path)
    first, second = await node.collect_stats(collector), await collector.collect()
    assert first.capacity == second.capacity


def test_core_info_names_the_agent_python_and_backend() -> None:
    core = node.core_info("native")
    assert core.to_wire() == {
        "version": VERSION,
        "python": platform.python_version(),
        "backend": "native",
    }


def test_report_entries_key_node_and_nodestats_by_hostname(tmp_path: Path) -> None:
    info = node.read_info()
    stats = node.StatsCollector(tmp_path).sample()
    entries = node.report_entries(info, stats, node.core_info("kube"))
    assert entries == {
        "node": {info.hostname: info.to_wire()},
        "nodestats": {info.hostname: stats.to_wire()},
        "core": node.core_info("kube").to_wire(),
    }
