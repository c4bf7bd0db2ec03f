from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AppNode',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('namespace', fields.CharField(max_length=63)),
                ('app', fields.CharField(max_length=63)),
                ('node', fields.CharField(max_length=63)),
            ],
            options={'table': 'baetyl_index_application_node', 'app': 'baetyl', 'unique_together': (('namespace', 'app', 'node'),), 'indexes': [Index(fields=['namespace', 'node'])], 'pk_attr': 'id', 'table_description': 'Index: node node receives app app (in desired.apps or desired.sysapps).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AppResource',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('namespace', fields.CharField(max_length=63)),
                ('app', fields.CharField(max_length=63)),
                ('kind', fields.CharField(max_length=16)),
                ('name', fields.CharField(max_length=63)),
            ],
            options={'table': 'baetyl_index_application_resource', 'app': 'baetyl', 'unique_together': (('namespace', 'app', 'kind', 'name'),), 'indexes': [Index(fields=['namespace', 'kind', 'name'])], 'pk_attr': 'id', 'table_description': 'Index: app app mounts configuration or secret name (kind).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Application',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('namespace', fields.CharField(max_length=63)),
                ('name', fields.CharField(max_length=63)),
                ('version', fields.CharField(max_length=64)),
                ('selector', fields.CharField(default='', max_length=4096)),
                ('system', fields.BooleanField(default=False)),
                ('labels', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('spec', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('create_time', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('update_time', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'baetyl_application', 'app': 'baetyl', 'unique_together': (('namespace', 'name'),), 'pk_attr': 'id', 'table_description': 'An application, spec is the full wire JSON of agent.contracts.resources.Application.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Configuration',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('namespace', fields.CharField(max_length=63)),
                ('name', fields.CharField(max_length=63)),
                ('version', fields.CharField(max_length=64)),
                ('labels', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('description', fields.CharField(default='', max_length=1024)),
                ('system', fields.BooleanField(default=False)),
                ('data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('create_time', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('update_time', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'baetyl_configuration', 'app': 'baetyl', 'unique_together': (('namespace', 'name'),), 'pk_attr': 'id', 'table_description': 'A configuration: named text files.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Namespace',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=63)),
                ('create_time', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'baetyl_namespace', 'app': 'baetyl', 'pk_attr': 'name', 'table_description': 'A tenant.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Node',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('namespace', fields.CharField(max_length=63)),
                ('name', fields.CharField(max_length=63)),
                ('labels', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('description', fields.CharField(default='', max_length=1024)),
                ('node_mode', fields.CharField(default='native', max_length=16)),
                ('sync_mode', fields.CharField(default='cloud', max_length=16)),
                ('attributes', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('create_time', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('update_time', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'baetyl_node', 'app': 'baetyl', 'unique_together': (('namespace', 'name'),), 'pk_attr': 'id', 'table_description': 'An edge node, its desired/reported state lives in its Shadow row.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Property',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=128)),
                ('value', fields.TextField(unique=False)),
                ('create_time', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('update_time', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'baetyl_property', 'app': 'baetyl', 'pk_attr': 'name', 'table_description': 'A global cloud property (name → string), as Baetyl GET /properties/{name}.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Quota',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('namespace', fields.CharField(max_length=63)),
                ('name', fields.CharField(max_length=32)),
                ('quota', fields.IntField()),
            ],
            options={'table': 'baetyl_quota', 'app': 'baetyl', 'unique_together': (('namespace', 'name'),), 'pk_attr': 'id', 'table_description': 'A per-namespace limit that overrides the configured default (0 = unlimited).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Secret',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('namespace', fields.CharField(max_length=63)),
                ('name', fields.CharField(max_length=63)),
                ('version', fields.CharField(max_length=64)),
                ('secret_type', fields.CharField(db_index=True, max_length=16)),
                ('labels', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('description', fields.CharField(default='', max_length=1024)),
                ('system', fields.BooleanField(default=False)),
                ('sealed', fields.TextField(unique=False)),
                ('info', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('create_time', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('update_time', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'baetyl_secret', 'app': 'baetyl', 'unique_together': (('namespace', 'name'),), 'pk_attr': 'id', 'table_description': 'A secret (generic, certificate or registry), sealed is its data encrypted with AES-GCM.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Shadow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('namespace', fields.CharField(max_length=63)),
                ('name', fields.CharField(max_length=63)),
                ('desired', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('reported', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('desired_meta', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('reported_meta', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('version', fields.BigIntField(default=1)),
                ('timestamp', fields.FloatField(default=0.0)),
                ('report_time', fields.FloatField(null=True)),
            ],
            options={'table': 'baetyl_node_shadow', 'app': 'baetyl', 'unique_together': (('namespace', 'name'),), 'pk_attr': 'id', 'table_description': 'A the node shadow document (DESIGN §5), version guards writes (optimistic concurrency).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Token',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('namespace', fields.CharField(db_index=True, max_length=63)),
                ('role', fields.CharField(max_length=16)),
                ('digest', fields.CharField(unique=True, max_length=64)),
                ('prefix', fields.CharField(max_length=16)),
                ('description', fields.CharField(default='', max_length=256)),
                ('create_time', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'baetyl_token', 'app': 'baetyl', 'pk_attr': 'id', 'table_description': 'An API token, stored as its SHA-256 only, bound to one namespace and one role.'},
            bases=['Model'],
        ),
    ]
