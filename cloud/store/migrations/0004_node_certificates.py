from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('baetyl', '0003_denied_node')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ConsumedInstallToken',
            fields=[
                ('jti', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('namespace', fields.CharField(max_length=63)),
                ('name', fields.CharField(max_length=63)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('consumed_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'baetyl_install_token_consumed', 'app': 'baetyl', 'pk_attr': 'jti', 'table_description': 'An install token that already activated a node: tokens are single use (DESIGN §10).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NodeCertificate',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('namespace', fields.CharField(max_length=63)),
                ('name', fields.CharField(max_length=63)),
                ('serial', fields.CharField(unique=True, max_length=64)),
                ('not_before', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('not_after', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('create_time', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'baetyl_node_certificate', 'app': 'baetyl', 'indexes': [Index(fields=['namespace', 'name'])], 'pk_attr': 'id', 'table_description': 'A client certificate the cloud signed for a node (activation or renewal), DESIGN §10.'},
            bases=['Model'],
        ),
    ]
