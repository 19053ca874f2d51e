from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, models
from django.db.models.functions import Cast
from django_tenants.utils import get_tenant_model, schema_context

from core.crypto import key_id_of, keyring
from core.fields import EncryptedTextField


def encrypted_fields() -> list[tuple[type[models.Model], list[str]]]:
    found = []
    for model in apps.get_models():
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if names:
            found.append((model, names))
    return found


def reencrypt_schema(schema_name: str) -> int:
    """Re-save every encrypted value that is not under the newest key; returns how many rows."""
    current = keyring().current_kid
    changed = 0
    with schema_context(schema_name):
        existing = set(connection.introspection.table_names())
        for model, names in encrypted_fields():
            if model._meta.db_table not in existing:
                continue
            raw = {f"raw_{n}": Cast(n, output_field=models.TextField()) for n in names}
            for row in model._default_manager.annotate(**raw).iterator():
                stale = [n for n in names if (v := getattr(row, f"raw_{n}")) and key_id_of(v) != current]
                if stale:
                    row.save(update_fields=stale)
                    changed += 1
    return changed


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field, in every schema, with the newest FIELD_ENCRYPTION_KEYS key."

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        for schema in get_tenant_model().objects.values_list("schema_name", flat=True):
            count = reencrypt_schema(schema)
            total += count
            self.stdout.write(f"{schema}: {count} rows re-encrypted")
        self.stdout.write(self.style.SUCCESS(f"done: {total} rows now under key {keyring().current_kid}"))
