"""Inbound webhooks: another system POSTs JSON to /hooks/in/<key>/, signed with the hook's secret. The
signature is checked on the raw body first; fields are taken from the body by dotted path (the mapping);
then the hook's actions run on that contact, all or nothing. Bad input is a 4xx that stores nothing."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils.translation import gettext as _

from campaigns.models import Cadence
from campaigns.services import cadence_enroll
from core import events
from crm.models import Contact, Tag
from crm.services import contact_get_or_create, contact_update, contacts_tag, contacts_untag
from kanban.models import ActorKind, Board, Card, Stage
from kanban.services import card_create, card_move
from webhooks import signing
from webhooks.models import InboundAuth, InboundEvent, InboundEventStatus, InboundHook

MAX_BODY = 256 * 1024
MAPPED_FIELDS = ("phone", "name", "email")
ACTION_TYPES = ("contact_upsert", "tag_add", "tag_remove", "card_move", "cadence_enroll")
TOLERANCE_S = 300


class Refused(Exception):
    """The request is refused with `status` and a message the sender can act on; nothing was stored."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def hook_create(
    *, name: str, auth: str = InboundAuth.HMAC, mapping: dict[str, str], actions: list[dict[str, Any]]
) -> tuple[InboundHook, str]:
    """A new inbound hook and its secret (shown once)."""
    secret = signing.secret_new() if auth == InboundAuth.STANDARD else secrets.token_urlsafe(32)
    hook = InboundHook(name=name.strip()[:100], key=secrets.token_urlsafe(24), auth=auth, secret={"value": secret})
    hook_configure(hook, mapping=mapping, actions=actions)
    return hook, secret


def hook_configure(hook: InboundHook, *, mapping: dict[str, str], actions: list[dict[str, Any]]) -> InboundHook:
    clean_mapping = {k: str(v).strip() for k, v in mapping.items() if k in MAPPED_FIELDS and str(v).strip()}
    if "phone" not in clean_mapping:
        raise ValidationError({"mapping": _("Say where the phone number is in the body (for example customer.phone).")})
    hook.mapping = clean_mapping
    hook.actions = [_action_clean(a) for a in actions]
    hook.full_clean(exclude=["key", "secret"])
    hook.save()
    return hook


def _int(action: dict[str, Any], key: str) -> int:
    value = action.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(
            {"actions": _("The action %(type)s needs %(key)s.") % {"type": action.get("type"), "key": key}}
        )
    return value


def _action_clean(action: dict[str, Any]) -> dict[str, Any]:
    kind = action.get("type")
    if kind not in ACTION_TYPES:
        raise ValidationError({"actions": _("Unknown action: %(type)s.") % {"type": kind}})
    if kind in ("tag_add", "tag_remove"):
        tag_id = _int(action, "tag_id")
        if not Tag.objects.filter(pk=tag_id).exists():
            raise ValidationError({"actions": _("That tag does not exist.")})
        return {"type": kind, "tag_id": tag_id}
    if kind == "card_move":
        board_id, stage_id = _int(action, "board_id"), _int(action, "stage_id")
        if not Stage.objects.filter(pk=stage_id, board_id=board_id).exists():
            raise ValidationError({"actions": _("That stage is not on that board.")})
        return {"type": kind, "board_id": board_id, "stage_id": stage_id}
    if kind == "cadence_enroll":
        cadence_id = _int(action, "cadence_id")
        if not Cadence.objects.filter(pk=cadence_id).exists():
            raise ValidationError({"actions": _("That cadence does not exist.")})
        return {"type": kind, "cadence_id": cadence_id}
    return {"type": kind}


def path_get(body: Any, path: str) -> Any:
    """`customer.phone`, `items.0.sku`: dict keys and list indexes; None when absent."""
    current = body
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def mapped_values(hook: InboundHook, body: Any) -> dict[str, str]:
    values = {}
    for field, path in hook.mapping.items():
        value = path_get(body, path)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            values[field] = str(value).strip()[:200]
    return values


def signature_check(hook: InboundHook, body: bytes, headers: dict[str, str]) -> None:
    secret = str(hook.secret.get("value", ""))
    if hook.auth == InboundAuth.STANDARD:
        try:
            signing.verify(secret, body, headers, TOLERANCE_S)
        except signing.SignatureInvalid as exc:
            raise Refused(401, f"bad signature: {exc}") from exc
        return
    given = headers.get("x-signature", "")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not secret or not hmac.compare_digest(given.strip().lower(), expected):
        raise Refused(401, "bad signature: X-Signature must be sha256=<hex HMAC-SHA256 of the raw body>")


@dataclass
class Applied:
    contact: Contact
    outcome: list[dict[str, Any]]


def actions_run(hook: InboundHook, values: dict[str, str]) -> Applied:
    """Everything the hook says, on the contact the body names (made when new)."""
    contact = contact_get_or_create(phone=values["phone"], name=values.get("name", ""))
    outcome: list[dict[str, Any]] = []
    for action in hook.actions:
        kind = action["type"]
        if kind == "contact_upsert":
            changes = {k: values[k] for k in ("name", "email") if values.get(k)}
            if changes:
                contact_update(contact=contact, **changes)
            outcome.append({"type": kind, "changed": sorted(changes)})
        elif kind in ("tag_add", "tag_remove"):
            tag = Tag.objects.get(pk=action["tag_id"])
            contacts = Contact.objects.filter(pk=contact.pk)
            (contacts_tag if kind == "tag_add" else contacts_untag)(contacts=contacts, tag=tag)
            outcome.append({"type": kind, "tag": tag.name})
        elif kind == "card_move":
            board = Board.objects.get(pk=action["board_id"])
            stage = Stage.objects.get(pk=action["stage_id"], board=board)
            card = Card.objects.filter(board=board, contact=contact).order_by("-pk").first()
            if card is None:
                card = card_create(
                    board=board, stage=stage, title=contact.display_name, contact=contact, actor_kind=ActorKind.API
                )
                outcome.append({"type": kind, "card_id": card.pk, "created": True})
            else:
                if card.stage_id != stage.pk:
                    card_move(card_id=card.pk, to_stage_id=stage.pk, actor_kind=ActorKind.API, reason=hook.name)
                outcome.append({"type": kind, "card_id": card.pk, "created": False})
        elif kind == "cadence_enroll":
            cadence = Cadence.objects.get(pk=action["cadence_id"])
            started = cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk))
            outcome.append({"type": kind, "cadence": cadence.name, "started": started})
    return Applied(contact, outcome)


def receive(hook: InboundHook, body: bytes, headers: dict[str, str]) -> InboundEvent:
    """Check, map, act, log. Raises Refused (nothing stored) for anything the sender must fix."""
    import json

    if not hook.enabled:
        raise Refused(404, "no such hook")
    if len(body) > MAX_BODY:
        raise Refused(413, f"body over {MAX_BODY} bytes")
    signature_check(hook, body, headers)
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise Refused(400, "the body is not JSON") from exc
    values = mapped_values(hook, parsed)
    if not values.get("phone"):
        raise Refused(422, f"no phone number at {hook.mapping.get('phone')!r} in the body")
    try:
        with transaction.atomic():
            applied = actions_run(hook, values)
            event = InboundEvent.objects.create(
                hook=hook,
                payload=parsed,
                status=InboundEventStatus.APPLIED,
                outcome=applied.outcome,
                contact_id=applied.contact.pk,
            )
    except ValidationError as exc:
        raise Refused(422, "; ".join(exc.messages)) from exc
    events.announce(
        events.INBOUND_WEBHOOK_RECEIVED,
        str(getattr(connection, "schema_name", "public")),
        {"hook_id": hook.pk, "event_id": event.pk, "contact_id": applied.contact.pk, "values": values},
    )
    return event


def event_replay(event: InboundEvent) -> InboundEvent:
    """Run a logged event's actions again (the hook as it is configured now)."""
    values = mapped_values(event.hook, event.payload)
    if not values.get("phone"):
        raise ValidationError(_("This event has no phone number under the hook's current mapping."))
    with transaction.atomic():
        applied = actions_run(event.hook, values)
        return InboundEvent.objects.create(
            hook=event.hook,
            payload=event.payload,
            status=InboundEventStatus.APPLIED,
            outcome=[*applied.outcome, {"type": "replay_of", "event_id": event.pk}],
            contact_id=applied.contact.pk,
        )
