"""Contact import from CSV or XLSX: read, guess the mapping, then upsert in chunks with a per-row report.

Rows are read as a stream (csv module, or openpyxl in read-only mode), normalized and validated in
Python, and written 2,000 at a time: one SELECT of the phones that exist, one bulk INSERT, one bulk
UPDATE, one bulk INSERT of tags. A bad row is reported, never fatal: good rows land.
"""

from __future__ import annotations

import csv
import io
import logging
import unicodedata
import zipfile
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.export import SafeCSVWriter
from crm.models import Contact, ContactIdentity, ContactImport, CustomField, IdentityKind, ImportStatus
from crm.services import bsuid_valid, contact_resolve, custom_fields_clean, phone_normalize
from tenants import usage
from tenants.models import Metric

logger = logging.getLogger(__name__)

CHUNK = 2000
MAX_ROWS = 200_000
MAX_COLUMNS = 100  # wider rows are cut: a contacts sheet has a handful of columns
# A workbook is a zip: its XML parts are capped by their uncompressed size, since a few KB can inflate to
# gigabytes (openpyxl holds the whole shared-strings table in memory even in read-only mode).
XLSX_MAX_SHARED_STRINGS_BYTES = 32 * 2**20
XLSX_MAX_PART_BYTES = 128 * 2**20  # the sheet itself is streamed
XLSX_MAX_TOTAL_BYTES = 256 * 2**20
XLSX_MAX_RATIO = 200  # legit spreadsheet XML compresses 5-50x; past 1 MB, more than this is a bomb
XLSX_MAX_PARTS = 1000
GUESSES = {
    "phone": {"phone", "telefone", "celular", "whatsapp", "fone", "mobile", "numero", "tel", "phone_number"},
    "name": {"name", "nome", "nome completo", "full name", "cliente", "contato"},
    "email": {"email", "e-mail", "mail"},
    # WhatsApp identities, as the export writes them: a contact known by its BSUID alone has no phone.
    "wa_bsuid": {"whatsapp_bsuid", "bsuid", "whatsapp user id", "whatsapp_user_id"},
    "wa_portfolio": {"whatsapp_portfolio", "business portfolio", "portfolio"},
    "wa_username": {"whatsapp_username", "username", "usuario", "usuário"},
}
KEY_TARGETS = ("phone", "wa_bsuid")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def rows_of(upload: ContactImport) -> Iterator[list[str]]:
    """Every row of the file (header first), as strings, at most MAX_COLUMNS wide. Raises ValidationError
    (with the reason) for a file we will not read: too big, a workbook that inflates past its caps, or
    more than MAX_ROWS data rows (raised when the row past the cap is reached)."""
    with upload.file.open("rb") as fh:
        raw = fh.read(settings.IMPORT_MAX_BYTES + 1)
    yield from rows_from_bytes(raw, upload.original_name)


def rows_from_bytes(raw: bytes, name: str) -> Iterator[list[str]]:
    """The rows of a CSV or XLSX file's content (see rows_of)."""
    if len(raw) > settings.IMPORT_MAX_BYTES:
        raise _too_big()
    source = _xlsx_rows(raw) if name.lower().endswith(".xlsx") else _csv_rows(raw)
    for count, row in enumerate(source):
        if count > MAX_ROWS:  # count 0 is the header
            raise ValidationError(
                _("The file has more than %(max)s rows. Split it into files of up to %(max)s rows.") % {"max": MAX_ROWS}
            )
        yield row[:MAX_COLUMNS]


def _too_big() -> ValidationError:
    return ValidationError(
        _("The file is larger than %(size)s MB. Split it into smaller files.")
        % {"size": settings.IMPORT_MAX_BYTES // 2**20}
    )


def _csv_rows(raw: bytes) -> Iterator[list[str]]:
    text = raw.decode("utf-8-sig", errors="replace")
    try:
        yield from csv.reader(io.StringIO(text), delimiter=csv_delimiter(text))
    except csv.Error as exc:  # e.g. a field over the csv module's 128 KB limit
        raise ValidationError(_("The file could not be read: %(reason)s.") % {"reason": exc}) from exc


def csv_delimiter(text: str) -> str:
    """The delimiter, read from the header line: the candidate found most often outside quotes (a comma
    when none is). csv.Sniffer guesses from the data too, and a few odd cells (`;;";"`) made it read a
    whole semicolon file as one column."""
    counts = dict.fromkeys(",;\t|", 0)
    quoted = False
    for char in text[:65536]:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "\r\n":
            break
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda candidate: counts[candidate])
    return best if counts[best] else ","


def xlsx_check(raw: bytes) -> None:
    """Refuse a workbook whose parts inflate past the caps, before openpyxl reads any of it. The sizes are
    the ones the zip declares; Python's zipfile never returns more than the declared size of a part (and
    fails its CRC check if the data says otherwise), so a part cannot lie its way past the cap."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as exc:
        raise ValidationError(_("The file is not a valid .xlsx workbook.")) from exc
    parts = archive.infolist()
    if len(parts) > XLSX_MAX_PARTS:
        raise ValidationError(_("The workbook has too many parts to be a spreadsheet of contacts."))
    total = 0
    for part in parts:
        total += part.file_size
        shared = part.filename.lower().endswith("sharedstrings.xml")
        limit = XLSX_MAX_SHARED_STRINGS_BYTES if shared else XLSX_MAX_PART_BYTES
        inflates = part.file_size > 2**20 and part.file_size > XLSX_MAX_RATIO * max(part.compress_size, 1)
        if part.file_size > limit or inflates or total > XLSX_MAX_TOTAL_BYTES:
            raise ValidationError(
                _(
                    "The workbook is too large once uncompressed (%(part)s). Save it as CSV or split it into "
                    "smaller files."
                )
                % {"part": part.filename[:80]}
            )


def _xlsx_rows(raw: bytes) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    xlsx_check(raw)
    try:
        book = load_workbook(io.BytesIO(raw), read_only=True, data_only=True, keep_links=False)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise ValidationError(_("The file is not a valid .xlsx workbook.")) from exc
    try:
        sheet: Any = book.active
        sheet.reset_dimensions()  # a declared A1:XFD1048576 must not pad every row to 16,384 cells
        for values in sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS):
            row = [_xlsx_text(v) for v in values]
            while row and row[-1] == "":
                row.pop()
            yield row
    finally:
        book.close()


def _xlsx_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone typed as a number: 5511987654321.0 is 5511987654321
    return str(value)


def import_configure(
    *, upload: ContactImport, mapping: dict[str, str], update_existing: bool, tag_ids: list[int]
) -> None:
    """Save the user's choices and queue the import (it runs on a worker, after commit)."""
    from core.tasks import send_on_commit
    from crm.tasks import contact_import_run

    if not any(key in mapping.values() for key in KEY_TARGETS):
        raise ValidationError(_("Choose the column that has the phone number (or the WhatsApp user id)."))
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
        raise _too_big()
    upload = ContactImport(original_name=original_name[:200], created_by=created_by)
    upload.file.save(original_name, file, save=False)
    try:
        header = next(rows_of(upload), [])
    except ValidationError:
        upload.file.delete(save=False)
        raise
    except Exception as exc:
        upload.file.delete(save=False)
        logger.warning("import header of %s unreadable: %s", original_name[:80], type(exc).__name__)
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
    try:
        total = sum(1 for _ in rows_of(upload)) - 1  # the caps are checked before any row lands
    except ValidationError as exc:
        return _fail(upload, " ".join(exc.messages)[:300])
    rows = rows_of(upload)
    header = next(rows, [])
    index = {name: i for i, name in enumerate(c.strip() for c in header)}
    targets = {target: index[column] for column, target in upload.mapping.items() if target and column in index}
    if not any(key in targets for key in KEY_TARGETS):
        return _fail(upload, _("No column is mapped to the phone number."))
    upload.status, upload.processed_rows, upload.total_rows = ImportStatus.RUNNING, 0, total
    upload.save(update_fields=["status", "processed_rows", "total_rows"])
    report = io.StringIO()
    writer = SafeCSVWriter(report)
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


def _only_portfolio() -> str:
    """The business portfolio a BSUID without one belongs to: the workspace's only one. A BSUID means a
    person only within its portfolio, so with two known the row must name it."""
    scopes = list(
        ContactIdentity.objects.filter(kind=IdentityKind.WHATSAPP_BSUID).values_list("scope", flat=True).distinct()[:2]
    )
    if len(scopes) != 1:
        raise ValidationError(_("Add a whatsapp_portfolio column: the WhatsApp user id belongs to one portfolio."))
    return scopes[0]


def _import_by_user_id(
    upload: ContactImport, number: int, row: list[str], values: dict[str, Any], writer: Any
) -> Contact | None:
    """A row with a WhatsApp user id (with or without a phone): found or made through the one resolver
    the webhooks use, so an imported BSUID and a later message from that user are one contact."""
    try:
        phone = values.get("phone", "")
        known = ContactIdentity.objects.filter(
            kind=IdentityKind.WHATSAPP_BSUID, scope=values["wa_portfolio"], value=values["wa_bsuid"]
        ).exists()
        contact = contact_resolve(
            scope=values["wa_portfolio"],
            phone=phone,
            bsuid=values["wa_bsuid"],
            username=values["wa_username"],
        )
    except ValidationError as exc:
        writer.writerow([number, *row, "; ".join(exc.messages)])
        upload.failed_count += 1
        return None
    if contact is None:
        return None
    if known and not upload.update_existing:
        upload.skipped_count += 1
        return None
    contact.name = values["name"] or contact.name
    contact.email = values["email"] or contact.email
    contact.custom_fields = {**contact.custom_fields, **(values["custom_fields"] or {})}
    contact.save(update_fields=["name", "email", "custom_fields", "updated_at"])
    if known:
        upload.updated_count += 1
    else:
        upload.created_count += 1
    return contact


def _cell(row: list[str], position: int | None) -> str:
    return row[position].strip() if position is not None and position < len(row) else ""


def _import_chunk(
    upload: ContactImport, chunk: list[tuple[int, list[str]]], targets: dict[str, int], writer: Any, seen: set[str]
) -> None:
    parsed: dict[str, dict[str, Any]] = {}
    line_of: dict[str, tuple[int, list[str]]] = {}  # phone -> its row (the plan's refusal names it)
    by_user_id: list[tuple[int, list[str], dict[str, Any]]] = []  # rows without a phone, keyed by BSUID
    values: dict[str, Any]
    for number, row in chunk:
        try:
            raw_phone = _cell(row, targets.get("phone"))
            user_id = _cell(row, targets.get("wa_bsuid"))
            if user_id and not bsuid_valid(user_id):
                raise ValidationError(_("%(id)s is not a WhatsApp user id (BSUID).") % {"id": user_id})
            phone = phone_normalize(raw_phone) if raw_phone or not user_id else ""
            custom = {t[3:]: _cell(row, i) for t, i in targets.items() if t.startswith("cf:") and _cell(row, i)}
            email = _cell(row, targets.get("email"))
            if email:
                validate_email(email)
            values = {
                "name": _cell(row, targets.get("name"))[:150],
                "email": email,
                "custom_fields": custom_fields_clean(custom) if custom else {},
                "phone": phone,
                "wa_bsuid": user_id,
                "wa_portfolio": _cell(row, targets.get("wa_portfolio")),
                "wa_username": _cell(row, targets.get("wa_username")).lstrip("@")[:64],
            }
            if user_id and not values["wa_portfolio"]:
                values["wa_portfolio"] = _only_portfolio()
        except ValidationError as exc:
            writer.writerow([number, *row, "; ".join(exc.messages)])
            upload.failed_count += 1
            continue
        if not phone or values["wa_bsuid"]:
            by_user_id.append((number, row, values))
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
                "wa_username": values["wa_username"] or previous.get("wa_username", ""),
            }
        parsed[phone] = values
        line_of.setdefault(phone, (number, row))
    with transaction.atomic():
        existing = {str(c.phone): c for c in Contact.objects.filter(phone__in=list(parsed))}
        new = [
            Contact(
                phone=p,
                name=v["name"],
                email=v["email"],
                custom_fields=v["custom_fields"] or {},
                wa_username=v.get("wa_username", ""),
            )
            for p, v in parsed.items()
            if p not in existing
        ]
        room = usage.count_room(metric=Metric.CONTACTS, existing=Contact.objects.count())
        if room is not None and len(new) > room:  # past the plan's contacts: each row left out says so
            refusal = usage.limit_refusal(Metric.CONTACTS, usage.limit_of(metric=Metric.CONTACTS).limit or 0)
            for contact in new[room:]:
                number, row = line_of[str(contact.phone)]
                writer.writerow([number, *row, refusal])
                upload.failed_count += 1
            new = new[:room]
            upload.failure = refusal[:300]
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
        identified = [c for c in (_import_by_user_id(upload, n, r, v, writer) for n, r, v in by_user_id) if c]
        if upload.tag_ids:
            ids = [c.pk for c in new] + [c.pk for c in changed] + [c.pk for c in identified]
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
