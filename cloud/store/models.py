"""Tortoise models of the cloud store; one table per resource, JSON columns for free-form parts.

Rows are namespace-scoped (tenancy, DESIGN §6) and unique per (namespace, name). The index tables
record which apps a node receives and which configs/secrets an app uses, so that a change finds
what it affects without scanning every spec.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Namespace(Model):
    """A tenant."""

    name = fields.CharField(max_length=63, primary_key=True)
    create_time = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "baetyl_namespace"


class Token(Model):
    """An API token, stored as its SHA-256 only, bound to one namespace and one role."""

    id = fields.IntField(primary_key=True)
    namespace = fields.CharField(max_length=63, db_index=True)
    role = fields.CharField(max_length=16)
    digest = fields.CharField(max_length=64, unique=True)
    prefix = fields.CharField(max_length=16)
    description = fields.CharField(max_length=256, default="")
    create_time = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "baetyl_token"


class Node(Model):
    """An edge node, its desired/reported state lives in its Shadow row."""

    id = fields.IntField(primary_key=True)
    namespace = fields.CharField(max_length=63)
    name = fields.CharField(max_length=63)
    labels: fields.Field[dict[str, str]] = fields.JSONField(default=dict)
    description = fields.CharField(max_length=1024, default="")
    node_mode = fields.CharField(max_length=16, default="native")
    sync_mode = fields.CharField(max_length=16, default="cloud")
    attributes: fields.Field[dict[str, object]] = fields.JSONField(default=dict)
    create_time = fields.DatetimeField(auto_now_add=True)
    update_time = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "baetyl_node"
        unique_together = (("namespace", "name"),)


class Shadow(Model):
    """A the node shadow document (DESIGN §5), version guards writes (optimistic concurrency)."""

    id = fields.IntField(primary_key=True)
    namespace = fields.CharField(max_length=63)
    name = fields.CharField(max_length=63)
    desired: fields.Field[dict[str, object]] = fields.JSONField(default=dict)
    reported: fields.Field[dict[str, object]] = fields.JSONField(default=dict)
    desired_meta: fields.Field[dict[str, object]] = fields.JSONField(default=dict)
    reported_meta: fields.Field[dict[str, object]] = fields.JSONField(default=dict)
    version = fields.BigIntField(default=1)
    timestamp = fields.FloatField(default=0.0)
    report_time = fields.FloatField(null=True)
    online = fields.BooleanField(null=True)
    presence_time = fields.FloatField(null=True)

    class Meta:
        table = "baetyl_node_shadow"
        unique_together = (("namespace", "name"),)


class Application(Model):
    """An application, spec is the full wire JSON of agent.contracts.resources.Application."""

    id = fields.IntField(primary_key=True)
    namespace = fields.CharField(max_length=63)
    name = fields.CharField(max_length=63)
    version = fields.CharField(max_length=64)
    selector = fields.CharField(max_length=4096, default="")
    system = fields.BooleanField(default=False)
    labels: fields.Field[dict[str, str]] = fields.JSONField(default=dict)
    spec: fields.Field[dict[str, object]] = fields.JSONField()
    create_time = fields.DatetimeField(auto_now_add=True)
    update_time = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "baetyl_application"
        unique_together = (("namespace", "name"),)


class Configuration(Model):
    """A configuration: named text files."""

    id = fields.IntField(primary_key=True)
    namespace = fields.CharField(max_length=63)
    name = fields.CharField(max_length=63)
    version = fields.CharField(max_length=64)
    labels: fields.Field[dict[str, str]] = fields.JSONField(default=dict)
    description = fields.CharField(max_length=1024, default="")
    system = fields.BooleanField(default=False)
    data: fields.Field[dict[str, str]] = fields.JSONField(default=dict)
    create_time = fields.DatetimeField(auto_now_add=True)
    update_time = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "baetyl_configuration"
        unique_together = (("namespace", "name"),)


class Secret(Model):
    """A secret (generic, certificate or registry), sealed is its data encrypted with AES-GCM.

    info holds what may be shown without the data: a the certificate issuer, serial, fingerprint
    and validity, a the registry address and username.
    """

    id = fields.IntField(primary_key=True)
    namespace = fields.CharField(max_length=63)
    name = fields.CharField(max_length=63)
    version = fields.CharField(max_length=64)
    secret_type = fields.CharField(max_length=16, db_index=True)
    labels: fields.Field[dict[str, str]] = fields.JSONField(default=dict)
    description = fields.CharField(max_length=1024, default="")
    system = fields.BooleanField(default=False)
    sealed = fields.TextField()
    info: fields.Field[dict[str, object]] = fields.JSONField(default=dict)
    create_time = fields.DatetimeField(auto_now_add=True)
    update_time = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "baetyl_secret"
        unique_together = (("namespace", "name"),)


class AppNode(Model):
    """Index: node node receives app app (in desired.apps or desired.sysapps)."""

    id = fields.IntField(primary_key=True)
    namespace = fields.CharField(max_length=63)
    app = fields.CharField(max_length=63)
    node = fields.CharField(max_length=63)

    class Meta:
        table = "baetyl_index_application_node"
        unique_together = (("namespace", "app", "node"),)
        indexes = (("namespace", "node"),)


class AppResource(Model):
    """Index: app app mounts configuration or secret name (kind)."""

    id = fields.IntField(primary_key=True)
    namespace = fields.CharField(max_length=63)
    app = fields.CharField(max_length=63)
    kind = fields.CharField(max_length=16)
    name = fields.CharField(max_length=63)

    class Meta:
        table = "baetyl_index_application_resource"
        unique_together = (("namespace", "app", "kind", "name"),)
        indexes = (("namespace", "kind", "name"),)


class Property(Model):
    """A global cloud property (name → string), as Baetyl GET /properties/{name}."""

    name = fields.CharField(max_length=128, primary_key=True)
    value = fields.TextField()
    create_time = fields.DatetimeField(auto_now_add=True)
    update_time = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "baetyl_property"


class Quota(Model):
    """A per-namespace limit that overrides the configured default (0 = unlimited)."""

    id = fields.IntField(primary_key=True)
    namespace = fields.CharField(max_length=63)
    name = fields.CharField(max_length=32)
    quota = fields.IntField()

    class Meta:
        table = "baetyl_quota"
        unique_together = (("namespace", "name"),)


class DeniedNode(Model):
    """A deleted node whose certificate the broker must refuse (ACL topic deny), DESIGN 10.

    Its client certificate may still be valid, so deletion alone would leave it able to connect
    and publish. A node created again under the same name is removed from this list.
    """

    id = fields.IntField(primary_key=True)
    namespace = fields.CharField(max_length=63)
    name = fields.CharField(max_length=63)
    create_time = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "baetyl_denied_node"
        unique_together = (("namespace", "name"),)


class NodeCertificate(Model):
    """A client certificate the cloud signed for a node (activation or renewal), DESIGN §10.

    Kept so an operator can tell which certificates exist for a node and which of them were cut
    off: deleting the node stamps `revoked_at` on its rows (the broker refuses the nid through the
    deny list, decision #38, because Mosquitto's ACL setup has no CRL).
    """

    id = fields.IntField(primary_key=True)
    namespace = fields.CharField(max_length=63)
    name = fields.CharField(max_length=63)
    serial = fields.CharField(max_length=64, unique=True)
    not_before = fields.DatetimeField()
    not_after = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    create_time = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "baetyl_node_certificate"
        indexes = (("namespace", "name"),)


class ConsumedInstallToken(Model):
    """An install token that already activated a node: tokens are single use (DESIGN §10).

    Keyed by the token's random id; `expires_at` is the token's own expiry, after which the row
    is useless (the token is refused as expired anyway) and may be purged.
    """

    jti = fields.CharField(max_length=64, primary_key=True)
    namespace = fields.CharField(max_length=63)
    name = fields.CharField(max_length=63)
    expires_at = fields.DatetimeField()
    consumed_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "baetyl_install_token_consumed"
