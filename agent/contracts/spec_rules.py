"""Rules on an application spec that need nothing but the spec (no node, no configuration data).

The cloud checks them when an app is created or updated (a 400 naming the service and field), and
the agent checks them again before it deploys a spec from its local store. They are here, not in
the pydantic model, so that a spec stored before a rule existed can still be read (and removed).
Every path of a service (mountPath, subPath, workingDir) is taken inside the service's own
directory: `/etc/conf` and `etc/conf` are the same place, `..` is never allowed.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from agent.contracts.resources import Application, Service, Volume

_UNUSABLE_VERSIONS = frozenset({".", ".."})
NAME_MAX = 255
"""Bytes of one path component on Linux file systems: a longer one fails on every node."""
MAX_PATH_BYTES = 1024
"""Bytes of a mountPath, subPath or workingDir: it lands under the instance directory, and the
whole must stay within PATH_MAX (4096)."""
MAX_HOST_PATH_BYTES = 4095


class SpecError(ValueError):
    """A spec breaks one or more rules; `problems` names each (service and field)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def container_path(path: str, *, what: str) -> PurePosixPath:
    """`path` (absolute or relative) as a relative path.

    SpecError if empty, `..`, NUL, or too long for the node's file system.
    """
    _check_path_text(path, what=what, limit=MAX_PATH_BYTES)
    parts = [part for part in PurePosixPath(path).parts if part not in ("/", ".")]
    if ".." in parts:
        raise SpecError([f"{what} {path!r} must not contain '..'"])
    if not parts:
        raise SpecError([f"{what} {path!r} must name a place below the service's directory"])
    return PurePosixPath(*parts)


def _check_path_text(path: str, *, what: str, limit: int) -> None:
    """SpecError if `path` holds a NUL, is longer than `limit` bytes or has a too long component."""
    if "\x00" in path:
        raise SpecError([f"{what} {path[:64]!r} contains a NUL character"])
    size = len(path.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise SpecError([f"{what} is {size} bytes long; at most {limit}"])
    for part in path.split("/"):
        if len(part.encode("utf-8", "surrogatepass")) > NAME_MAX:
            raise SpecError([f"{what}: the name {part[:32]!r}... is longer than {NAME_MAX} bytes"])


def working_path(service: Service) -> PurePosixPath | None:
    """The service's workingDir inside its directory; None for the directory itself.

    SpecError for `..` or NUL. `""`, `.` and `/` all mean the service's directory.
    """
    text = service.working_dir
    if "\x00" not in text and all(p in ("/", ".") for p in PurePosixPath(text).parts):
        return None
    return container_path(text, what="workingDir")


def problems(app: Application) -> list[str]:
    """Every rule the spec breaks, each naming app, service and field; empty when it is fine."""
    found: list[str] = []
    if app.version in _UNUSABLE_VERSIONS:
        found.append(f"app {app.name!r}: version {app.version!r} cannot name a directory")
    volumes = {volume.name: volume for volume in app.volumes}
    for index, volume in enumerate(app.volumes):
        if volume.host_path is not None:
            what = f"app {app.name!r} volumes[{index}] {volume.name!r}: hostPath.path"
            try:
                _check_path_text(volume.host_path.path, what=what, limit=MAX_HOST_PATH_BYTES)
            except SpecError as exc:
                found.extend(exc.problems)
    for field, services in (("initServices", app.init_services), ("services", app.services)):
        for service in services:
            where = f"app {app.name!r} {field} {service.name!r}"
            found.extend(_service_problems(app, service, volumes, where=where))
    return found


def check(app: Application) -> None:
    """SpecError listing every problem of `problems(app)`, if any."""
    found = problems(app)
    if found:
        raise SpecError(found)


def _service_problems(
    app: Application, service: Service, volumes: dict[str, Volume], *, where: str
) -> list[str]:
    found: list[str] = []
    native = app.mode == "native" and app.type == "container"
    if native and service.command and not service.command[0]:
        found.append(f"{where}: command[0] must not be empty")
    # A process cannot get a NUL in its arguments or environment: the spawn would always fail.
    texts = [
        *(f"command[{i}]" for i, part in enumerate(service.command) if "\x00" in part),
        *(f"args[{i}]" for i, part in enumerate(service.args) if "\x00" in part),
        *(f"env[{i}].value" for i, var in enumerate(service.env) if "\x00" in var.value),
    ]
    for name, probe in (
        ("livenessProbe", service.liveness_probe),
        ("readinessProbe", service.readiness_probe),
    ):
        if probe is not None and probe.exec is not None:
            texts.extend(
                f"{name}.exec.command[{i}]"
                for i, part in enumerate(probe.exec.command)
                if "\x00" in part
            )
    found.extend(f"{where}: {field} contains a NUL character" for field in texts)
    # Mount paths that other paths must not lie in: hostPath (a link to the host), and the
    # config/secret mounts, whose files come from data the cloud may change at any time.
    closed: list[tuple[PurePosixPath, str, bool]] = []  # (path, described, is a directory)
    seen: dict[PurePosixPath, str] = {}
    for index, mount in enumerate(service.volume_mounts):
        field = f"{where}: volumeMounts[{index}]"
        try:
            path = container_path(mount.mount_path, what=f"{field}.mountPath")
        except SpecError as exc:
            found.extend(exc.problems)
            continue
        if path in seen:
            found.append(
                f"{field}.mountPath {mount.mount_path!r}: volume {seen[path]!r} is mounted "
                "there already"
            )
            continue
        seen[path] = mount.name
        volume = volumes.get(mount.name)
        if mount.sub_path:
            try:
                sub = container_path(mount.sub_path, what=f"{field}.subPath")
            except SpecError as exc:
                found.extend(exc.problems)
            else:
                data_volume = volume is not None and (volume.config or volume.secret) is not None
                if data_volume and len(sub.parts) != 1:
                    found.append(
                        f"{field}.subPath {mount.sub_path!r} must be one key of the volume's data"
                    )
        if volume is not None and volume.empty_dir is None:
            is_dir = volume.host_path is None and not mount.sub_path
            closed.append((path, f"volume {mount.name!r} at {str(path)!r}", is_dir))
    for path, name in seen.items():
        for outer, described, _ in closed:
            if path != outer and path.is_relative_to(outer):
                found.append(
                    f"{where}: volumeMounts: volume {name!r} at {str(path)!r} lies inside "
                    f"{described}; only an emptyDir may hold other mounts"
                )
    try:
        work = working_path(service)
    except SpecError as exc:
        found.extend(f"{where}: {problem}" for problem in exc.problems)
        work = None
    if work is not None:
        # A config or secret directory may be the working directory; a file or a host path not.
        for outer, described, is_dir in closed:
            if not is_dir and work.is_relative_to(outer):
                found.append(
                    f"{where}: workingDir {service.working_dir!r} lies inside {described}, "
                    "which is not a directory of the service's own"
                )
    return found
