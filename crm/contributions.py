"""What the CRM adds to other apps' pages: the media guard for contact-import files."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from core.roles import Action, role_allows
from crm.models import ContactImport

IMPORT_MEDIA_PREFIX = "imports/"  # ContactImport's upload_to


def import_media_guard(*, path: str, role: str | None, **kwargs: Any) -> list[str]:
    """An uploaded contacts file (or its error report) holds the whole list: importers only."""
    if role_allows(role, Action.CONTACT_IMPORT):
        return []
    if (
        path.startswith(IMPORT_MEDIA_PREFIX)
        or ContactImport.objects.filter(Q(file=path) | Q(error_report=path)).exists()
    ):
        return ["contact import file"]
    return []
