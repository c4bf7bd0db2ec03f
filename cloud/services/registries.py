"""Registry credential use cases: address, username and password, stored as a `registry` secret.

Nodes need all three to pull images, so all three are sealed; address and username are also
kept in `info` to be shown, the password never is. `refresh` swaps the password alone, which
gives the registry a new version that reaches every app using it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import replace as replace_fields

from cloud.errors import Invalid
from cloud.services.context import Caller, CloudContext
from cloud.services.secrets import SecretDraft, SecretMeta, SecretType

REGISTRY = "registry"
ADDRESS, USERNAME, PASSWORD = "address", "username", "password"  # the data keys
REGISTRIES = SecretType(REGISTRY)
listing = REGISTRIES.listing
delete = REGISTRIES.delete
users = REGISTRIES.users


@dataclass(frozen=True)
class RegistryDraft:
    """Registry credentials as a request gives them; `password` None means "keep the stored one"."""

    name: str
    address: str
    username: str
    password: str | None = field(default=None, repr=False)
    labels: dict[str, str] = field(default_factory=dict)
    description: str = ""


async def create(ctx: CloudContext, caller: Caller, draft: RegistryDraft) -> SecretMeta:
    """Store new registry credentials (address, username and password are all required)."""
    if not draft.password:
        raise Invalid("password: a registry needs a password")
    return await REGISTRIES.create(ctx, caller, _sealable(draft, draft.password))


async def replace(ctx: CloudContext, caller: Caller, name: str, draft: RegistryDraft) -> SecretMeta:
    """Replace a registry's address, username, labels and description (and password if given).

    An empty address or username keeps the stored one: Baetyl's `PUT` changes only the
    description, and its clients send the other fields empty."""

    def revise(_current: SecretMeta, data: dict[str, str]) -> SecretDraft:
        kept = replace_fields(
            draft,
            address=draft.address or data.get(ADDRESS, ""),
            username=draft.username or data.get(USERNAME, ""),
        )
        return _sealable(kept, draft.password or data.get(PASSWORD, ""))

    return await REGISTRIES.replace_with(ctx, caller, name, revise)


async def refresh(ctx: CloudContext, caller: Caller, name: str, password: str) -> SecretMeta:
    """Set a new password; apps using the registry get a new version."""
    if not password:
        raise Invalid("password: the new password must not be empty")

    def revise(current: SecretMeta, data: dict[str, str]) -> SecretDraft:
        return SecretDraft(
            name=current.name,
            labels=current.labels,
            description=current.description,
            data={**data, PASSWORD: password},
            info=current.info,
        )

    return await REGISTRIES.replace_with(ctx, caller, name, revise)


async def get(ctx: CloudContext, caller: Caller, name: str) -> SecretMeta:
    """A registry's shown facts (address and username in `info`); the data is never opened."""
    del ctx  # the password stays sealed: nothing here opens it
    return await REGISTRIES.meta(caller, name)


def _sealable(draft: RegistryDraft, password: str) -> SecretDraft:
    if not draft.address.strip():
        raise Invalid("address: a registry needs an address (such as registry.example.com:5000)")
    if not draft.username:
        raise Invalid("username: a registry needs a username")
    return SecretDraft(
        name=draft.name,
        labels=draft.labels,
        description=draft.description,
        data={ADDRESS: draft.address, USERNAME: draft.username, PASSWORD: password},
        info={ADDRESS: draft.address, USERNAME: draft.username},
    )
