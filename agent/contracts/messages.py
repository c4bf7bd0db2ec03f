"""Payload models for every MQTT message of DESIGN §4, one class per topic channel.

Both sides build and parse payloads only through these classes (see `PAYLOADS`), so the agent and
the cloud cannot drift apart on a field name, and a malformed message is refused with a
`PayloadError` before any handler sees it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

from agent.contracts.resources import (
    Application,
    Configuration,
    Name,
    ResourceKind,
    Secret,
    Version,
)
from agent.contracts.topics import Channel
from agent.contracts.wire import JSONObject, WireModel

MAX_RESOURCES_PER_REQUEST = 64

ClientToken = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,64}$")]
DocVersion = Annotated[int, Field(ge=1)]
Timestamp = Annotated[float, Field(ge=0)]
ErrorCode = Annotated[int, Field(ge=400, le=599)]
CommandName = Literal["logs", "restart", "describe", "ping"]


class UpdateState(WireModel):
    """The sections an update writes: a section given as null is emptied, an absent one kept."""

    desired: JSONObject | None = None
    reported: JSONObject | None = None

    @model_validator(mode="after")
    def _names_a_section(self) -> UpdateState:
        if not self.model_fields_set:
            raise ValueError("state must name at least one section: 'desired' or 'reported'")
        return self

    @model_serializer(mode="wrap")
    def _keep_explicit_nulls(self, handler: SerializerFunctionWrapHandler) -> JSONObject:
        # `{"reported": null}` means "empty the section", so an explicit null must survive
        # serialization even though optional fields are otherwise dropped when unset.
        data: JSONObject = handler(self)
        for section in ("desired", "reported"):
            if section in self.model_fields_set and getattr(self, section) is None:
                data[section] = None
        return data

    def sections(self) -> dict[str, JSONObject | None]:
        """The sections this update writes, by name (`None` = empty it)."""
        return {
            name: getattr(self, name)
            for name in ("desired", "reported")
            if name in self.model_fields_set
        }


class ShadowUpdate(WireModel):
    """`shadow/update`: the agent reports (a patch of) its reported section."""

    state: UpdateState
    client_token: ClientToken | None = None
    version: DocVersion | None = None


class ShadowUpdateAccepted(WireModel):
    """`shadow/update/accepted`: the update as merged, with the new version and its metadata."""

    state: UpdateState
    metadata: JSONObject
    version: DocVersion
    timestamp: Timestamp
    client_token: ClientToken | None = None


class Rejected(WireModel):
    """`shadow/update/rejected` and `shadow/get/rejected`: why a request was refused."""

    code: ErrorCode
    message: str
    client_token: ClientToken | None = None


class ShadowDelta(WireModel):
    """`shadow/update/delta`: what desired holds that reported lacks, and the whole desired.

    Pushed after a report that leaves the delta non-empty, and after every change of the node's
    desired state even when the delta is empty: a removal (an app taken off the node) leaves no
    trace in the delta. `desired` is the whole desired section of document `version` (decision
    #124), so an agent adopts it without reading the document; without it (an older cloud) the
    push only says that the document moved on.
    """

    state: JSONObject
    metadata: JSONObject
    version: DocVersion
    timestamp: Timestamp
    desired: JSONObject | None = None


class ShadowGet(WireModel):
    """`shadow/get`: ask for the full document (sent after every (re)connect)."""

    client_token: ClientToken | None = None


class DocumentState(WireModel):
    """The three sections of a shadow document."""

    desired: JSONObject
    reported: JSONObject
    delta: JSONObject


class DocumentMetadata(WireModel):
    """Per-leaf write timestamps of the writable sections."""

    desired: JSONObject
    reported: JSONObject


class ShadowDocument(WireModel):
    """A full shadow document (DESIGN §5)."""

    state: DocumentState
    metadata: DocumentMetadata
    version: DocVersion
    timestamp: Timestamp


class ShadowGetAccepted(ShadowDocument):
    """`shadow/get/accepted`: the full document."""

    client_token: ClientToken | None = None


class ResourceRef(WireModel):
    """One resource to fetch, by kind, name and exact version."""

    kind: ResourceKind
    name: Name
    version: Annotated[Version, StringConstraints(min_length=1)]


class ResourcesGet(WireModel):
    """`resources/get`: fetch specs by (kind, name, version); they are immutable per version."""

    client_token: ClientToken
    resources: Annotated[
        list[ResourceRef], Field(min_length=1, max_length=MAX_RESOURCES_PER_REQUEST)
    ]


class _ValueBase(WireModel):
    name: Name
    version: Annotated[Version, StringConstraints(min_length=1)]

    @model_validator(mode="after")
    def _value_matches_ref(self) -> _ValueBase:
        value = getattr(self, "value")  # noqa: B009 - declared by each subclass with its own type
        if value.name != self.name or value.version != self.version:
            raise ValueError(
                f"value is {value.name!r} version {value.version!r}, "
                f"but the entry names {self.name!r} version {self.version!r}"
            )
        return self


class ApplicationValue(_ValueBase):
    """An application served by `resources/get/accepted`."""

    kind: Literal[ResourceKind.APPLICATION]
    value: Application


class ConfigurationValue(_ValueBase):
    """A configuration served by `resources/get/accepted`."""

    kind: Literal[ResourceKind.CONFIGURATION]
    value: Configuration


class SecretValue(_ValueBase):
    """A secret served by `resources/get/accepted`."""

    kind: Literal[ResourceKind.SECRET]
    value: Secret


ResourceValue = Annotated[
    ApplicationValue | ConfigurationValue | SecretValue, Field(discriminator="kind")
]


class ResourcesGetAccepted(WireModel):
    """`resources/get/accepted`: the requested specs."""

    client_token: ClientToken
    values: list[ResourceValue]


class ResourcesGetRejected(Rejected):
    """`resources/get/rejected`: why the fetch failed (404 for an unknown name or version)."""

    client_token: ClientToken


class CommandRequest(WireModel):
    """`cmd/request`: the cloud asks the agent to do something now (logs, restart, ...)."""

    client_token: ClientToken
    cmd: CommandName
    args: JSONObject = Field(default_factory=dict)


class CommandResponse(WireModel):
    """`cmd/response`: the outcome of one command, correlated by clientToken."""

    client_token: ClientToken
    ok: bool
    result: Any = None
    error: str | None = None

    @model_validator(mode="after")
    def _failure_says_why(self) -> CommandResponse:
        if not self.ok and not self.error:
            raise ValueError("a failed command response needs an error message")
        return self


PemText = Annotated[str, StringConstraints(min_length=1, max_length=16 * 1024)]


class CertRenew(WireModel):
    """`cert/renew`: a fresh CSR (PEM) from the node, whose key never leaves it (DESIGN §10)."""

    client_token: ClientToken
    csr: PemText


class CertRenewAccepted(WireModel):
    """`cert/renew/accepted`: the new client certificate and the CA that signed it (PEM)."""

    client_token: ClientToken
    certificate: PemText
    ca: PemText


class CertRenewRejected(Rejected):
    """`cert/renew/rejected`: why no certificate was issued."""

    client_token: ClientToken


class Presence(WireModel):
    """`presence` (retained): online with a timestamp; the MQTT will is `{"online": false}`."""

    online: bool
    timestamp: Timestamp | None = None
    version: Annotated[str, StringConstraints(max_length=64)] | None = None


PAYLOADS: dict[Channel, type[WireModel]] = {
    Channel.SHADOW_UPDATE: ShadowUpdate,
    Channel.SHADOW_UPDATE_ACCEPTED: ShadowUpdateAccepted,
    Channel.SHADOW_UPDATE_REJECTED: Rejected,
    Channel.SHADOW_UPDATE_DELTA: ShadowDelta,
    Channel.SHADOW_GET: ShadowGet,
    Channel.SHADOW_GET_ACCEPTED: ShadowGetAccepted,
    Channel.SHADOW_GET_REJECTED: Rejected,
    Channel.RESOURCES_GET: ResourcesGet,
    Channel.RESOURCES_GET_ACCEPTED: ResourcesGetAccepted,
    Channel.RESOURCES_GET_REJECTED: ResourcesGetRejected,
    Channel.CMD_REQUEST: CommandRequest,
    Channel.CMD_RESPONSE: CommandResponse,
    Channel.CERT_RENEW: CertRenew,
    Channel.CERT_RENEW_ACCEPTED: CertRenewAccepted,
    Channel.CERT_RENEW_REJECTED: CertRenewRejected,
    Channel.PRESENCE: Presence,
}
"""The payload model of each channel: `PAYLOADS[topic.channel].decode(payload)`."""
