"""The IF part of a rule: each condition kind, cleaned when a rule is saved and checked against an event."""

from __future__ import annotations

import datetime
import unicodedata
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.models import Contact, Tag
from inbox.models import Channel, Conversation, ConversationStatus

CONDITION_KINDS = {
    "contact_field": gettext_lazy("Contact field"),
    "custom_field": gettext_lazy("Custom field"),
    "tag": gettext_lazy("Tag"),
    "channel": gettext_lazy("Channel"),
    "business_hours": gettext_lazy("Business hours"),
    "conversation_state": gettext_lazy("Conversation state"),
}
CONTACT_FIELDS = ("name", "email", "phone")
OPERATORS = ("equals", "not_equals", "contains", "starts_with", "is_set", "is_empty")
CONVERSATION_STATES = ("open", "pending", "resolved", "assigned", "unassigned")


@dataclass
class EventContext:
    """What a rule sees of an event: its kind and payload, the contact and conversation it is about."""

    kind: str
    payload: dict[str, Any]
    contact: Contact | None
    conversation: Conversation | None
    now: datetime.datetime


def fold(text: str) -> str:
    """Lower case without accents: "Orçamento" matches "orcamento"."""
    decomposed = unicodedata.normalize("NFKD", str(text or ""))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def _int(raw: Any, what: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise ValidationError(_("Choose %(what)s.") % {"what": what}) from exc


def _bool(raw: Any, default: bool = True) -> bool:
    """A flag from JSON or a form (the editor's selects send "true"/"false")."""
    if raw is None:
        return default
    return raw not in (False, 0, "false", "False", "0", "")


def _time(raw: Any) -> str:
    try:
        return datetime.time.fromisoformat(str(raw)).strftime("%H:%M")
    except ValueError as exc:
        raise ValidationError(_("Business hours take times like 09:00.")) from exc


def condition_clean(raw: dict[str, Any]) -> dict[str, Any]:
    """One condition as stored, or a ValidationError saying what to fix. Ids must name this tenant's rows."""
    kind = str(raw.get("kind", ""))
    if kind not in CONDITION_KINDS:
        raise ValidationError(_("Unknown condition: %(kind)s.") % {"kind": kind})
    if kind in ("contact_field", "custom_field"):
        field, op = str(raw.get("field", "")).strip(), str(raw.get("op", "equals"))
        if kind == "contact_field" and field not in CONTACT_FIELDS:
            raise ValidationError(_("Choose a contact field: name, email or phone."))
        if kind == "custom_field" and not field:
            raise ValidationError(_("Say which custom field (its key)."))
        if op not in OPERATORS:
            raise ValidationError(_("Unknown comparison: %(op)s.") % {"op": op})
        return {"kind": kind, "field": field, "op": op, "value": str(raw.get("value", ""))[:200]}
    if kind == "tag":
        tag_id = _int(raw.get("tag_id"), _("a tag"))
        if not Tag.objects.filter(pk=tag_id).exists():
            raise ValidationError(_("That tag does not exist."))
        return {"kind": kind, "tag_id": tag_id, "has": _bool(raw.get("has"))}
    if kind == "channel":
        channel_id = _int(raw.get("channel_id"), _("a channel"))
        if not Channel.objects.filter(pk=channel_id).exists():
            raise ValidationError(_("That channel does not exist."))
        return {"kind": kind, "channel_id": channel_id}
    if kind == "business_hours":
        days = sorted({int(d) for d in raw.get("days", [0, 1, 2, 3, 4]) if str(d).isdigit() and 0 <= int(d) <= 6})
        return {
            "kind": kind,
            "inside": _bool(raw.get("inside")),
            "days": days,
            "start": _time(raw.get("start", "09:00")),
            "end": _time(raw.get("end", "18:00")),
        }
    state = str(raw.get("state", ""))
    if state not in CONVERSATION_STATES:
        raise ValidationError(_("Choose a conversation state."))
    return {"kind": kind, "state": state}


def _compare(op: str, actual: Any, expected: str) -> bool:
    have = fold("" if actual is None else str(actual))
    want = fold(expected)
    if op == "is_set":
        return bool(have)
    if op == "is_empty":
        return not have
    if op == "equals":
        return have == want
    if op == "not_equals":
        return have != want
    if op == "contains":
        return want in have
    return have.startswith(want)  # starts_with


def in_hours(condition: dict[str, Any], now: datetime.datetime) -> bool:
    tenant = getattr(connection, "tenant", None)
    zone = ZoneInfo(getattr(tenant, "timezone", "") or settings.DEFAULT_TENANT_TIMEZONE)
    local = timezone.localtime(now, zone)
    if local.weekday() not in condition["days"]:
        return False
    start, end = datetime.time.fromisoformat(condition["start"]), datetime.time.fromisoformat(condition["end"])
    at = local.time()
    return start <= at < end if start <= end else (at >= start or at < end)


def condition_check(condition: dict[str, Any], ctx: EventContext) -> bool:
    kind, contact, conversation = condition["kind"], ctx.contact, ctx.conversation
    if kind == "contact_field":
        return _compare(
            condition["op"], getattr(contact, condition["field"], None) if contact else None, condition["value"]
        )
    if kind == "custom_field":
        fields = contact.custom_fields if contact is not None and isinstance(contact.custom_fields, dict) else {}
        return _compare(condition["op"], fields.get(condition["field"]), condition["value"])
    if kind == "tag":
        has = contact is not None and contact.tags.filter(pk=condition["tag_id"]).exists()
        return has == condition["has"]
    if kind == "channel":
        return conversation is not None and conversation.channel_id == condition["channel_id"]
    if kind == "business_hours":
        return in_hours(condition, ctx.now) == condition["inside"]
    state = condition["state"]
    if conversation is None:
        return False
    if state == "assigned":
        return conversation.assignee_id is not None
    if state == "unassigned":
        return conversation.assignee_id is None
    return conversation.status == ConversationStatus(state)
