"""CSV export of contacts, streamed row by row."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet

from crm.models import Contact, CustomField, IdentityKind

# A cell a spreadsheet would read as a formula (OWASP "CSV injection"): it starts with = + - @, a tab or
# a carriage return. Such a cell gets a leading ' so it shows as text, unless it is a plain signed
# number: an E.164 phone (+5511987654321), -12.5, "+55 (11) 98765-4321". Digits, spaces, dots, commas,
# parentheses and hyphens after a sign cannot call a function, and quoting them would corrupt every
# phone in an export. "+1+cmd|' /C calc'!A0" or "-2+3+HYPERLINK(...)" have letters or operators: quoted.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_SIGNED_NUMBER = re.compile(r"[+-][0-9 .,()-]*[0-9][0-9 .,()-]*")


def csv_cell_safe(value: Any) -> Any:
    """The cell as a spreadsheet should show it: text that would run as a formula is prefixed with '."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    if _PLAIN_SIGNED_NUMBER.fullmatch(value):
        return value
    return "'" + value


class SafeCSVWriter:
    """csv.writer that neutralises formula cells (every CSV a user downloads goes through this)."""

    def __init__(self, stream: Any) -> None:
        self._writer: Any = csv.writer(stream)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([csv_cell_safe(value) for value in row])


class _Echo:
    def write(self, value: str) -> str:
        return value


def contacts_csv_rows(contacts: QuerySet[Contact]) -> Iterator[str]:
    fields = list(CustomField.objects.values_list("key", flat=True))
    writer = SafeCSVWriter(_Echo())
    header = ["phone", "name", "email", "tags", "whatsapp_consent", "sms_consent"]
    # A contact known on WhatsApp by its user id alone has no phone: the id (with the business portfolio
    # it belongs to) and the username are exported, and the import reads them back.
    header += ["whatsapp_username", "whatsapp_bsuid", "whatsapp_portfolio"]
    yield "\ufeff" + writer.writerow([*header, *fields])
    for contact in contacts.prefetch_related("tags", "consents", "identities").iterator(chunk_size=2000):
        consent = {c.medium: c.status for c in contact.consents.all()}
        bsuid = next((i for i in contact.identities.all() if i.kind == IdentityKind.WHATSAPP_BSUID), None)  # type: ignore[attr-defined]
        yield writer.writerow(
            [
                contact.phone or "",
                contact.name,
                contact.email,
                ";".join(t.name for t in contact.tags.all()),
                consent.get("whatsapp", ""),
                consent.get("sms", ""),
                contact.wa_username,
                bsuid.value if bsuid else "",
                bsuid.scope if bsuid else "",
                *[contact.custom_fields.get(key, "") for key in fields],
            ]
        )
