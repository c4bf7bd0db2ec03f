"""Where an instance lives on disk, and its volumes materialised there, confined to it.

`<run>/<ns>/<app>/<version>/<service>/<i>/` is an instance's working directory. Every mount path,
absolute or relative, lands inside it (`/etc/conf` → `<instance>/etc/conf`), and nothing a spec
says can make a write land outside: `..` is refused, and every directory on the way to a mount
must be a real directory inside the instance (a hostPath mount is a symlink to the host, so
nothing may be mounted through it). Bad specs raise DeployError naming app, service and volume.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from agent.contracts import spec_rules
from agent.contracts.objects import ObjectItem, is_object_key, object_items
from agent.contracts.resources import Application, Service, Volume, VolumeMount
from agent.core.backend import DeployError, Deployment
from agent.core.objects import content_path, copy_file, copy_tree

CONFIG_DIR_MODE = 0o755
CONFIG_FILE_MODE = 0o644
SECRET_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o600


@dataclass(frozen=True)
class Layout:
    """Paths of apps, instances and logs for one node namespace."""

    run_dir: Path
    log_dir: Path
    namespace: str

    def app_dir(self, app: str) -> Path:
        """`<run>/<ns>/<app>`: every version of the app."""
        return self.run_dir / self.namespace / app

    def version_dir(self, app: str, version: str) -> Path:
        """`<run>/<ns>/<app>/<version>`."""
        return self.app_dir(app) / version

    def instance_dir(self, app: str, version: str, service: str, index: int) -> Path:
        """`<run>/<ns>/<app>/<version>/<service>/<i>`: the instance's working directory."""
        return self.version_dir(app, version) / service / str(index)

    def app_log_dir(self, app: str) -> Path:
        """`<log>/<ns>/<app>`: the app's log files (kept when the app is removed)."""
        return self.log_dir / self.namespace / app

    def log_path(self, app: str, service: str, index: int) -> Path:
        """`<log>/<ns>/<app>/<service>-<i>.log`, shared by every version of that instance."""
        return self.app_log_dir(app) / f"{service}-{index}.log"

    def parse_instance_dir(self, directory: Path) -> tuple[str, str, str, int] | None:
        """(app, version, service, index) of an instance directory under this layout."""
        try:
            parts = directory.relative_to(self.run_dir / self.namespace).parts
        except ValueError:
            return None
        if len(parts) != 4 or not parts[3].isdigit():
            return None
        return parts[0], parts[1], parts[2], int(parts[3])


def replicas(app: Application, service: Service) -> int:
    """Instances of `service`: its own `replica` if set, else the app's."""
    return app.replica if service.replica is None else service.replica


def container_path(path: str, *, what: str) -> PurePosixPath:
    """`path` (absolute or relative) as a relative path inside an instance; no `..`, not empty."""
    try:
        return spec_rules.container_path(path, what=what)
    except spec_rules.SpecError as exc:
        raise DeployError(str(exc)) from None


def working_path(service: Service) -> PurePosixPath | None:
    """The service's workingDir inside its instance directory (None: the directory itself)."""
    try:
        return spec_rules.working_path(service)
    except spec_rules.SpecError as exc:
        raise DeployError(f"service {service.name!r}: {exc}") from None


def check(deployment: Deployment) -> None:
    """Refuse a deployment that cannot run natively, before anything is touched (pure).

    The spec's own rules (agent.contracts.spec_rules, which the cloud applies too) are checked
    again here: a spec in the local store may predate them. Then what needs the node's data:
    every configuration and secret provided at its version, every subPath one of its keys.
    """
    app = deployment.app
    try:
        spec_rules.check(app)
    except spec_rules.SpecError as exc:
        raise DeployError(str(exc)) from None
    if not app.version:
        raise DeployError(f"app {app.name!r}: version {app.version!r} cannot name a directory")
    volumes = {volume.name: volume for volume in app.volumes}
    for service in [*app.init_services, *app.services]:
        where = f"app {app.name!r} service {service.name!r}"
        if not service.command:
            raise DeployError(f"{where}: a native service needs a command")
        for mount in service.volume_mounts:
            volume = volumes.get(mount.name)
            if volume is None:
                raise DeployError(f"{where}: volume {mount.name!r} is not declared by the app")
            _check_source(deployment, where, mount, volume)


def _check_source(deployment: Deployment, where: str, mount: VolumeMount, volume: Volume) -> None:
    what = f"{where}: volume {volume.name!r}"
    if volume.config is not None or volume.secret is not None:
        texts, items = _volume_files(deployment, what, volume)
        files = set(texts) | {key for key, item in items.items() if not item.archive}
        if mount.sub_path and mount.sub_path not in files:
            raise DeployError(f"{what}: subPath {mount.sub_path!r} is not a key of its data")


def _volume_data(deployment: Deployment, what: str, volume: Volume) -> dict[str, str]:
    if volume.config is not None:
        ref, kind = volume.config, "configuration"
        found = deployment.configs.get(ref.name)
        data = None if found is None else (found.version, found.data)
    elif volume.secret is not None:
        ref, kind = volume.secret, "secret"
        secret = deployment.secrets.get(ref.name)
        data = None if secret is None else (secret.version, secret.data)
    else:
        raise AssertionError("not a config or secret volume")
    if data is None:
        raise DeployError(f"{what}: {kind} {ref.name!r} was not provided")
    version, values = data
    if ref.version and version != ref.version:
        raise DeployError(
            f"{what}: needs {kind} {ref.name!r} version {ref.version!r}, got {version!r}"
        )
    return values


def _volume_files(
    deployment: Deployment, what: str, volume: Volume
) -> tuple[dict[str, str], dict[str, ObjectItem]]:
    """A config or secret volume's files: (text files by key, object items by key)."""
    data = _volume_data(deployment, what, volume)
    if volume.config is None:
        return data, {}  # a secret's keys are all files of its own
    try:
        items = object_items(data)
    except ValueError as exc:
        raise DeployError(f"{what}: {exc}") from exc
    return {k: v for k, v in data.items() if not is_object_key(k)}, items


def check_host_paths(deployment: Deployment) -> None:
    """Check hostPath volumes whose type requires something to exist. Blocking (stat)."""
    for volume in deployment.app.volumes:
        host = volume.host_path
        if host is None or host.type in ("", "DirectoryOrCreate", "FileOrCreate"):
            continue
        what = f"app {deployment.app.name!r}: hostPath volume {volume.name!r} ({host.path})"
        try:
            mode = Path(host.path).stat().st_mode
        except OSError as exc:
            raise DeployError(f"{what}: {host.type} expected, {exc.strerror}") from exc
        wanted = {
            "Directory": stat.S_ISDIR,
            "File": stat.S_ISREG,
            "Socket": stat.S_ISSOCK,
            "CharDevice": stat.S_ISCHR,
            "BlockDevice": stat.S_ISBLK,
        }[host.type]
        if not wanted(mode):
            raise DeployError(f"{what}: is not a {host.type}")


def materialise(
    directory: Path, deployment: Deployment, service: Service, *, objects_dir: Path | None = None
) -> Path:
    """Create a fresh instance directory with its volumes; return the working directory.

    Object items of config volumes are copied from the object cache at `objects_dir`, where
    the engine put them before the deployment (agent.core.objects). Blocking (file system):
    run in a thread. Raises DeployError naming the volume at fault.
    """
    app = deployment.app
    where = f"app {app.name!r} service {service.name!r}"
    volumes = {volume.name: volume for volume in app.volumes}
    if directory.exists():
        remove_tree(directory)
    directory.mkdir(parents=True, mode=0o755)
    root = directory.resolve()
    mounts = sorted(
        service.volume_mounts,
        key=lambda m: len(container_path(m.mount_path, what="mountPath").parts),
    )
    for mount in mounts:
        volume = volumes[mount.name]
        what = f"{where}: volume {mount.name!r}"
        path = container_path(mount.mount_path, what=f"{what} mountPath")
        try:
            _mount(
                root,
                path,
                deployment=deployment,
                what=what,
                mount=mount,
                volume=volume,
                objects_dir=objects_dir,
            )
        except DeployError:
            raise
        except OSError as exc:
            raise DeployError(f"{what} at {mount.mount_path!r}: {exc}") from exc
    work = working_path(service)
    if work is None:
        return root
    try:
        return _make_dirs(root, work, mode=0o755, what=f"{where}: workingDir")
    except OSError as exc:
        raise DeployError(f"{where}: workingDir {service.working_dir!r}: {exc}") from exc


def _mount(
    root: Path,
    path: PurePosixPath,
    *,
    deployment: Deployment,
    what: str,
    mount: VolumeMount,
    volume: Volume,
    objects_dir: Path | None,
) -> None:
    if volume.host_path is not None:
        parent = _make_dirs(root, path.parent, mode=0o755, what=what)
        target = Path(volume.host_path.path)
        if mount.sub_path:
            target = target / container_path(mount.sub_path, what=f"{what} subPath")
        if volume.host_path.type == "DirectoryOrCreate":
            target.mkdir(parents=True, exist_ok=True)
        elif volume.host_path.type == "FileOrCreate" and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        link = parent / path.name
        if link.exists() or link.is_symlink():
            raise DeployError(f"{what}: {path} already exists (another mount put it there)")
        link.symlink_to(target)
        return
    if volume.empty_dir is not None:
        _make_dirs(root, path, mode=0o755, what=what)
        return
    texts, items = _volume_files(deployment, what, volume)
    secret = volume.secret is not None
    dir_mode = SECRET_DIR_MODE if secret else CONFIG_DIR_MODE
    file_mode = SECRET_FILE_MODE if secret else CONFIG_FILE_MODE
    cached = {key: _cached(objects_dir, item, what, key) for key, item in items.items()}
    if mount.sub_path:
        parent = _make_dirs(root, path.parent, mode=0o755, what=what)
        if mount.sub_path in texts:
            _write_file(parent / path.name, texts[mount.sub_path], file_mode, what=what)
        else:
            copy_file(cached[mount.sub_path], parent / path.name, what=what)
        return
    target = _make_dirs(root, path, mode=dir_mode, what=what)
    target.chmod(dir_mode)
    for key, value in sorted(texts.items()):
        _write_file(target / key, value, file_mode, what=what)
    for key, source in sorted(cached.items()):
        if items[key].archive:
            copy_tree(source, target, what=what)
        else:
            copy_file(source, target / key, what=what)


def _cached(objects_dir: Path | None, item: ObjectItem, what: str, key: str) -> Path:
    source = None if objects_dir is None else content_path(objects_dir, item)
    if source is None or not source.exists():
        raise DeployError(f"{what}: object item {key!r} is not in the object cache")
    return source


def _make_dirs(root: Path, relative: PurePosixPath, *, mode: int, what: str) -> Path:
    """mkdir -p `root/relative`, refusing any component that is not a real directory in root."""
    current = root
    for part in relative.parts:
        current = current / part
        try:
            info = current.lstat()
        except FileNotFoundError:
            current.mkdir(mode=mode)
            continue
        if stat.S_ISLNK(info.st_mode):
            raise DeployError(f"{what}: {current.relative_to(root)} is a link out of the instance")
        if not stat.S_ISDIR(info.st_mode):
            raise DeployError(f"{what}: {current.relative_to(root)} exists and is not a directory")
    resolved = current.resolve()
    if not resolved.is_relative_to(root):
        raise DeployError(f"{what}: {relative} resolves outside the instance directory")
    return current


def _write_file(path: Path, text: str, mode: int, *, what: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError as exc:
        raise DeployError(f"{what}: {path.name} already exists (two mounts overlap)") from exc
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(text.encode())


def remove_tree(path: Path) -> None:
    """Delete a directory tree without following symlinks (hostPath mounts stay untouched)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


def remove_unused_versions(layout: Layout, app: str, keep: Iterable[str]) -> None:
    """Delete the app's version directories other than `keep`. Blocking."""
    kept = set(keep)
    with contextlib.suppress(FileNotFoundError):
        for entry in layout.app_dir(app).iterdir():
            if entry.name not in kept and entry.is_dir() and not entry.is_symlink():
                remove_tree(entry)
