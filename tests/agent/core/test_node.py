"""Node info and stats, read from this very machine and checked against what the OS says."""

from __future__ import annotations

import ipaddress
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from agent.contracts.report import NodeInfo, NodeStats, fraction_text
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
    ("machine", "variant"),
    [("aarch64", "v8"), ("armv7l", "v7"), ("armv6l", "v6"), ("x86_64", ""), ("riscv64", "")],
)
def test_arm_machines_report_their_variant_as_baetyl_does(machine: str, variant: str) -> None:
    assert node.go_variant(machine) == variant


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


def _fraction(text: str) -> float:
    """A `percent` value: Baetyl's fraction, a decimal string from "0" to "1"."""
    assert re.fullmatch(r"[01](\.\d{1,4})?", text), text
    value = float(text)
    assert 0 <= value <= 1, text
    return value


def test_stats_are_in_baetyl_formats_about_this_host(tmp_path: Path) -> None:
    stats = node.StatsCollector(tmp_path).sample()
    assert stats.ready
    cores = os.cpu_count() or 1
    assert stats.capacity["cpu"] == str(cores)
    assert re.fullmatch(r"\d+(\.\d{1,3})?", stats.usage["cpu"]), stats.usage
    assert 0 <= float(stats.usage["cpu"]) <= cores
    assert int(stats.capacity["memory"]) == psutil.virtual_memory().total
    assert 0 < int(stats.usage["memory"]) < int(stats.capacity["memory"])
    disk = shutil.disk_usage(tmp_path)
    assert int(stats.capacity["disk"]) == disk.used + disk.free
    assert abs(int(stats.usage["disk"]) - disk.used) < 256 * 1024 * 1024  # other tests write too
    assert 0 <= _fraction(stats.percent["cpu"]) <= 1
    assert 0 < _fraction(stats.percent["memory"]) < 1
    memory_share = int(stats.usage["memory"]) / int(stats.capacity["memory"])
    assert abs(_fraction(stats.percent["memory"]) - memory_share) <= 0.0001
    assert 0 < _fraction(stats.percent["disk"]) <= 1
    assert set(stats.netio) == {"netBytesSent", "netBytesRecv", "netPacketsSent", "netPacketsRecv"}
    assert all(value.isdigit() for value in stats.netio.values()), stats.netio
    assert stats.disk_pressure is None  # a native node has no conditions, as in Baetyl
    wire = stats.to_wire()
    assert not {"diskPressure", "memoryPressure", "pidPressure", "NetworkUnavailable"} & set(wire)
    assert NodeStats.model_validate(wire) == stats  # valid on the wire, and read back the same


def test_every_mounted_file_system_has_its_disk_entry(tmp_path: Path) -> None:
    stats = node.StatsCollector(tmp_path).sample()
    mounts = {p.mountpoint for p in psutil.disk_partitions(all=False)}
    if not mounts:
        pytest.skip("psutil sees no real file system here (a container's overlay root)")
    known = "/" if "/" in mounts else min(mounts)  # "/" on a host (and on this test machine)
    disk = shutil.disk_usage(known)
    assert stats.capacity[f"disk_{known}"] == str(disk.used + disk.free)
    assert abs(int(stats.usage[f"disk_{known}"]) - disk.used) < 256 * 1024 * 1024
    assert _fraction(stats.percent[f"disk_{known}"]) == pytest.approx(
        disk.used / (disk.used + disk.free), abs=0.001
    )
    entries = {key.removeprefix("disk_") for key in stats.capacity if key.startswith("disk_")}
    assert entries == set(node.mount_points())
    assert entries <= mounts
    assert set(stats.usage) == set(stats.capacity) == set(stats.percent)


def test_disk_is_measured_where_the_store_will_be_even_before_it_exists(tmp_path: Path) -> None:
    stats = node.StatsCollector(tmp_path / "not" / "yet" / "store").sample()
    disk = shutil.disk_usage(tmp_path)
    assert int(stats.capacity["disk"]) == disk.used + disk.free


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
    cores_used = float(stats.usage["cpu"])
    assert cores_used >= 0.25, stats.usage  # one process spinning flat out on its core
    assert _fraction(stats.percent["cpu"]) >= 0.25 / (psutil.cpu_count() or 1), stats.percent


def test_netio_counts_packets_leaving_the_host_per_second() -> None:
    datagrams = 200
    started = time.monotonic()
    collector = node.StatsCollector(Path("/"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        try:
            for _ in range(datagrams):  # TEST-NET-1: routed out of the host, answered by no one
                sender.sendto(b"x" * 1000, ("192.0.2.1", 9))
        except OSError as exc:
            pytest.skip(f"no route off this host: {exc}")
    stats = collector.sample()
    window = time.monotonic() - started
    assert int(stats.netio["netPacketsSent"]) >= datagrams / window - 1, (stats.netio, window)
    assert int(stats.netio["netBytesSent"]) >= datagrams * 1000 / window - 1, stats.netio


def _drain(peer: socket.socket, size: int) -> None:
    received = 0
    while received < size:
        data = peer.recv(1024 * 1024)
        if not data:
            return
        received += len(data)


def test_netio_leaves_loopback_traffic_out() -> None:
    size = 32 * 1024 * 1024
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as client,
    ):
        peer, _ = server.accept()
        with peer:
            reader = threading.Thread(target=_drain, args=(peer, size))
            started = time.monotonic()
            collector = node.StatsCollector(Path("/"))
            reader.start()
            client.sendall(b"x" * size)
            reader.join()
            stats = collector.sample()
            window = time.monotonic() - started
    # Counted, the 32 MiB would make a rate of at least size / window bytes per second.
    assert int(stats.netio["netBytesSent"]) < size / window / 2, (stats.netio, window)


async def test_stats_can_be_collected_from_the_event_loop(tmp_path: Path) -> None:
    collector = node.StatsCollector(tmp_path)
    first, second = await node.collect_stats(collector), await collector.collect()
    assert first.capacity["cpu"] == second.capacity["cpu"]
    assert first.capacity["memory"] == second.capacity["memory"]


def test_kube_capacity_replaces_the_hosts_and_the_conditions_set_the_flags(tmp_path: Path) -> None:
    host = node.StatsCollector(tmp_path).sample()
    conditions = {"Ready": True, "DiskPressure": True, "MemoryPressure": False}
    conditions["PIDPressure"] = False
    capacity = {"cpu": "3500m", "memory": "8Gi", "disk": "64Gi"}
    stats = node.with_capacity(host, ready=True, capacity=capacity, conditions=conditions)
    assert stats.capacity == {"cpu": "3.5", "memory": str(8 * 2**30), "disk": str(64 * 2**30)}
    assert stats.usage == {key: host.usage[key] for key in ("cpu", "memory", "disk")}
    assert stats.percent["cpu"] == fraction_text(float(host.usage["cpu"]), 3.5)
    assert stats.percent["memory"] == fraction_text(int(host.usage["memory"]), 8 * 2**30)
    assert (stats.disk_pressure, stats.memory_pressure, stats.pid_pressure) == (True, False, False)
    assert stats.network_unavailable is None  # the Node said nothing about it
    assert stats.netio == host.netio  # the agent's pod uses the host's network
    wire = stats.to_wire()
    assert (wire["diskPressure"], wire["memoryPressure"], wire["pidPressure"]) == (
        True,
        False,
        False,
    )
    assert not any(key.startswith("disk_") for key in wire["usage"])  # the pod's mounts


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
