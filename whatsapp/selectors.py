from __future__ import annotations

from django.db.models import QuerySet

from whatsapp.models import MessageTemplate, TemplateStatus


def templates_of(*, waba_id: str) -> QuerySet[MessageTemplate]:
    return MessageTemplate.objects.filter(waba_id=waba_id).order_by("name", "language")


def templates_approved(*, waba_id: str) -> QuerySet[MessageTemplate]:
    return templates_of(waba_id=waba_id).filter(status=TemplateStatus.APPROVED)
