from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('baetyl', '0001_initial')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Shadow',
            name='online',
            field=fields.BooleanField(null=True),
        ),
        ops.AddField(
            model_name='Shadow',
            name='presence_time',
            field=fields.FloatField(null=True),
        ),
    ]
