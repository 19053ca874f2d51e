"""Who a campaign goes to. An audience spec is one of:

- a filter: ``{"segments": [ids], "tags": [ids], "tags_match": "any" | "all"}`` (segments are a union,
  tags narrow it; ``{}`` is every contact; the older ``{"segment": id}`` still reads);
- a pasted list of phones: ``{"contacts": [ids]}``, made by ``audience_from_phones``, which reports the
  duplicate and invalid lines;
- an uploaded file: ``{"import": id, "tags": [tag id]}``: the file goes through the CRM import, which tags
  every contact it creates or updates, and the campaign cannot launch before that import is done.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.models import Contact, ContactImport, ImportStatus, Tag
from crm.phones import phone_normalize
from crm.selectors import contacts_filter

MAX_PASTED = 10_000
MAX_REPORTED = 50  # duplicate or invalid lines kept for the page (the counts are whole)


def audience_contacts(spec: dict[str, Any] | None) -> QuerySet[Contact]:
    """The contacts an audience spec names now (each once)."""
    spec = dict(spec or {})
    if "contacts" in spec:
        ids = [int(i) for i in spec.get("contacts") or [] if str(i).isdigit()]
        return contacts_filter().filter(pk__in=ids)
    segments = [int(s) for s in spec.get("segments") or [] if str(s).isdigit()]
    if spec.get("segment") and str(spec["segment"]).isdigit():
        segments.append(int(spec["segment"]))
    tags = [int(t) for t in spec.get("tags") or [] if str(t).isdigit()]
    if "import" in spec and not tags:
        return Contact.objects.none()  # the import's tag is gone: nobody, never everybody
    qs = contacts_filter()
    if segments:
        union = Q()
        for segment in segments:
            union |= Q(pk__in=contacts_filter({"segment": segment}).order_by().values("pk"))
        qs = qs.filter(union)
    if tags:
        if spec.get("tags_match") == "all":
            for tag in tags:
                qs = qs.filter(pk__in=Contact.tags.through.objects.filter(tag_id=tag).values("contact_id"))
        else:
            qs = qs.filter(pk__in=Contact.tags.through.objects.filter(tag_id__in=tags).values("contact_id"))
    return qs


def audience_from_phones(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A pasted list (one phone per line, or separated by commas or semicolons; a name may follow the
    phone after a comma or a tab on its own line) -> the audience spec and its report: how many contacts,
    the duplicate phones skipped and the invalid lines, with the reason."""
    lines = [line.strip() for line in text.replace(";", "\n").splitlines() if line.strip()]
    if len(lines) > MAX_PASTED:
        raise ValidationError(
            _("Paste at most %(max)s phones; upload a file for more.") % {"max": MAX_PASTED}, code="too_many"
        )
    seen: dict[str, int] = {}
    names: dict[str, str] = {}
    duplicates: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    duplicate_count = invalid_count = 0
    for number, line in enumerate(lines, start=1):
        raw, _sep, name = line.replace("\t", ",").partition(",")
        try:
            phone = phone_normalize(raw)
        except ValidationError as exc:
            invalid_count += 1
            if len(invalid) < MAX_REPORTED:
                invalid.append({"line": number, "text": line[:80], "reason": " ".join(exc.messages)})
            continue
        if phone in seen:
            duplicate_count += 1
            if len(duplicates) < MAX_REPORTED:
                duplicates.append(
                    {
                        "line": number,
                        "phone": phone,
                        "reason": _("Duplicate phone: already on line %(line)s.") % {"line": seen[phone]},
                    }
                )
            continue
        seen[phone] = number
        names[phone] = name.strip()[:150]
    if not seen:
        raise ValidationError(_("No valid phone number in the list."), code="empty")
    existing = {str(c.phone): c.pk for c in Contact.objects.filter(phone__in=list(seen))}
    Contact.objects.bulk_create(
        [Contact(phone=p, name=names[p]) for p in seen if p not in existing], batch_size=2000, ignore_conflicts=True
    )
    ids = list(Contact.objects.filter(phone__in=list(seen)).values_list("pk", flat=True))
    report = {
        "source": "list",
        "contacts": len(ids),
        "created": len(seen) - len(existing),
        "duplicates": duplicate_count,
        "duplicate_lines": duplicates,
        "invalid": invalid_count,
        "invalid_lines": invalid,
    }
    return {"contacts": ids}, report


def audience_from_file(
    *, file: Any, original_name: str, campaign_name: str, user: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An uploaded CSV/XLSX -> the CRM import (mapping guessed from its header, existing contacts
    updated) with a tag of its own, and the audience spec of that tag. The import's own report lists
    its duplicate and bad rows."""
    from crm.imports import import_configure, import_start

    upload = import_start(
        file=file, original_name=original_name, created_by=user if getattr(user, "is_authenticated", False) else None
    )
    stamp = timezone.localtime().strftime("%Y-%m-%d %H:%M")
    label = (_("Campaign %(name)s · file %(stamp)s") % {"name": campaign_name, "stamp": stamp})[:45]
    tag, _created = Tag.objects.get_or_create(name=f"{label} #{upload.pk}"[:50])
    import_configure(upload=upload, mapping=upload.mapping, update_existing=True, tag_ids=[tag.pk])
    report = {"source": "file", "import": upload.pk, "file": upload.original_name}
    return {"import": upload.pk, "tags": [tag.pk]}, report


def audience_ready(spec: dict[str, Any] | None) -> str:
    """Why the audience cannot be fixed now ("" when it can): an uploaded file still importing."""
    spec = spec or {}
    if "import" not in spec:
        return ""
    upload = ContactImport.objects.filter(pk=spec.get("import") or 0).first()
    if upload is None:
        return _("The uploaded file is gone. Choose the audience again.")
    if upload.status in (ImportStatus.MAPPING, ImportStatus.QUEUED, ImportStatus.RUNNING):
        return _("The uploaded file is still being imported (%(percent)s%%). Launch when it is done.") % {
            "percent": upload.percent
        }
    if upload.status == ImportStatus.FAILED:
        return _("The uploaded file could not be imported: %(reason)s") % {"reason": upload.failure}
    return ""


def audience_import_summary(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    spec = spec or {}
    if "import" not in spec:
        return None
    upload = ContactImport.objects.filter(pk=spec.get("import") or 0).first()
    if upload is None:
        return None
    return {
        "status": upload.get_status_display(),
        "done": upload.status == ImportStatus.DONE,
        "created": upload.created_count,
        "updated": upload.updated_count,
        "skipped": upload.skipped_count,
        "failed": upload.failed_count,
        "import_id": upload.pk,
    }
