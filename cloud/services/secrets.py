"""Secret use cases for every `secret-type` (config, certificate, registry), and generic secrets.

All three are Secret rows: the data is sealed with AES-GCM bound to `namespace/name`, and `info`
keeps what may be shown without opening it. A secret's version changes exactly when its data
changes; it is derived from the new ciphertext, never from the plaintext, because a published
digest of a short password could be checked against guesses offline.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from agent.contracts.resources import SECRET_DATA_MAX_BYTES, SECRET_TYPE_LABEL, ResourceKind, Secret
from cloud.errors import Invalid, NotFound
from cloud.services import desired
from cloud.services import resource_rules as rules
from cloud.services.context import Caller, CloudContext
from cloud.services.resource_rules import AppUse, DataTooLarge, Window
from cloud.services.tokens import require_admin
from cloud.services.versions import content_version
from cloud.store import namespaces as namespace_store
from cloud.store import secrets as store
from cloud.store.db import transaction
from cloud.store.desired import DesiredChanges
from cloud.store.secrets import SecretFacts, StoredSecret

GENERIC = "config"  # the secret-type of plain secrets, as in Baetyl
KIND_NAMES = {"config": "secret", "certificate": "certificate", "registry": "registry"}


SecretMeta = SecretFacts  # what may be shown of any secret: everything but its data


@dataclass(frozen=True)
class SecretDraft:
    """A secret as a write wants it: plaintext `data` to seal and the `info` shown without it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    data: Mapping[str, str] = field(default_factory=dict, repr=False)
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SecretPage:
    """Secrets of one list page (never with data) and how many matched in all."""

    total: int
    items: list[SecretMeta]


Reviser = Callable[[SecretMeta, dict[str, str]], SecretDraft]


@dataclass(frozen=True)
class SecretShown:
    """A secret as a route shows it: its meta, and its plaintext data only where asked for."""

    meta: SecretMeta
    data: dict[str, str] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SecretType:
    """The use cases of one `secret-type`; registries and certificates each bind their own."""

    secret_type: str

    @property
    def what(self) -> str:
        """The kind's name in messages ("secret", "certificate", "registry")."""
        return KIND_NAMES[self.secret_type]

    async def create(self, ctx: CloudContext, caller: Caller, draft: SecretDraft) -> SecretMeta:
        """Seal and store a new secret of this type (nothing references it yet)."""
        require_admin(caller)
        rules.refuse_reserved_name(draft.name, self.what)
        namespace = caller.namespace
        labels = _checked(draft, self.secret_type, namespace)
        sealed = ctx.secrets.seal(dict(draft.data), bound_to=_binding(namespace, draft.name))
        row = StoredSecret(
            namespace=namespace,
            name=draft.name,
            version=content_version({"sealed": sealed}),
            secret_type=self.secret_type,
            labels=labels,
            description=draft.description,
            system=False,
            info=dict(draft.info),
            sealed=sealed,
        )
        async with transaction():
            await namespace_store.lock(namespace)
            return _meta(await store.insert(row))

    async def opened(
        self, ctx: CloudContext, caller: Caller, name: str
    ) -> tuple[SecretMeta, dict[str, str]]:
        """A secret and its opened data (callers decide what of it to show)."""
        row = await _find(caller.namespace, self.secret_type, name)
        return _meta(row), _open(ctx, row)

    async def meta(self, caller: Caller, name: str) -> SecretMeta:
        """A secret without opening its data."""
        return _meta(await _find(caller.namespace, self.secret_type, name))

    async def listing(self, caller: Caller, window: Window) -> SecretPage:
        """A page of the namespace's secrets of this type, newest first, without data."""
        index = await store.label_index(caller.namespace, self.secret_type, name=window.name)
        total, ids = rules.pick(index, window)
        return SecretPage(total, [_meta(row) for row in await store.by_ids(ids)])

    async def replace_with(
        self, ctx: CloudContext, caller: Caller, name: str, revise: Reviser
    ) -> SecretMeta:
        """Replace a secret with what `revise(current, current_data)` makes of it.

        `revise` sees the current data so that a request may leave parts out (a registry
        password, a certificate key) and keep them. A new version, given only when the data
        changes, reaches every app that mounts the secret in the same transaction.
        """
        require_admin(caller)
        namespace = caller.namespace
        changed_nodes: DesiredChanges = {}
        async with transaction():
            await namespace_store.lock(namespace)
            current = await _find(namespace, self.secret_type, name)
            old_data = _open(ctx, current)
            draft = revise(_meta(current), old_data)
            if draft.name != name:
                raise Invalid(f"name: the body names {self.what} {draft.name!r}, the path {name!r}")
            labels = _checked(draft, self.secret_type, namespace)
            if current.system and labels != current.labels:
                raise Invalid("labels: the labels of a system secret cannot be changed")
            data_changed = dict(draft.data) != old_data
            if not data_changed and (labels, draft.description, dict(draft.info)) == (
                current.labels,
                current.description,
                current.info,
            ):
                return _meta(current)
            sealed = current.sealed
            version = current.version
            if data_changed:
                sealed = ctx.secrets.seal(dict(draft.data), bound_to=_binding(namespace, name))
                version = content_version({"sealed": sealed})
            saved = await store.update(
                StoredSecret(
                    namespace=namespace,
                    name=name,
                    version=version,
                    secret_type=self.secret_type,
                    labels=labels,
                    description=draft.description,
                    system=current.system,
                    info=dict(draft.info),
                    sealed=sealed,
                )
            )
            if saved is None:  # pragma: no cover - the namespace lock keeps the row
                raise NotFound(self.what, name, namespace)
            if data_changed:
                changed_nodes = await desired.propagate_resource(
                    namespace, ResourceKind.SECRET, name, version
                )
        await ctx.desired_changed(changed_nodes)
        return _meta(saved)

    async def delete(self, caller: Caller, name: str) -> None:
        """Remove a secret of this type that no app mounts (403 otherwise)."""
        require_admin(caller)
        rules.refuse_reserved_name(name, self.what)
        namespace = caller.namespace
        async with transaction():
            await namespace_store.lock(namespace)
            await _find(namespace, self.secret_type, name)
            await rules.refuse_if_used(namespace, ResourceKind.SECRET, name, self.what)
            await store.delete(namespace, name, self.secret_type)

    async def users(self, caller: Caller, name: str) -> list[AppUse]:
        """The apps that mount the secret."""
        await _find(caller.namespace, self.secret_type, name)
        return await rules.apps_using(caller.namespace, ResourceKind.SECRET, name)


# Generic secrets (`/v1/secrets`): the data is shown by `get` alone ------------------------------

GENERIC_SECRETS = SecretType(GENERIC)
listing = GENERIC_SECRETS.listing
delete = GENERIC_SECRETS.delete
users = GENERIC_SECRETS.users


async def create(ctx: CloudContext, caller: Caller, draft: SecretDraft) -> SecretShown:
    """Store a new generic secret; its data is not echoed back."""
    return SecretShown(await GENERIC_SECRETS.create(ctx, caller, draft))


async def get(ctx: CloudContext, caller: Caller, name: str) -> SecretShown:
    """A generic secret with its plaintext data."""
    return SecretShown(*await GENERIC_SECRETS.opened(ctx, caller, name))


async def replace(ctx: CloudContext, caller: Caller, name: str, draft: SecretDraft) -> SecretShown:
    """Replace a generic secret's labels, description and data."""
    meta = await GENERIC_SECRETS.replace_with(ctx, caller, name, lambda _meta, _data: draft)
    return SecretShown(meta)


def _checked(draft: SecretDraft, secret_type: str, namespace: str) -> dict[str, str]:
    """Validate a draft as the wire Secret it becomes; returns its labels with `secret-type`."""
    given = dict(draft.labels)
    if given.get(SECRET_TYPE_LABEL, secret_type) != secret_type:
        raise Invalid(
            f"labels: {SECRET_TYPE_LABEL} is set by the cloud; a {KIND_NAMES[secret_type]} "
            f"has {SECRET_TYPE_LABEL}={secret_type}, not {given[SECRET_TYPE_LABEL]!r}"
        )
    labels = {**given, SECRET_TYPE_LABEL: secret_type}
    data = dict(draft.data)
    size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    if size > SECRET_DATA_MAX_BYTES:
        raise DataTooLarge(
            f"data: the {KIND_NAMES[secret_type]} data is {size} bytes; "
            f"at most {SECRET_DATA_MAX_BYTES} bytes (64 KiB as compact JSON) are allowed"
        )
    try:
        Secret.model_validate(
            {
                "name": draft.name,
                "namespace": namespace,
                "labels": labels,
                "description": draft.description,
                "data": data,
            }
        )
    except ValidationError as exc:
        raise rules.invalid_from(exc, KIND_NAMES[secret_type]) from exc
    return labels


async def _find(namespace: str, secret_type: str, name: str) -> StoredSecret:
    row = await store.get(namespace, name)
    if row is None or row.secret_type != secret_type:
        raise NotFound(KIND_NAMES[secret_type], name, namespace)
    return row


def _open(ctx: CloudContext, row: StoredSecret) -> dict[str, str]:
    if row.sealed is None:  # pragma: no cover - `store.get` always reads the sealed column
        raise RuntimeError(f"secret {row.name!r} was read without its data")
    return ctx.secrets.open(row.sealed, bound_to=_binding(row.namespace, row.name))


def _binding(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def _meta(row: StoredSecret) -> SecretMeta:
    # Every field of SecretMeta is a field of the stored row; only the sealed data stays behind.
    return SecretMeta(**{f.name: getattr(row, f.name) for f in dataclasses.fields(SecretMeta)})
