"""The REST view of an application and its translation to and from the stored spec (pure).

Baetyl's API lets users write `registries: [{name}]` and `certificate: {name}` volumes; nodes only
know secret volumes. On the way in they become secret volumes; on the way out, secret volumes of
type certificate or (unmounted) registry are turned back, by the secret's `secret-type`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, model_validator

from agent.contracts.resources import (
    Application,
    Name,
    ObjectRef,
    Volume,
)
from agent.contracts.wire import WireModel
from cloud.errors import Invalid


class VolumeView(Volume):
    """A volume as the REST API shows it: also `certificate: {name, version}`."""

    certificate: ObjectRef | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> VolumeView:
        sources = [self.config, self.secret, self.host_path, self.empty_dir, self.certificate]
        if sum(source is not None for source in sources) != 1:
            raise ValueError(
                f"volume {self.name!r} needs exactly one of config, secret, certificate, "
                "hostPath or emptyDir"
            )
        return self


class RegistryRef(WireModel):
    """A registry credential an app pulls images with (address and username are informative)."""

    name: Name
    address: Annotated[str, Field(max_length=512)] = ""
    username: Annotated[str, Field(max_length=256)] = ""


class ApplicationView(Application):
    """An application as the REST API reads and writes it (Baetyl's ApplicationView)."""

    volumes: list[VolumeView] = Field(default_factory=list)  # type: ignore[assignment]
    registries: list[RegistryRef] = Field(default_factory=list)


@dataclass(frozen=True)
class Resolved:
    """Current versions of what an app may reference, and each secret's type."""

    configs: Mapping[str, str]
    secrets: Mapping[str, tuple[str, str]]  # name -> (version, secret-type)


def referenced(view: ApplicationView) -> tuple[set[str], set[str]]:
    """(config names, secret names incl. certificates and registries) that `view` references."""
    configs = {v.config.name for v in view.volumes if v.config is not None}
    configs |= {
        s.function_config.name
        for s in view.services
        if s.function_config is not None and s.function_config.name
    }
    configs |= {
        s.program_config.name
        for s in [*view.init_services, *view.services]
        if s.program_config is not None
    }
    secrets = {v.secret.name for v in view.volumes if v.secret is not None}
    secrets |= {v.certificate.name for v in view.volumes if v.certificate is not None}
    secrets |= {r.name for r in view.registries}
    return configs, secrets


def to_spec(view: ApplicationView, resolved: Resolved) -> Application:
    """The stored spec of `view`, with every reference checked and given its current version."""
    volumes: list[Volume] = []
    for volume in view.volumes:
        data = volume.model_dump(by_alias=False, exclude={"certificate"})
        if volume.config is not None:
            data["config"] = ObjectRef(
                name=volume.config.name,
                version=_config_version(volume.name, volume.config, resolved),
            )
        elif volume.secret is not None:
            data["secret"] = _secret_ref(volume.name, volume.secret.name, "config", resolved)
        elif volume.certificate is not None:
            data["secret"] = _secret_ref(
                volume.name, volume.certificate.name, "certificate", resolved
            )
        volumes.append(Volume.model_validate(data))
    declared = {v.name for v in volumes}
    for registry in view.registries:
        if registry.name in declared:
            raise Invalid(
                f"registry {registry.name!r} needs a volume of that name, which the app declares "
                "already (ErrAppNameConflict)"
            )
        declared.add(registry.name)
        volumes.append(
            Volume(
                name=registry.name,
                secret=_secret_ref(registry.name, registry.name, "registry", resolved),
            )
        )
    data = view.model_dump(by_alias=False, exclude={"volumes", "registries"})
    data["volumes"] = volumes
    for service in [*data["init_services"], *data["services"]]:
        for field, what in (
            ("function_config", "functionConfig"),
            ("program_config", "programConfig"),
        ):
            ref = service.get(field)
            if ref is None or not ref.get("name"):
                continue
            version = resolved.configs.get(ref["name"])
            if version is None:
                raise Invalid(
                    f"service {service['name']!r}: {what} names configuration "
                    f"{ref['name']!r}, which does not exist"
                )
            ref["version"] = version
    return Application.model_validate(data)


def to_view(spec: Application, secret_types: Mapping[str, str]) -> ApplicationView:
    """The REST view of a stored spec."""
    mounted = {m.name for s in [*spec.services, *spec.init_services] for m in s.volume_mounts}
    volumes: list[VolumeView] = []
    registries: list[RegistryRef] = []
    for volume in spec.volumes:
        data = volume.model_dump(by_alias=False)
        kind = secret_types.get(volume.secret.name) if volume.secret is not None else None
        if kind == "registry" and volume.name not in mounted and volume.secret is not None:
            registries.append(RegistryRef(name=volume.secret.name))
            continue
        if kind == "certificate":
            data["certificate"], data["secret"] = data["secret"], None
        volumes.append(VolumeView.model_validate(data))
    data = spec.model_dump(by_alias=False, exclude={"volumes"})
    data.update(volumes=volumes, registries=registries)
    return ApplicationView.model_validate(data)


def resource_refs(spec: Application) -> list[tuple[str, str]]:
    """(kind, name) of every config and secret the spec mounts, for the app → resource index."""
    return [(kind.value, ref.name) for kind, ref in spec.references()]


def _config_version(volume: str, ref: ObjectRef, resolved: Resolved) -> str:
    version = resolved.configs.get(ref.name)
    if version is None:
        raise Invalid(
            f"volume {volume!r} references configuration {ref.name!r}, which does not exist"
        )
    return version


def _secret_ref(volume: str, name: str, expected: str, resolved: Resolved) -> ObjectRef:
    found = resolved.secrets.get(name)
    what = {"config": "secret", "certificate": "certificate", "registry": "registry"}[expected]
    if found is None or found[1] != expected:
        raise Invalid(f"volume {volume!r} references {what} {name!r}, which does not exist")
    return ObjectRef(name=name, version=found[0])
