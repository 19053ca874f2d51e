"""Indexes on the raw tables' time columns, for the rollups' hour-by-hour rebuilds (analytics.rollups).

They belong to analytics (only its queries read by time this way), so they are made here rather than in
each owning app; IF NOT EXISTS keeps a rerun, or an owner adding the same index later, harmless."""

from django.db import migrations

INDEXES = [
    ("analytics_raw_message_created", "inbox_message", "created_at"),
    ("analytics_raw_conversation_created", "inbox_conversation", "created_at"),
    ("analytics_raw_call_created", "voice_call", "created_at"),
    ("analytics_raw_cardmove_created", "kanban_cardmove", "created_at"),
    ("analytics_raw_consent_changed", "crm_contactconsent", "changed_at"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0001_rollup_tables"),
        ("inbox", "0005_message_claimed_at"),
        ("voice", "0001_initial"),
        ("kanban", "0001_initial"),
        ("crm", "0005_consent_medium_voice"),
        ("campaigns", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            sql=f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})",
            reverse_sql=f"DROP INDEX IF EXISTS {name}",
        )
        for name, table, column in INDEXES
    ]
