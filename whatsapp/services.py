"""Writes on WhatsApp templates: sync from the WABA, creation, approval updates."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from core import events
from inbox.models import Channel
from inbox.providers import QualityUpdate, TemplateStatusUpdate
from whatsapp.client import GraphClient, GraphError
from whatsapp.models import MessageTemplate, QrPacing, TemplateStatus
from whatsapp.pacing import PacingSettings

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


def template_status_apply(*, waba_id: str, update: TemplateStatusUpdate, channel_id: int | None = None) -> bool:
    """Meta's review of a template (webhook). The event carries Meta's reason code and the channel it came
    through, so a rejection can be shown with the page where the templates are."""
    changed = (
        MessageTemplate.objects.filter(template_id=update.template_id)
        .exclude(status=update.status)
        .update(status=update.status, reason="" if update.reason in ("", "NONE") else update.reason)
    )
    if changed:
        events.announce(
            events.TEMPLATE_STATUS,
            str(getattr(connection, "schema_name", "public")),
            {
                "template_id": update.template_id,
                "name": update.name,
                "status": update.status,
                "reason": "" if update.reason in ("", "NONE") else update.reason,
                "channel_id": channel_id,
            },
        )
    return bool(changed)


QUALITY_ALERT = "channel.quality_dropped"  # worded by the alerts app (core.events.ALERT_RAISED)
QUALITY_DROPS = {"FLAGGED", "DOWNGRADE"}
QUALITY_RECOVERIES = {"UNFLAGGED", "UPGRADE"}


def quality_update_apply(*, routed: Channel, update: QualityUpdate) -> bool:
    """Meta flagged the number (or lowered its messaging limit): the tenant's alert. Unflagged or raised
    again: the alert closes. The event names the number, not its id: the channel of the WABA with that
    number, else the one the WABA routed to."""
    channel = (
        Channel.objects.filter(kind=routed.kind, waba_id=routed.waba_id, phone_number=f"+{update.display_phone_number}")
        .exclude(waba_id="")
        .first()
        or routed
    )
    schema = str(getattr(connection, "schema_name", "public"))
    key = str(channel.pk)
    if update.event in QUALITY_DROPS:
        detail = {
            "channel_id": channel.pk,
            "number": channel.phone_number or update.display_phone_number,
            "event": update.event,
            "limit": update.current_limit or "-",
        }
        events.announce(events.ALERT_RAISED, schema, {"kind": QUALITY_ALERT, "key": key, "detail": detail})
        return True
    if update.event in QUALITY_RECOVERIES:
        events.announce(events.ALERT_CLEARED, schema, {"kind": QUALITY_ALERT, "key": key})
        return True
    return False


# --- anti-ban pacing of QR numbers ------------------------------------------------------------------

PACING_FIELDS = (
    "min_delay_s",
    "max_delay_s",
    "batch_size",
    "batch_pause_min_s",
    "batch_pause_max_s",
    "daily_cap",
    "warmup_start",
    "warmup_days",
    "stop_window",
    "stop_failure_rate",
    "stop_unanswered_rate",
    "reply_wait_s",
)


def pacing_save(*, channel: Channel, **fields: Any) -> QrPacing:
    """Save a QR channel's pacing settings (the unnamed ones keep their value); ValidationError when the
    combination cannot work (a delay range upside down, a first day above the daily limit...)."""
    unknown = set(fields) - set(PACING_FIELDS)
    if unknown:
        raise ValueError(f"not pacing settings: {sorted(unknown)}")
    pacing = QrPacing.objects.filter(channel=channel).first() or QrPacing(channel=channel)
    for name, value in fields.items():
        setattr(pacing, name, value)
    pacing.full_clean(exclude=["channel"])
    try:
        PacingSettings(**{name: _plain(getattr(pacing, name)) for name in PACING_FIELDS})
    except ValueError as exc:
        raise ValidationError(_("These pacing settings do not fit together: %(reason)s") % {"reason": exc}) from exc
    pacing.save()
    return pacing


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else int(value) if isinstance(value, str) else value


def pacing_resume(*, channel: Channel) -> None:
    """A person resumed sending after an automatic stop: the sends before now are not judged again."""
    pacing = QrPacing.objects.filter(channel=channel).first() or QrPacing(channel=channel)
    pacing.judged_since = timezone.now()
    pacing.save()
