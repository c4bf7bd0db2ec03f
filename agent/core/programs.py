"""Native programs the Baetyl way: a service runs the program a configuration holds.

A native service may name `programConfig` (a configuration) instead of a `command`. Baetyl
packs such a program per platform: a configuration labelled `baetyl-config-type:
baetyl-program` with one object item (a zip) per platform, the key naming the platform
(`linux-amd64`, `linux-arm64-v8`, `linux-arm-v7`), and a `program.yml` saying which file to run
(`entry: bin/server`). `runnable` makes such a service a plain one, a pure function of the
deployment and the object cache, as agent.core.functions does for function services:

- the configuration, keeping only the items of this node's platform, is mounted read-only at
  `/var/lib/baetyl/bin` in each instance (Baetyl's path);
- the command is `$(BAETYL_INSTANCE_DIR)/var/lib/baetyl/bin/<entry>`, with the service's args;
  an entry ending in `.py` runs with the agent's Python, so a script needs no executable bit.

`program.yml` is read from the configuration's text items, else from its unpacked archives in
the object cache (the engine prepared them before the deployment). A service that gives a
`command` keeps it; the program is still mounted. Blocking (it reads the cache): run in a thread.
"""

from __future__ import annotations

import platform as host
from pathlib import Path, PurePosixPath
from typing import Final

import yaml

from agent.contracts.resources import Configuration, ObjectRef, Service, Volume, VolumeMount
from agent.core.backend import DeployError, Deployment
from agent.core.node import go_arch, go_variant
from agent.core.objects import content_path

PROGRAM_MOUNT: Final = "/var/lib/baetyl/bin"
PROGRAM_FILE: Final = "program.yml"
INSTANCE_VARIABLE: Final = "BAETYL_INSTANCE_DIR"


def node_platform(machine: str | None = None) -> str:
    """This node's platform as Baetyl names it: `linux-amd64`, `linux-arm64-v8`, `linux-arm-v7`."""
    machine = machine or host.machine()
    variant = go_variant(machine)
    arch = go_arch(machine) + (f"-{variant}" if variant else "")
    return f"{host.system().lower() or 'linux'}-{arch}"


def runnable(
    deployment: Deployment, *, interpreter: str, platform: str, objects_dir: Path | None
) -> Deployment:
    """`deployment` with every `programConfig` service made runnable (see the module)."""
    app = deployment.app
    if not any(s.program_config is not None for s in [*app.init_services, *app.services]):
        return deployment
    configs = dict(deployment.configs)
    volumes = list(app.volumes)
    taken = {volume.name for volume in volumes}

    def expand(service: Service) -> Service:
        ref = service.program_config
        if ref is None:
            return service
        where = f"app {app.name} service {service.name}"
        config = configs.get(ref.name)
        if config is None:
            raise DeployError(f"{where}: program configuration {ref.name} was not delivered")
        config = config.for_platform(platform)
        configs[ref.name] = config
        volume = f"program-{service.name}"
        if volume in taken:
            raise DeployError(f"{where}: volume name {volume} is reserved for its program")
        taken.add(volume)
        volumes.append(Volume(name=volume, config=ObjectRef(name=ref.name)))
        mounts = [
            *service.volume_mounts,
            VolumeMount(name=volume, mount_path=PROGRAM_MOUNT, read_only=True),
        ]
        if service.command:
            return service.model_copy(update={"volume_mounts": mounts})
        entry = _entry(config, objects_dir, where=where, platform=platform)
        path = f"$({INSTANCE_VARIABLE}){PROGRAM_MOUNT}/{entry}"
        command = [interpreter, path] if entry.endswith(".py") else [path]
        return service.model_copy(update={"command": command, "volume_mounts": mounts})

    expanded = app.model_copy(
        update={
            "init_services": [expand(s) for s in app.init_services],
            "services": [expand(s) for s in app.services],
            "volumes": volumes,
        }
    )
    return Deployment(expanded, configs, deployment.secrets)


def _entry(config: Configuration, objects_dir: Path | None, *, where: str, platform: str) -> str:
    text = config.text_items().get(PROGRAM_FILE)
    if text is None and objects_dir is not None:
        for item in config.object_items().values():
            candidate = content_path(objects_dir, item) / PROGRAM_FILE
            if item.archive and candidate.is_file():
                text = candidate.read_text(encoding="utf-8", errors="replace")
                break
    if text is None:
        raise DeployError(
            f"{where}: program configuration {config.name} has no {PROGRAM_FILE} for platform "
            f"{platform} (a text item, or a file at the root of its archive, saying 'entry: "
            "path/to/program')"
        )
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeployError(f"{where}: {PROGRAM_FILE} is not YAML: {exc}") from exc
    entry = loaded.get("entry") if isinstance(loaded, dict) else None
    if not isinstance(entry, str) or not entry.strip():
        raise DeployError(f"{where}: {PROGRAM_FILE} needs 'entry: path/to/program'")
    path = PurePosixPath(entry.strip())
    if path.is_absolute() or ".." in path.parts:
        raise DeployError(f"{where}: {PROGRAM_FILE} entry {entry!r} must stay inside the program")
    return path.as_posix()
