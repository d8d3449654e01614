"""Full-text search on PostgreSQL: the prompt's search vector stored in a
generated column, `prompt_search`, so that ranking the matches reads it instead
of parsing every matching prompt again (bananaweb.history ranks by it; its
filter still uses migration 0007's index on the very same expression).

The model does not declare the column: only PostgreSQL has it (SQLite searches
with a containment match), the database fills it, and nothing reads it but the
search's rank. Adding it rewrites the table once (about a minute for a million
requests on a small machine).
"""

from django.db import migrations

COLUMN = "prompt_search"


def add_column(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(
        apps.get_model("bananaweb", "ImageRequest")._meta.db_table
    )
    # The expression of bananaweb.history._search_vector() and of migration 0007.
    schema_editor.execute(
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {COLUMN} tsvector "
        "GENERATED ALWAYS AS "
        "(to_tsvector('english'::regconfig, COALESCE(prompt, ''))) STORED"
    )


def drop_column(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(
        apps.get_model("bananaweb", "ImageRequest")._meta.db_table
    )
    schema_editor.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {COLUMN}")


class Migration(migrations.Migration):
    dependencies = [
        ("bananaweb", "0010_history_indexes"),
    ]

    operations = [migrations.RunPython(add_column, drop_column)]
