"""Contact import from CSV or XLSX: read, guess the mapping, then upsert in chunks with a per-row report.

Rows are read as a stream (csv module, or openpyxl in read-only mode), normalized and validated in
Python, and written 2,000 at a time: one SELECT of the phones that exist, one bulk INSERT, one bulk
UPDATE, one bulk INSERT of tags. A bad row is reported, never fatal: good rows land.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.models import Contact, ContactImport, CustomField, ImportStatus
from crm.services import custom_fields_clean, phone_normalize

CHUNK = 2000
GUESSES = {
    "phone": {"phone", "telefone", "celular", "whatsapp", "fone", "mobile", "numero", "tel", "phone_number"},
    "name": {"name", "nome", "nome completo", "full name", "cliente", "contato"},
    "email": {"email", "e-mail", "mail"},
}


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def rows_of(upload: ContactImport) -> Iterator[list[str]]:
    """Every row of the file (header first), as strings."""
    name = upload.original_name.lower()
    with upload.file.open("rb") as fh:
        raw = fh.read()
    if name.endswith(".xlsx"):
        from openpyxl import load_workbook

        sheet = load_workbook(io.BytesIO(raw), read_only=True, data_only=True).active
        for values in sheet.iter_rows(values_only=True):  # type: ignore[union-attr]
            yield [
                "" if v is None else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
                for v in values
            ]
        return
    text = raw.decode("utf-8-sig", errors="replace")
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    yield from csv.reader(io.StringIO(text), dialect)


def import_configure(
    *, upload: ContactImport, mapping: dict[str, str], update_existing: bool, tag_ids: list[int]
) -> None:
    """Save the user's choices and queue the import (it runs on a worker, after commit)."""
    from core.tasks import send_on_commit
    from crm.tasks import contact_import_run

    if "phone" not in mapping.values():
        raise ValidationError(_("Choose the column that has the phone number."))
    upload.mapping, upload.update_existing, upload.tag_ids = mapping, update_existing, tag_ids
    upload.status = ImportStatus.QUEUED
    upload.save(update_fields=["mapping", "update_existing", "tag_ids", "status"])
    send_on_commit(contact_import_run, upload.pk, queue="default")


def import_start(*, file: Any, original_name: str, created_by: Any = None) -> ContactImport:
    """Store the upload and read its header; raises ValidationError for a file we cannot read."""
    lowered = original_name.lower()
    if not lowered.endswith((".csv", ".xlsx", ".txt")):
        raise ValidationError(_("Upload a .csv or .xlsx file."))
    if (getattr(file, "size", None) or 0) > settings.IMPORT_MAX_BYTES:
        raise ValidationError(
            _("The file is too large (at most %(size)s MB).") % {"size": settings.IMPORT_MAX_BYTES // (1024 * 1024)}
        )
    upload = ContactImport(original_name=original_name[:200], created_by=created_by)
    upload.file.save(original_name, file, save=False)
    try:
        header = next(rows_of(upload), [])
    except Exception as exc:
        raise ValidationError(_("The file could not be read.")) from exc
    if not any(header):
        raise ValidationError(_("The file is empty."))
    upload.columns = [c.strip() for c in header]
    upload.mapping = mapping_guess(upload.columns)
    upload.save()
    return upload


def mapping_guess(columns: list[str]) -> dict[str, str]:
    fields = {_fold(f.key): f.key for f in CustomField.objects.all()} | {
        _fold(f.label): f.key for f in CustomField.objects.all()
    }
    mapping: dict[str, str] = {}
    for column in columns:
        folded = _fold(column)
        target = next((t for t, names in GUESSES.items() if folded in names), "")
        if not target and folded in fields:
            target = f"cf:{fields[folded]}"
        mapping[column] = target if target not in mapping.values() or target.startswith("cf:") else ""
    return mapping


def import_run(*, import_id: int) -> ContactImport:
    """Run an import to the end (the Celery task calls this)."""
    upload = ContactImport.objects.get(pk=import_id)
    if upload.status not in (ImportStatus.QUEUED, ImportStatus.RUNNING):
        return upload
    rows = rows_of(upload)
    header = next(rows, [])
    index = {name: i for i, name in enumerate(c.strip() for c in header)}
    targets = {target: index[column] for column, target in upload.mapping.items() if target and column in index}
    if "phone" not in targets:
        return _fail(upload, _("No column is mapped to the phone number."))
    upload.status, upload.processed_rows = ImportStatus.RUNNING, 0
    upload.total_rows = sum(1 for _ in rows_of(upload)) - 1
    upload.save(update_fields=["status", "processed_rows", "total_rows"])
    report = io.StringIO()
    writer = csv.writer(report)
    writer.writerow(["row", *header, "error"])
    seen: set[str] = set()
    chunk: list[tuple[int, list[str]]] = []
    for number, row in enumerate(rows, start=2):
        chunk.append((number, row))
        if len(chunk) == CHUNK:
            _import_chunk(upload, chunk, targets, writer, seen)
            chunk = []
    if chunk:
        _import_chunk(upload, chunk, targets, writer, seen)
    if upload.failed_count:
        upload.error_report.save(
            f"errors-{upload.pk}.csv", ContentFile(report.getvalue().encode("utf-8-sig")), save=False
        )
    upload.status, upload.finished_at = ImportStatus.DONE, timezone.now()
    upload.save()
    return upload


def _fail(upload: ContactImport, reason: str) -> ContactImport:
    upload.status, upload.failure, upload.finished_at = ImportStatus.FAILED, reason, timezone.now()
    upload.save(update_fields=["status", "failure", "finished_at"])
    return upload


def _cell(row: list[str], position: int | None) -> str:
    return row[position].strip() if position is not None and position < len(row) else ""


def _import_chunk(
    upload: ContactImport, chunk: list[tuple[int, list[str]]], targets: dict[str, int], writer: Any, seen: set[str]
) -> None:
    parsed: dict[str, dict[str, Any]] = {}
    values: dict[str, Any]
    for number, row in chunk:
        try:
            phone = phone_normalize(_cell(row, targets["phone"]))
            custom = {t[3:]: _cell(row, i) for t, i in targets.items() if t.startswith("cf:") and _cell(row, i)}
            email = _cell(row, targets.get("email"))
            if email:
                validate_email(email)
            values = {
                "name": _cell(row, targets.get("name"))[:150],
                "email": email,
                "custom_fields": custom_fields_clean(custom) if custom else {},
            }
        except ValidationError as exc:
            writer.writerow([number, *row, "; ".join(exc.messages)])
            upload.failed_count += 1
            continue
        if phone in seen or phone in parsed:
            if not upload.update_existing:
                upload.skipped_count += 1
                continue
            previous: dict[str, Any] = parsed.get(phone, {"name": "", "email": "", "custom_fields": {}})
            values = {
                "name": values["name"] or previous["name"],
                "email": values["email"] or previous["email"],
                "custom_fields": {**previous["custom_fields"], **values["custom_fields"]},
            }
        parsed[phone] = values
    with transaction.atomic():
        existing = {c.phone: c for c in Contact.objects.filter(phone__in=list(parsed))}
        new = [
            Contact(phone=p, name=v["name"], email=v["email"], custom_fields=v["custom_fields"] or {})
            for p, v in parsed.items()
            if p not in existing
        ]
        Contact.objects.bulk_create(new, batch_size=CHUNK)
        changed = []
        for phone, contact in existing.items():
            if not upload.update_existing:
                upload.skipped_count += 1
                continue
            values = parsed[phone]
            contact.name = values["name"] or contact.name
            contact.email = values["email"] or contact.email
            contact.custom_fields = {**contact.custom_fields, **(values["custom_fields"] or {})}
            changed.append(contact)
        Contact.objects.bulk_update(changed, ["name", "email", "custom_fields"], batch_size=CHUNK)
        if upload.tag_ids:
            ids = [c.pk for c in new] + [c.pk for c in changed]
            through = Contact.tags.through
            through.objects.bulk_create(
                [through(contact_id=i, tag_id=t) for i in ids for t in upload.tag_ids],
                ignore_conflicts=True,
                batch_size=5000,
            )
        upload.created_count += len(new)
        upload.updated_count += len(changed)
        upload.processed_rows += len(chunk)
        ContactImport.objects.filter(pk=upload.pk).update(
            processed_rows=upload.processed_rows,
            created_count=upload.created_count,
            updated_count=upload.updated_count,
            skipped_count=upload.skipped_count,
            failed_count=upload.failed_count,
        )
    seen.update(parsed)
