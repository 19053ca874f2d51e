"""Writes on WhatsApp templates: sync from the WABA, creation, approval updates."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from core import events
from inbox.models import Channel
from inbox.providers import TemplateStatusUpdate
from whatsapp.client import GraphClient, GraphError
from whatsapp.models import MessageTemplate, TemplateStatus

NAME_RE = re.compile(r"^[a-z0-9_]{1,512}$")


def _client(channel: Channel) -> GraphClient:
    return GraphClient(channel.credentials.get("access_token", ""))


def templates_sync(*, channel: Channel) -> int:
    """Mirror every template of the channel's WABA; returns how many were seen."""
    now = timezone.now()
    seen = 0
    for item in _client(channel).templates(channel.waba_id):
        MessageTemplate.objects.update_or_create(
            template_id=str(item["id"]),
            defaults={
                "waba_id": channel.waba_id,
                "name": item["name"],
                "language": item["language"],
                "category": item.get("category", ""),
                "status": item.get("status", ""),
                "parameter_format": item.get("parameter_format", "POSITIONAL"),
                "components": item.get("components", []),
                "synced_at": now,
            },
        )
        seen += 1
    return seen


def template_create(
    *,
    channel: Channel,
    name: str,
    category: str,
    language: str,
    body: str,
    header: str = "",
    footer: str = "",
    quick_replies: list[str] | None = None,
    body_examples: list[str] | None = None,
) -> MessageTemplate:
    """Submit a new template to Meta for review; it starts PENDING and the webhook reports the verdict."""
    if not NAME_RE.match(name):
        raise ValidationError(_("Template names use lowercase letters, digits and underscores."), code="name")
    variables = sorted(set(re.findall(r"\{\{(\d+)\}\}", body)), key=int)
    examples = body_examples or [f"example{i}" for i in variables]
    components: list[dict[str, Any]] = []
    if header:
        components.append({"type": "HEADER", "format": "TEXT", "text": header})
    body_component: dict[str, Any] = {"type": "BODY", "text": body}
    if variables:
        body_component["example"] = {"body_text": [examples[: len(variables)]]}
    components.append(body_component)
    if footer:
        components.append({"type": "FOOTER", "text": footer})
    if quick_replies:
        components.append({"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": t} for t in quick_replies]})
    try:
        answer = _client(channel).create_template(
            channel.waba_id, {"name": name, "category": category, "language": language, "components": components}
        )
    except GraphError as exc:
        raise ValidationError(
            _("Meta refused the template: %(reason)s") % {"reason": exc.message}, code="meta"
        ) from exc
    template, _created = MessageTemplate.objects.update_or_create(
        template_id=str(answer["id"]),
        defaults={
            "waba_id": channel.waba_id,
            "name": name,
            "language": language,
            "category": answer.get("category", category),
            "status": answer.get("status", TemplateStatus.PENDING),
            "components": components,
        },
    )
    return template


def template_status_apply(*, waba_id: str, update: TemplateStatusUpdate) -> bool:
    changed = (
        MessageTemplate.objects.filter(template_id=update.template_id)
        .exclude(status=update.status)
        .update(status=update.status, reason="" if update.reason in ("", "NONE") else update.reason)
    )
    if changed:
        events.announce(
            events.TEMPLATE_STATUS,
            str(getattr(connection, "schema_name", "public")),
            {"template_id": update.template_id, "name": update.name, "status": update.status},
        )
    return bool(changed)
