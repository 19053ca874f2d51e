"""Coexistence: a WhatsApp Cloud API number the business keeps using in the WhatsApp Business app on its
phone. Meta then reports what happens there: echoes of what the owner types (smb_message_echoes), the chat
history the business shared when it connected (history, in phases and chunks, or a decline), and the app's
address book (smb_app_state_sync). All of it is recorded and nothing of it is acted on: no message is sent,
no unread count moves, no bot, rule, cadence or consent reacts (only `message.created` reaches those, and
it is never announced here), and imported history pushes nothing to browsers.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from core import events
from crm.models import Contact
from crm.services import contact_resolve, contact_update, phone_normalize
from inbox.models import (
    BusinessAppContact,
    Channel,
    Conversation,
    Direction,
    HistoryImport,
    HistoryImportStatus,
    Message,
    MessageOrigin,
    MessageStatus,
)
from inbox.providers import AppContactChange, BusinessAppMessage, Event, HistoryDeclined, HistoryProgress

logger = logging.getLogger(__name__)

COEXISTENCE_EVENTS = (BusinessAppMessage, HistoryProgress, HistoryDeclined, AppContactChange)


def app_contact_for(*, channel: Channel, phone: str, name: str = "", user_id: str = "") -> Contact:
    """The one place coexistence finds (or makes) the customer of a message or address-book entry, the
    same way the inbound path does (crm.services.contact_resolve: BSUID, then phone, merged when both
    name one person)."""
    from inbox.selectors import channel_identity_scope

    contact = contact_resolve(scope=channel_identity_scope(channel), phone=phone, bsuid=user_id, profile_name=name)
    if contact is None:
        raise ValidationError("a business app message without the customer's phone or user id")
    return contact


def coexistence_apply(*, channel: Channel, event: Event) -> bool:
    """Apply one coexistence event of a WhatsApp Cloud channel. True when it changed something."""
    if isinstance(event, BusinessAppMessage):
        return business_app_message_apply(channel=channel, event=event)
    if isinstance(event, HistoryProgress):
        return history_progress_apply(channel=channel, progress=event)
    if isinstance(event, HistoryDeclined):
        return history_declined_apply(channel=channel, declined=event)
    if isinstance(event, AppContactChange):
        return app_contact_apply(channel=channel, change=event)
    return False


# --- messages written in the app: echoes and history ---------------------------------------------


def _status_fields(event: BusinessAppMessage) -> dict[str, Any]:
    if event.direction == Direction.INBOUND:
        return {"status": MessageStatus.RECEIVED}
    status = event.history_status or MessageStatus.SENT
    fields: dict[str, Any] = {"status": status, "sent_at": event.timestamp}
    if status in (MessageStatus.DELIVERED, MessageStatus.READ):
        fields["delivered_at"] = event.timestamp
    if status == MessageStatus.READ:
        fields["read_at"] = event.timestamp
    if status == MessageStatus.FAILED:
        fields["failed_at"] = event.timestamp
    return fields


def business_app_message_apply(*, channel: Channel, event: BusinessAppMessage) -> bool:
    """Record a message that went through the business app, once (Meta's message id is unique per
    channel). The conversation's last activity only moves forward to the message's own time, so an
    imported old message never lifts a conversation above newer ones; a customer's message (from
    history) moves the 24-hour window's start forward the same way. A later copy of a history media
    message that now carries its media id completes the stored one."""
    from inbox.services import message_summary

    contact = app_contact_for(channel=channel, phone=event.customer_phone, user_id=event.customer_user_id)
    at = event.timestamp
    conversation, _created = Conversation.objects.get_or_create(
        contact=contact, channel=channel, defaults={"last_message_at": at}
    )
    origin = MessageOrigin.HISTORY if event.history else MessageOrigin.BUSINESS_APP
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                channel=channel,
                direction=event.direction,
                type=event.type,
                body=event.body,
                payload=event.payload,
                provider_message_id=event.provider_message_id,
                provider_media_id=event.media_ref,
                media_mime=event.media_mime[:100],
                media_filename=event.media_filename,
                reply_to_provider_id=event.reply_to,
                origin=origin,
                idempotency_key=f"app:{channel.pk}:{event.provider_message_id}"[:100],
                **_status_fields(event),
            )
    except IntegrityError:
        return _media_complete(channel, event)
    if event.history:  # its place in the timeline is when it was written, long ago
        Message.objects.filter(pk=message.pk).update(created_at=at)
        message.created_at = at
    else:  # live: it lands now (Meta's time has whole seconds only and would sort it above what came just before)
        at = message.created_at
    changes: dict[str, Any] = {"last_message_at": Greatest(F("last_message_at"), Value(at))}
    if event.direction == Direction.INBOUND:
        changes["last_inbound_at"] = Greatest(F("last_inbound_at"), Value(at))  # NULLs are ignored
    Conversation.objects.filter(pk=conversation.pk).update(**changes)
    if not event.history:
        # Staff see what the owner typed on the phone live; subscribers of message.created (bots, rules,
        # cadence exits, outgoing webhooks) never hear of it.
        events.announce(events.MESSAGE_FROM_BUSINESS_APP, _schema(), message_summary(message))
    return True


def _media_complete(channel: Channel, event: BusinessAppMessage) -> bool:
    if not event.media_ref:
        return False
    return bool(
        Message.objects.filter(
            channel=channel, provider_message_id=event.provider_message_id, provider_media_id="", media=""
        )
        .exclude(origin=MessageOrigin.PLATFORM)
        .update(
            provider_media_id=event.media_ref,
            type=event.type,
            media_mime=event.media_mime[:100],
            media_filename=event.media_filename,
        )
    )


def _schema() -> str:
    from django.db import connection

    return str(getattr(connection, "schema_name", "public"))


# --- history progress and decline ------------------------------------------------------------------


def _history_row(channel: Channel) -> HistoryImport:
    HistoryImport.objects.get_or_create(channel=channel)
    return HistoryImport.objects.select_for_update().get(channel=channel)


def history_progress_apply(*, channel: Channel, progress: HistoryProgress) -> bool:
    """A chunk arrived: phase and progress only move forward (chunks come in any order)."""
    row = _history_row(channel)
    row.chunks += 1
    if (progress.phase, progress.chunk_order) >= (row.phase, row.chunk_order):
        row.phase, row.chunk_order = progress.phase, progress.chunk_order
    row.progress = max(row.progress, progress.progress)
    if row.progress >= 100 and row.status == HistoryImportStatus.IMPORTING:
        row.status = HistoryImportStatus.COMPLETE
    row.save()
    return True


def history_declined_apply(*, channel: Channel, declined: HistoryDeclined) -> bool:
    """The business chose not to share its chat history: recorded and shown on the channel page."""
    row = _history_row(channel)
    if row.status == HistoryImportStatus.DECLINED and row.error_code == declined.code:
        return False
    row.status = HistoryImportStatus.DECLINED
    row.error_code, row.error_text = declined.code, (declined.details or declined.title)[:300]
    row.declined_at = timezone.now()
    row.save()
    logger.info("channel %s: the business declined to share its chat history (%s)", channel.pk, declined.code)
    return True


# --- the app's address book ------------------------------------------------------------------------


def app_contact_apply(*, channel: Channel, change: AppContactChange) -> bool:
    """An address-book change on the phone. `add` (added or edited) makes or updates the contact: the
    app's name is taken when the contact has no name of its own, or still has the one the app gave it
    last (a name the team typed is kept). `remove` is recorded on the entry; the contact, its
    conversations and everything else we hold stay. A change older than the one applied is ignored."""
    if change.action == "remove":
        return _app_contact_remove(channel, change)
    contact = app_contact_for(channel=channel, phone=change.phone, name=change.full_name, user_id=change.user_id)
    entry = BusinessAppContact.objects.select_for_update().filter(channel=channel, phone=contact.phone).first()
    if entry is not None and entry.changed_at > change.timestamp:
        return False
    previous_name = entry.full_name if entry is not None else ""
    if change.full_name and contact.name != change.full_name and contact.name in ("", previous_name):
        contact_update(contact=contact, name=change.full_name)
    BusinessAppContact.objects.update_or_create(
        channel=channel,
        phone=contact.phone,
        defaults={
            "contact": contact,
            "full_name": change.full_name,
            "first_name": change.first_name,
            "removed_at": None,
            "changed_at": change.timestamp,
        },
    )
    return True


def _app_contact_remove(channel: Channel, change: AppContactChange) -> bool:
    phone = phone_normalize(change.phone, from_provider=True)
    entry = BusinessAppContact.objects.select_for_update().filter(channel=channel, phone=phone).first()
    if entry is None:
        # Removed before we ever saw it added: recorded, and no contact is made for it.
        BusinessAppContact.objects.create(
            channel=channel, contact=None, phone=phone, removed_at=change.timestamp, changed_at=change.timestamp
        )
        return True
    if entry.changed_at > change.timestamp or entry.removed_at is not None:
        return False
    entry.removed_at = entry.changed_at = change.timestamp
    entry.save(update_fields=["removed_at", "changed_at"])
    return True


def _contact_erased(schema_name: str, payload: dict[str, Any]) -> None:
    """LGPD erasure: the app's address-book entries for that person (names, number) go too."""
    from django_tenants.utils import schema_context

    with schema_context(schema_name):
        BusinessAppContact.objects.filter(contact_id=payload["contact_id"]).delete()


def connect() -> None:
    events.subscribe(events.CONTACT_ERASED, _contact_erased)
