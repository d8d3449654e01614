"""The database cache's table (settings.CACHES), made wherever `migrate` runs.

Rate limits count in that cache across processes; `createcachetable` is
idempotent and is otherwise a step of its own that every start would need.
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor) -> None:
    call_command("createcachetable", database=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [("bananaweb", "0003_recovery_and_idempotency")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
