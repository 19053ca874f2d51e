"""Writes on channels, conversations and messages: the send service and the application of webhook events."""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, router, transaction
from django.db.models import F, ProtectedError, Value
from django.db.models.deletion import Collector
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import AuditAction
from core import events, ratelimit
from core.media import extension_for, filename_clean
from core.tasks import send_on_commit
from crm.models import ConsentStatus, Contact
from crm.selectors import contact_bsuid
from crm.services import MEDIUM_OF_KIND, consent_allows, consent_keyword, consent_record, contact_resolve
from inbox.models import (
    MEDIA_TYPES,
    Channel,
    ChannelOnboarding,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
    MessageType,
)
from inbox.providers import (
    ErrorKind,
    InboundMessage,
    OutboundMessage,
    ProviderError,
    StatusUpdate,
    provider_class,
    provider_for,
)
from intake.services import RouteTaken, route_register, route_remove
from tenants.selectors import tenant_current, tenant_is_active

logger = logging.getLogger(__name__)

MAX_SEND_ATTEMPTS = 8
# Statuses only move forward; failed is final and may follow anything short of delivered.
RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.UNKNOWN: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.READ: 4,
}
TIME_FIELD = {
    MessageStatus.SENT: "sent_at",
    MessageStatus.DELIVERED: "delivered_at",
    MessageStatus.READ: "read_at",
    MessageStatus.FAILED: "failed_at",
}


def _schema() -> str:
    return str(getattr(connection, "schema_name", "public"))


def message_summary(message: Message) -> dict[str, Any]:
    """What the browsers and subscribers get about a message."""
    return {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "contact_id": message.conversation.contact_id,
        "direction": message.direction,
        "type": message.type,
        "body": message.body,
        "status": message.status,
        "origin": message.origin,
        "error_code": message.error_code,
        "error_text": message.error_text,
        "created_at": message.created_at.isoformat() if message.created_at else None,
        "contact": message.conversation.contact.display_name,
    }


# --- channels ---------------------------------------------------------------------------------


def channel_create(
    *,
    kind: str,
    name: str,
    phone_number: str,
    credentials: dict[str, Any],
    waba_id: str = "",
    phone_number_id: str = "",
    rate_limit_per_s: int = 80,
    onboarding: str = ChannelOnboarding.MANUAL,
    coexistence: bool = False,
) -> Channel:
    """Connect a number: prove with the credentials given that its ids are theirs (the provider is asked),
    then register the routes its webhooks arrive by. A route another channel holds is never taken over.
    `onboarding` records how it was connected; `coexistence`, that the WhatsApp Business app stays on it."""
    from crm.services import phone_normalize

    channel = Channel(
        kind=kind,
        name=name,
        phone_number=phone_normalize(phone_number) if phone_number else "",  # QR channels learn it on scan
        credentials=credentials,
        waba_id=waba_id.strip(),
        phone_number_id=phone_number_id.strip(),
        rate_limit_per_s=rate_limit_per_s,
        onboarding=onboarding,
        coexistence=coexistence,
    )
    provider = provider_class(kind)
    provider.connect_verify(channel)  # network calls: outside the transaction
    tenant = tenant_current()
    try:
        with transaction.atomic():
            channel.save()
            for route_kind, external_id in provider.route_keys(channel):
                route_register(kind=route_kind, external_id=external_id, tenant_id=tenant.pk, channel_id=channel.pk)
            audit_record(
                action=AuditAction.CHANNEL_CREDENTIALS,
                target=channel,
                metadata={
                    "kind": kind,
                    "change": "created",
                    **({"onboarding": onboarding} if onboarding != ChannelOnboarding.MANUAL else {}),
                },
            )
    except RouteTaken as exc:
        logger.warning("channel connect refused: route %s is held by another channel", exc)
        raise ValidationError(
            _("This number is already connected to a workspace. Remove it there first, or contact support.")
        ) from exc
    return channel


@transaction.atomic
def channel_delete(*, channel: Channel) -> None:
    """Disconnect and delete. Raises ValidationError while campaigns or cadences still use the channel."""
    try:
        Collector(using=router.db_for_write(Channel)).collect([channel])  # what delete() would refuse, refused first
    except ProtectedError as exc:
        raise ValidationError(
            _("Campaigns or cadences still use this channel. Delete them, or point them at another channel, first.")
        ) from exc
    provider = provider_for(channel)
    provider.disconnect()  # e.g. log a QR-linked session out on both sides
    route_remove(kinds=provider.route_kinds(), tenant_id=tenant_current().pk, channel_id=channel.pk)
    channel.delete()


# --- conversations ----------------------------------------------------------------------------


def conversation_open(*, contact: Contact, channel: Channel) -> Conversation:
    conversation, _created = Conversation.objects.get_or_create(contact=contact, channel=channel)
    return conversation


def window_open(conversation: Conversation) -> bool:
    """Inside the provider's customer-service window (always, for kinds without one)?"""
    hours = provider_class(conversation.channel.kind).capabilities.session_window_hours
    if hours is None:
        return True
    last = conversation.last_inbound_at
    return last is not None and timezone.now() - last < timedelta(hours=hours)


# --- sending ----------------------------------------------------------------------------------


def message_send(
    *,
    conversation: Conversation,
    type: str = MessageType.TEXT,
    body: str = "",
    media: ContentFile | None = None,
    media_url: str = "",
    media_mime: str = "",
    media_filename: str = "",
    template_name: str = "",
    template_language: str = "",
    template_variables: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
    is_marketing: bool = False,
    author: Any = None,
    idempotency_key: str = "",
    consent_notice: bool = False,
    dispatch: bool = True,
) -> Message:
    """Queue a message and dispatch it after commit (``dispatch=False``: the caller sends it, as a campaign
    batch does with messages_dispatch_now). The same idempotency key never makes two messages.

    Raises ValidationError (codes ``opted_out``, ``window_closed``, ``unsupported``, ``tenant_suspended``)
    with a message the user can act on."""
    if idempotency_key:
        existing = Message.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _same_conversation(existing, conversation)
    if not tenant_is_active():
        raise ValidationError(
            _("This workspace is suspended: nothing is sent until it is reactivated."), code="tenant_suspended"
        )
    channel = conversation.channel
    caps = provider_class(channel.kind).capabilities
    medium = MEDIUM_OF_KIND[channel.kind]
    if not consent_notice and not consent_allows(contact=conversation.contact, medium=medium, marketing=is_marketing):
        raise ValidationError(
            _("%(contact)s opted out of %(medium)s messages.")
            % {"contact": conversation.contact.display_name, "medium": medium.label},
            code="opted_out",
        )
    _address_check(conversation, caps.user_ids)
    if type == MessageType.TEMPLATE and not caps.templates:
        raise ValidationError(_("This channel does not support templates."), code="unsupported")
    if type in MEDIA_TYPES and type not in caps.media_kinds:
        raise ValidationError(_("This channel cannot send %(type)s.") % {"type": type}, code="unsupported")
    if type != MessageType.TEMPLATE and not window_open(conversation):
        raise ValidationError(
            _("The 24-hour window to reply freely is closed. Send an approved template to restart the conversation."),
            code="window_closed",
        )
    now = timezone.now()
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                channel=channel,
                direction=Direction.OUTBOUND,
                type=type,
                body=body,
                media_url=media_url,
                media_mime=media_mime,
                media_filename=media_filename or (media.name if media else "") or "",
                template_name=template_name,
                template_language=template_language,
                template_variables=template_variables or {},
                payload=payload or {},
                is_marketing=is_marketing,
                status=MessageStatus.QUEUED,
                queued_at=now,
                author=author if getattr(author, "is_authenticated", False) else None,
                idempotency_key=idempotency_key or uuid.uuid4().hex,
            )
            if media is not None:
                message.media.save(media.name or "file", media, save=True)
            Conversation.objects.filter(pk=conversation.pk).update(last_message_at=now, unread_count=0)
    except IntegrityError:  # a concurrent send with the same key won
        return _same_conversation(Message.objects.get(idempotency_key=idempotency_key), conversation)

    if dispatch:
        from inbox.tasks import dispatch_message

        send_on_commit(dispatch_message, message.pk, queue="dispatch")
    events.announce(events.MESSAGE_CREATED, _schema(), message_summary(message))
    return message


def _address_check(conversation: Conversation, user_ids: bool) -> None:
    """A contact without a phone is reachable only where the provider takes a user id (WhatsApp Cloud,
    by the BSUID of this channel's portfolio): elsewhere (SMS, a QR-linked number) it is skipped, saying why."""
    contact = conversation.contact
    if contact.phone and not contact.phone.startswith("erased:"):
        return
    if user_ids:
        from inbox.selectors import channel_identity_scope

        if contact_bsuid(contact, channel_identity_scope(conversation.channel)):
            return
        raise ValidationError(
            _("%(contact)s has no phone number and no WhatsApp user id for this number's business portfolio.")
            % {"contact": contact.display_name},
            code="no_address",
        )
    raise ValidationError(
        _("%(contact)s has no phone number: %(channel)s can only reach a phone number.")
        % {"contact": contact.display_name, "channel": conversation.channel.get_kind_display()},
        code="no_address",
    )


def _same_conversation(existing: Message, conversation: Conversation) -> Message:
    """A key reused in another conversation names nothing here: refuse it rather than hand back (and so
    reveal) a message of a conversation the caller may not see."""
    if existing.conversation_id != conversation.pk:
        raise ValidationError(
            _("This idempotency key was already used for another conversation; use a new key."),
            code="idempotency_conflict",
        )
    return existing


def messages_dispatch_now(*, message_ids: list[int], threads: int = 8) -> None:
    """Send a batch of queued messages from here, several requests at once, each thread on its own
    database connection. A message that must wait (rate limit, retryable error) goes to the dispatch
    queue with its delay, like any other."""
    from inbox.tasks import dispatch_message

    schema, tenant = _schema(), getattr(connection, "tenant", None)

    def one(message_id: int) -> tuple[int, float | None]:
        connection.set_tenant(tenant)  # type: ignore[attr-defined]
        try:
            return message_id, message_dispatch(message_id=message_id)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(message_ids)))) as pool:
        for message_id, delay in pool.map(one, message_ids):
            if delay is not None:
                dispatch_message.apply_async(
                    args=(message_id,), countdown=delay, queue="dispatch", headers={"_schema_name": schema}
                )


def _outbound_of(message: Message) -> OutboundMessage:
    from inbox.selectors import channel_identity_scope

    media_bytes = None
    if message.media:
        with message.media.open("rb") as fh:
            media_bytes = fh.read()
    contact = message.conversation.contact
    phone = contact.phone if contact.phone and not contact.phone.startswith("erased:") else ""
    # To the phone when known (Meta recommends it); else to the BSUID of this channel's portfolio.
    recipient = "" if phone else contact_bsuid(contact, channel_identity_scope(message.channel))
    return OutboundMessage(
        to=phone,
        recipient=recipient,
        type=message.type,
        body=message.body,
        media_url=message.media_url,
        media_bytes=media_bytes,
        media_mime=message.media_mime,
        media_filename=message.media_filename,
        template_name=message.template_name,
        template_language=message.template_language,
        template_variables=message.template_variables,
        payload=message.payload,
        reply_to=message.reply_to_provider_id,
        tracking=str(message.pk),
    )


def _backoff(attempt: int) -> float:
    return float(min(300, 2 ** min(attempt, 8)))


def message_dispatch(*, message_id: int) -> float | None:
    """Send one queued message. Returns a delay when it must be tried again, else None.

    The claim (queued -> sending) is a conditional UPDATE, so two workers never send the same message;
    a send whose outcome is unknown is marked so and never retried blindly. A suspended tenant's message
    stays queued, untouched, until messages_release runs on reactivation."""
    if not tenant_is_active():
        return None
    claimed = Message.objects.filter(pk=message_id, status=MessageStatus.QUEUED).update(
        status=MessageStatus.SENDING, attempts=F("attempts") + 1, claimed_at=timezone.now()
    )
    if claimed != 1:
        return None
    message = Message.objects.select_related("channel", "conversation__contact").get(pk=message_id)
    channel = message.channel
    wait = ratelimit.take(f"{_schema()}:channel:{channel.pk}", rate_per_s=channel.rate_limit_per_s)
    if wait > 0:
        Message.objects.filter(pk=message_id, status=MessageStatus.SENDING).update(
            status=MessageStatus.QUEUED, attempts=F("attempts") - 1
        )
        return wait
    try:
        result = provider_for(channel).send(_outbound_of(message))
    except ProviderError as exc:
        return _dispatch_failed(message, exc)
    now = timezone.now()
    Message.objects.filter(pk=message_id, status=MessageStatus.SENDING).update(
        status=MessageStatus.SENT, sent_at=now, provider_message_id=result.provider_message_id
    )
    events.announce(
        events.MESSAGE_STATUS,
        _schema(),
        {"id": message_id, "conversation_id": message.conversation_id, "status": "sent"},
    )
    return None


def messages_release() -> int:
    """After a suspension: dispatch every outbound message still queued (a duplicate dispatch is harmless,
    the claim is conditional). Returns how many were handed to the dispatch queue."""
    from inbox.tasks import dispatch_message

    ids = list(
        Message.objects.filter(direction=Direction.OUTBOUND, status=MessageStatus.QUEUED).values_list("pk", flat=True)
    )
    for message_id in ids:
        send_on_commit(dispatch_message, message_id, queue="dispatch")
    return len(ids)


def _dispatch_failed(message: Message, exc: ProviderError) -> float | None:
    if exc.kind == ErrorKind.RETRYABLE and message.attempts < MAX_SEND_ATTEMPTS:
        Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
            status=MessageStatus.QUEUED, error_code=exc.code, error_text=exc.message[:500]
        )
        return exc.retry_after or _backoff(message.attempts)
    status = MessageStatus.UNKNOWN if exc.kind == ErrorKind.UNKNOWN else MessageStatus.FAILED
    Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
        status=status,
        failed_at=timezone.now() if status == MessageStatus.FAILED else None,
        error_code=exc.code,
        error_text=exc.message[:500],
    )
    if exc.opted_out:
        consent_record(
            contact=message.conversation.contact,
            medium=MEDIUM_OF_KIND[message.channel.kind],
            status=ConsentStatus.OPTED_OUT if exc.opted_out == "all" else ConsentStatus.MARKETING_OPTED_OUT,
            source=f"provider-error:{exc.code}",
        )
    logger.warning("message %s %s: %s", message.pk, status, exc)
    events.announce(
        events.MESSAGE_STATUS,
        _schema(),
        {
            "id": message.pk,
            "conversation_id": message.conversation_id,
            "status": status,
            "error_code": exc.code,
            "error_text": exc.message,
        },
    )
    return None


def sending_sweep(*, older_than: timedelta | None = None) -> int:
    """A message left in 'sending' (a worker died mid-call) may or may not have gone out: mark it unknown.
    Stuck is measured from the claim, never from the queueing (a message may wait long before it is sent)."""
    cutoff = timezone.now() - (older_than or timedelta(seconds=settings.SENDING_STUCK_AFTER_S))
    return Message.objects.filter(status=MessageStatus.SENDING, claimed_at__lt=cutoff).update(
        status=MessageStatus.UNKNOWN, error_text="worker stopped during the provider call"
    )


# --- applying webhook events ----------------------------------------------------------------------


def status_apply(*, channel: Channel, update: StatusUpdate) -> bool | None:
    """Move a message's status forward. None when no message has that provider id (yet); False when the
    update is stale or a duplicate; True when it changed something. One SELECT and one UPDATE."""
    found = (
        Message.objects.filter(channel=channel, provider_message_id=update.provider_message_id)
        .values("id", "conversation_id", "conversation__contact_id")
        .first()
    )
    if found is None:
        return None
    if (update.recipient_user_id or update.recipient_parent_user_id) and update.status in ("sent", "delivered"):
        # Learnt from the first statuses only (each carries it): a read adds no write to this hot path.
        _recipient_ids_learn(channel, found["conversation__contact_id"], update)
    new = update.status
    changes: dict[str, Any]
    if new == MessageStatus.FAILED:
        allowed = [MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.UNKNOWN, MessageStatus.SENT]
        changes = {
            "failed_at": update.timestamp,
            "error_code": update.error_code,
            "error_text": update.error_text[:500],
        }
    elif new in RANK:
        allowed = [s for s, rank in RANK.items() if rank < RANK[new]]  # type: ignore[index]
        changes = {TIME_FIELD[new]: update.timestamp}  # type: ignore[index]
        # Skipped steps still get their time (a read implies delivered and sent).
        for step in (MessageStatus.SENT, MessageStatus.DELIVERED):
            if RANK[step] < RANK[new]:  # type: ignore[index]
                changes[TIME_FIELD[step]] = Coalesce(TIME_FIELD[step], Value(update.timestamp))
    else:
        return False
    if not Message.objects.filter(pk=found["id"], status__in=allowed).update(status=new, **changes):
        return False
    payload = {
        "id": found["id"],
        "conversation_id": found["conversation_id"],
        "status": new,
        "error_code": update.error_code,
        "error_text": update.error_text,
    }
    events.announce(events.MESSAGE_STATUS, _schema(), payload)
    return True


def _recipient_ids_learn(channel: Channel, contact_id: int, update: StatusUpdate) -> None:
    """A status names the recipient's BSUID (`recipient_user_id`): keep it on the contact the message
    went to, so a later message from that user without a phone finds them. One INSERT that does nothing
    when it is known (or, for a different contact, left to the next inbound message to merge)."""
    from crm.models import ContactIdentity, IdentityKind
    from crm.services import PARENT_BSUID_RE, bsuid_valid
    from inbox.selectors import channel_identity_scope

    rows = []
    if update.recipient_user_id and bsuid_valid(update.recipient_user_id):
        rows.append(
            ContactIdentity(
                contact_id=contact_id,
                kind=IdentityKind.WHATSAPP_BSUID,
                scope=channel_identity_scope(channel),
                value=update.recipient_user_id,
            )
        )
    if update.recipient_parent_user_id and PARENT_BSUID_RE.match(update.recipient_parent_user_id):
        rows.append(
            ContactIdentity(
                contact_id=contact_id,
                kind=IdentityKind.WHATSAPP_PARENT_BSUID,
                scope="",
                value=update.recipient_parent_user_id,
            )
        )
    ContactIdentity.objects.bulk_create(rows, ignore_conflicts=True)


def inbound_contact(*, channel: Channel, event: InboundMessage) -> Contact:
    """The contact an inbound message is from, by every identity it carries (crm.services.contact_resolve)."""
    from inbox.selectors import channel_identity_scope

    contact = contact_resolve(
        scope=channel_identity_scope(channel),
        phone=event.from_phone,
        bsuid=event.from_user_id,
        parent_bsuid=event.from_parent_user_id,
        username=event.username,
        profile_name=event.profile_name,
    )
    if contact is None:
        raise ValidationError(_("The message names no sender."), code="no_sender")
    return contact


def inbound_apply(*, channel: Channel, event: InboundMessage) -> Message | None:
    """Record an inbound message once; None for a duplicate delivery."""
    contact = inbound_contact(channel=channel, event=event)
    conversation = conversation_open(contact=contact, channel=channel)
    if conversation.assignee_id is None and conversation.last_inbound_at is None:
        from inbox.selectors import inbox_settings

        if inbox_settings().auto_assign:
            conversation_assign_round_robin(conversation=conversation)
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                channel=channel,
                direction=Direction.INBOUND,
                type=event.type,
                body=event.body,
                payload=event.payload,
                provider_message_id=event.provider_message_id,
                provider_media_id=event.media_ref,
                media_mime=event.media_mime[:100],
                media_filename=filename_clean(event.media_filename),
                reply_to_provider_id=event.reply_to,
                status=MessageStatus.RECEIVED,
                idempotency_key=f"in:{channel.pk}:{event.provider_message_id}",
            )
    except IntegrityError:
        return None
    Conversation.objects.filter(pk=conversation.pk).update(
        last_message_at=event.timestamp,
        last_inbound_at=event.timestamp,
        unread_count=F("unread_count") + 1,
        status=ConversationStatus.OPEN,
    )
    conversation.last_inbound_at = event.timestamp
    if event.media_ref:
        from inbox.tasks import media_fetch

        send_on_commit(media_fetch, message.pk, queue="ingest")
    events.announce(events.MESSAGE_CREATED, _schema(), message_summary(message))
    if event.type == MessageType.TEXT:
        _apply_consent_keyword(conversation, event.body, event.timestamp)
    return message


def _apply_consent_keyword(conversation: Conversation, text: str, at: datetime) -> None:
    medium = MEDIUM_OF_KIND[conversation.channel.kind]
    word = consent_keyword(text, medium)
    if word is None:
        return
    status = ConsentStatus.OPTED_OUT if word == "out" else ConsentStatus.OPTED_IN
    consent = consent_record(
        contact=conversation.contact, medium=medium, status=status, source=f"keyword:{text.strip()[:40]}", at=at
    )
    if consent.status != status:
        return  # a keyword older than the contact's latest choice (a late delivery) changes nothing
    event = events.CONTACT_OPTED_OUT if word == "out" else events.CONTACT_OPTED_IN
    events.announce(event, _schema(), {"contact_id": conversation.contact_id, "medium": medium})
    language = getattr(getattr(connection, "tenant", None), "language", "pt-br")
    with translation.override(language):
        if word == "out":
            reply = _("You will no longer receive messages from us here. Reply START to subscribe again.")
        else:
            reply = _("You are subscribed again. Reply STOP to unsubscribe.")
    message_send(conversation=conversation, body=reply, consent_notice=True)


def media_store(*, message_id: int) -> None:
    """Download an inbound message's media from the provider into our storage."""
    message = Message.objects.select_related("channel").get(pk=message_id)
    if message.media or not message.provider_media_id:
        return
    content, mime = provider_for(message.channel).fetch_media(message.provider_media_id)
    # The stored name decides how the file is served (core.media.served_type): the customer's own name
    # only for documents (always downloads), our name with the type's extension for media shown inline.
    customer_name = filename_clean(message.media_filename)
    own_name = f"{message.type}-{message.pk}{extension_for(mime or message.media_mime)}"
    name = customer_name if message.type == MessageType.DOCUMENT and customer_name else own_name
    message.media.save(name, ContentFile(content), save=False)
    message.media_mime = mime or message.media_mime
    message.save(update_fields=["media", "media_mime"])
    events.announce(
        events.MESSAGE_STATUS,
        _schema(),
        {"id": message.pk, "conversation_id": message.conversation_id, "status": message.status, "media": True},
    )


def conversation_mark_read(*, conversation: Conversation) -> None:
    """The staff opened the conversation: clear unread and send read receipts for what came in."""
    Conversation.objects.filter(pk=conversation.pk).update(unread_count=0)
    last_inbound = (
        Message.objects.filter(conversation=conversation, direction=Direction.INBOUND)
        .exclude(provider_message_id=None)
        .order_by("-created_at")
        .first()
    )
    if last_inbound is not None:
        from inbox.tasks import mark_read

        send_on_commit(mark_read, last_inbound.pk, queue="dispatch")


# --- team work: assignment, status, notes ---------------------------------------------------------


def conversation_assign(*, conversation: Conversation, assignee: Any) -> None:
    """Assign to a member (or None to unassign)."""
    from inbox.models import AgentState

    Conversation.objects.filter(pk=conversation.pk).update(assignee=assignee)
    conversation.assignee = assignee
    if assignee is not None:
        AgentState.objects.update_or_create(user=assignee, defaults={"last_assigned_at": timezone.now()})
    events.announce(
        events.CONVERSATION_UPDATED,
        _schema(),
        {"conversation_id": conversation.pk, "assignee_id": getattr(assignee, "pk", None)},
    )


def conversation_assign_round_robin(*, conversation: Conversation) -> Any:
    """Give the conversation to the available member who was assigned longest ago (never first)."""
    from accounts.models import User
    from inbox.models import AgentState

    tenant = tenant_current()
    members = list(User.objects.filter(memberships__tenant=tenant, is_active=True))
    states = {s.user_id: s for s in AgentState.objects.filter(user__in=members)}
    candidates = [m for m in members if states.get(m.pk) is None or states[m.pk].available]
    if not candidates:
        return None
    epoch = timezone.now() - timedelta(days=36500)
    chosen = min(candidates, key=lambda m: (states[m.pk].last_assigned_at or epoch) if m.pk in states else epoch)
    conversation_assign(conversation=conversation, assignee=chosen)
    return chosen


def conversation_set_status(*, conversation: Conversation, status: str) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(status=status)
    conversation.status = status
    events.announce(events.CONVERSATION_UPDATED, _schema(), {"conversation_id": conversation.pk, "status": status})


def note_add(*, conversation: Conversation, body: str, author: Any) -> Message:
    """An internal note: in the timeline for the team, never sent to the contact."""
    note = Message.objects.create(
        conversation=conversation,
        channel=conversation.channel,
        direction=Direction.NOTE,
        body=body,
        status=MessageStatus.RECEIVED,
        author=author,
        idempotency_key=f"note:{uuid.uuid4().hex}",
    )
    events.announce(events.MESSAGE_CREATED, _schema(), message_summary(note))
    return note
