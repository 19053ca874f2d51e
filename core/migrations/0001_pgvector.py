from django.db import migrations


class Migration(migrations.Migration):
    """pgvector lives in the public schema, which is on every tenant's search_path.

    Created from a tenant migration it would land in the first tenant's schema and every later
    tenant would fail with `type "vector" does not exist`.
    """

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.RunSQL(
            "CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
