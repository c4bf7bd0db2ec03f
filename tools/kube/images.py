"""Container images without a registry: docker-archive tarballs written here, imported with ctr.

No registry is reachable from this machine, so the images the cluster and the tests need are
built from files already on it: the pod sandbox (`pause.c`, compiled static), a busybox image
from Debian's `busybox-static`. Each archive is one layer; `ctr images import` takes it. Pods use
them with `imagePullPolicy: Never` or `IfNotPresent`.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tools.kube.configs import PAUSE_IMAGE, image_architecture

IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON_IMAGE = "localhost/baetyl-py/python:3"
SYSTEM_PYTHON = Path("/usr/bin/python3")
# Parts of the standard library no edge app needs (tests, GUIs, the compiler toolchain's files).
STDLIB_SKIPPED = frozenset(
    {
        "__pycache__",
        "dist-packages",
        "site-packages",
        "test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "ensurepip",
        "lib2to3",
        "pydoc_data",
    }
)

HERE = Path(__file__).resolve().parent
BUSYBOX_IMAGE = "localhost/baetyl-py/busybox:1"
BUSYBOX = Path("/bin/busybox")
# The applets the tests and examples call; each becomes a link to /bin/busybox.
BUSYBOX_APPLETS = (
    "sh",
    "httpd",
    "sleep",
    "echo",
    "cat",
    "ls",
    "wget",
    "env",
    "true",
    "false",
    "id",
)


@dataclass(frozen=True)
class Entry:
    """One file of a layer: its path in the image, and its bytes or the target of a link."""

    path: str
    data: bytes = b""
    mode: int = 0o755
    link: str | None = None
    directory: bool = False


@dataclass(frozen=True)
class Image:
    """An image to build: its reference, its files and what it runs."""

    reference: str
    entries: tuple[Entry, ...]
    entrypoint: tuple[str, ...]
    command: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    """Variables besides PATH, `NAME=value`."""


def layer_tar(entries: Iterable[Entry]) -> bytes:
    """The layer as an uncompressed tar, reproducible (fixed owner and times)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path.lstrip("/"))
            info.mode, info.mtime, info.uid, info.gid = entry.mode, 0, 0, 0
            if entry.directory:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    return buffer.getvalue()


def docker_archive(image: Image) -> bytes:
    """`image` as a docker-archive (manifest.json, the config, one layer.tar)."""
    layer = layer_tar(image.entries)
    config = {
        "architecture": image_architecture(),
        "os": "linux",
        "config": {
            "Entrypoint": list(image.entrypoint),
            "Cmd": list(image.command) or None,
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                *image.env,
            ],
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    manifest = [{"Config": config_name, "RepoTags": [image.reference], "Layers": ["layer.tar"]}]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (
            ("manifest.json", json.dumps(manifest).encode()),
            (config_name, config_bytes),
            ("layer.tar", layer),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def pause_image(work: Path) -> Image:
    """The pod sandbox image, from `pause.c` compiled static."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise FileNotFoundError("a C compiler (gcc) is needed to build the pause image")
    binary = work / "pause"
    subprocess.run(  # noqa: S603 - our own arguments, no shell
        [compiler, "-Os", "-static", "-o", str(binary), str(HERE / "pause.c")],
        check=True,
        capture_output=True,
    )
    return Image(PAUSE_IMAGE, (Entry("pause", binary.read_bytes()),), ("/pause",))


def busybox_image() -> Image:
    """A minimal image: Debian's static busybox and links for the applets the tests use."""
    entries = [
        Entry("bin", directory=True),
        Entry("bin/busybox", BUSYBOX.read_bytes()),
        *(Entry(f"bin/{applet}", link="busybox") for applet in BUSYBOX_APPLETS),
        Entry("tmp", directory=True, mode=0o1777),
        Entry("etc", directory=True),
        Entry(
            "etc/passwd",
            b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            0o644,
        ),
        Entry("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644),
        Entry("www", directory=True),
    ]
    return Image(BUSYBOX_IMAGE, tuple(entries), ("/bin/sh",))


def python_image() -> Image:
    """This machine's `python3` with its standard library and the shared libraries both load:
    the image the Python examples run in (`python3 app/server.py`), with no registry."""
    binary = SYSTEM_PYTHON.resolve()
    stdlib = Path(
        subprocess.run(  # noqa: S603 - our own arguments, no shell
            [str(binary), "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    files: dict[str, bytes] = {"usr/bin/python3": binary.read_bytes()}
    for path in sorted(stdlib.rglob("*")):
        relative = path.relative_to(stdlib)
        if STDLIB_SKIPPED & set(relative.parts) or relative.parts[0].startswith("config-"):
            continue
        if path.is_file() and not path.is_symlink():
            files[str(path).lstrip("/")] = path.read_bytes()
    extensions = [binary, *stdlib.glob("lib-dynload/*.so")]
    for library in shared_libraries(extensions):
        files[str(library).lstrip("/")] = library.resolve().read_bytes()
    directories = sorted({str(Path(name).parent) for name in files} - {"."})
    entries = [
        *(Entry(name, directory=True) for name in _with_parents(directories)),
        *(
            Entry(
                name, data, 0o755 if name.endswith((".so", "python3")) or ".so." in name else 0o644
            )
            for name, data in sorted(files.items())
        ),
        Entry("usr/bin/python", link="python3"),
        Entry("tmp", directory=True, mode=0o1777),
        Entry(
            "etc/passwd",
            b"root:x:0:0:root:/:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            0o644,
        ),
        Entry("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644),
    ]
    return Image(PYTHON_IMAGE, tuple(entries), ("/usr/bin/python3",))


def shared_libraries(binaries: Iterable[Path]) -> set[Path]:
    """Every shared library (and the loader) the ELF files `binaries` load, from `ldd`."""
    found: set[Path] = set()
    ldd = shutil.which("ldd", path="/usr/bin:/bin")
    if ldd is None:
        raise FileNotFoundError("ldd (Debian's libc-bin) is needed to build the Python image")
    for binary in binaries:
        output = subprocess.run(  # noqa: S603 - our own arguments, no shell
            [ldd, str(binary)], check=False, capture_output=True, text=True
        ).stdout
        for line in output.splitlines():
            target = line.split("=>", 1)[-1].strip().split(" (", 1)[0].strip()
            if target.startswith("/"):
                found.add(Path(target))
    return found


def _with_parents(directories: Iterable[str]) -> list[str]:
    every: set[str] = set()
    for directory in directories:
        path = Path(directory)
        every.update(str(p) for p in [path, *path.parents] if str(p) != ".")
    every.add("etc")
    return sorted(every)


def archive_name(reference: str) -> str:
    """`localhost/baetyl-py/python:3` → `python-3.tar`."""
    return f"{reference.rsplit('/', 1)[-1].replace(':', '-')}.tar"


def build_all(work: Path) -> list[Path]:
    """Write the archive of every image into `work`; their paths."""
    work.mkdir(parents=True, exist_ok=True)
    archives = []
    for image in (pause_image(work), busybox_image(), python_image()):
        path = work / archive_name(image.reference)
        path.write_bytes(docker_archive(image))
        archives.append(path)
    return archives
