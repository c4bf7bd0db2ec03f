from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('baetyl', '0002_presence')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DeniedNode',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('namespace', fields.CharField(max_length=63)),
                ('name', fields.CharField(max_length=63)),
                ('create_time', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'baetyl_denied_node', 'app': 'baetyl', 'unique_together': (('namespace', 'name'),), 'pk_attr': 'id', 'table_description': 'A deleted node whose certificate the broker must refuse (ACL topic deny), DESIGN 10.'},
            bases=['Model'],
        ),
    ]
