"""Full-text search of prompts on PostgreSQL: a GIN index on the very expression
bananaweb.history searches, SearchVector("prompt", config="english").

Elsewhere (SQLite) the history searches with a containment match, and this
migration does nothing.
"""

from django.db import migrations

INDEX = "image_request_prompt_search"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(
        apps.get_model("bananaweb", "ImageRequest")._meta.db_table
    )
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON {table} "
        "USING gin (to_tsvector('english'::regconfig, COALESCE(prompt, '')))"
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("bananaweb", "0006_uploads_references_groups"),
    ]

    operations = [migrations.RunPython(create_index, drop_index)]
