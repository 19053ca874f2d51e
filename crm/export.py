"""CSV export of contacts, streamed row by row."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from crm.models import Contact, CustomField


class _Echo:
    def write(self, value: str) -> str:
        return value


def contacts_csv_rows(contacts: QuerySet[Contact]) -> Iterator[str]:
    fields = list(CustomField.objects.values_list("key", flat=True))
    writer: Any = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(["phone", "name", "email", "tags", "whatsapp_consent", "sms_consent", *fields])
    for contact in contacts.prefetch_related("tags", "consents").iterator(chunk_size=2000):
        consent = {c.medium: c.status for c in contact.consents.all()}
        yield writer.writerow(
            [
                contact.phone,
                contact.name,
                contact.email,
                ";".join(t.name for t in contact.tags.all()),
                consent.get("whatsapp", ""),
                consent.get("sms", ""),
                *[contact.custom_fields.get(key, "") for key in fields],
            ]
        )
