"""Writes on channels, conversations and messages: the send service and the application of webhook events."""

from __future__ import annotations

import logging
import uuid
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
from core import events
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
    InboundMessage,
    StatusUpdate,
    provider_class,
    provider_for,
)
from intake.services import RouteTaken, route_register, route_remove
from tenants import usage
from tenants.models import Feature, Metric
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

    if kind == "whatsapp_web":
        usage.feature_check(Feature.QR)
    usage.count_check(metric=Metric.CHANNELS, existing=Channel.objects.count())
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
            # counted again under the limit's lock (the first check, before the provider was asked, is
            # the quick refusal): two numbers connected at once cannot pass the plan's channels
            usage.count_check(metric=Metric.CHANNELS, existing=Channel.objects.count, lock=True)
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
    conversation, created = Conversation.objects.get_or_create(contact=contact, channel=channel)
    if created:
        events.announce(
            events.CONVERSATION_CREATED,
            _schema(),
            {"conversation_id": conversation.pk, "contact_id": contact.pk, "channel_id": channel.pk},
        )
    return conversation


def window_open(conversation: Conversation) -> bool:
    """Inside the provider's customer-service window (always, for kinds without one)?"""
    hours = provider_class(conversation.channel.kind).capabilities.session_window_hours
    if hours is None:
        return True
    last = conversation.last_inbound_at
    return last is not None and timezone.now() - last < timedelta(hours=hours)


# --- plan limits on sending ------------------------------------------------------------------------


def outbound_pending(*, channel_kind: str) -> int:
    """Outbound messages of this channel kind admitted and not yet sent (queued, held or in flight):
    they count against the month's limit before they are metered, so nothing admitted is lost."""
    return Message.objects.filter(
        direction=Direction.OUTBOUND,
        status__in=[MessageStatus.QUEUED, MessageStatus.SENDING],
        channel__kind=channel_kind,
    ).count()


def message_room(*, channel_kind: str, lock: bool = False) -> int | None:
    """How many more messages of this channel kind the plan lets through this month (None: unlimited).
    ``lock``: hold the tenant's lock on this limit until the surrounding transaction ends (the caller then
    writes the messages it admits in that transaction: concurrent senders cannot pass the limit)."""
    metric = usage.MESSAGES_OF_KIND.get(channel_kind)
    if metric is None:
        return None
    limit = usage.limit_of(metric=metric).limit
    if limit is None:
        return None
    if lock:
        usage.limit_lock(metric=metric)
    return max(0, limit - usage.usage_month(metric=metric) - outbound_pending(channel_kind=channel_kind))


def message_limit_refusal(*, channel_kind: str) -> str:
    """What a refused send says (the active language)."""
    metric = usage.MESSAGES_OF_KIND[channel_kind]
    return usage.limit_refusal(metric, usage.limit_of(metric=metric).limit or 0)


def message_limit_check(*, channel_kind: str, amount: int = 1, lock: bool = False) -> None:
    """Refuse (LimitReached, code ``usage_limit``) a send that would pass the month's message limit."""
    room = message_room(channel_kind=channel_kind, lock=lock)
    if room is not None and room < amount:
        raise usage.LimitReached(message_limit_refusal(channel_kind=channel_kind), code=usage.LIMIT_CODE)


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
    hold_quiet_hours: bool = False,
) -> Message:
    """Queue a message for the dispatcher and wake the channel's runner after commit (``dispatch=False``:
    queued all the same, the caller wakes or runs the sender). The same idempotency key never makes two
    messages. ``hold_quiet_hours``: an automated send, held at send time while quiet hours last.

    Raises ValidationError (codes ``opted_out``, ``window_closed``, ``unsupported``, ``tenant_suspended``,
    ``usage_limit``) with a message the user can act on."""
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
    address_check(conversation.contact, conversation.channel, caps.user_ids)
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
            # the plan's monthly messages of this kind, checked under the limit's lock until this commits
            message_limit_check(channel_kind=channel.kind, lock=True)
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
                next_attempt_at=now,
                hold_quiet_hours=hold_quiet_hours,
                author=author if getattr(author, "is_authenticated", False) else None,
                idempotency_key=idempotency_key or uuid.uuid4().hex,
            )
            if media is not None:
                message.media.save(media.name or "file", media, save=True)
            Conversation.objects.filter(pk=conversation.pk).update(last_message_at=now, unread_count=0)
    except IntegrityError:  # a concurrent send with the same key won
        return _same_conversation(Message.objects.get(idempotency_key=idempotency_key), conversation)

    if dispatch:
        from inbox.dispatcher import kick_on_commit

        kick_on_commit(channel.pk)  # the channel's runner takes it from the queue (no task per message)
    events.announce(events.MESSAGE_CREATED, _schema(), message_summary(message))
    return message


def address_check(contact: Contact, channel: Channel, user_ids: bool) -> None:
    """A contact without a phone is reachable only where the provider takes a user id (WhatsApp Cloud,
    by the BSUID of this channel's portfolio): elsewhere (SMS, a QR-linked number) it is refused, saying why
    (ValidationError, code ``no_address``; a campaign skips that recipient with the same words)."""
    if contact.phone and not contact.phone.startswith("erased:"):
        return
    if user_ids:
        from inbox.selectors import channel_identity_scope

        if contact_bsuid(contact, channel_identity_scope(channel)):
            return
        raise ValidationError(
            _("%(contact)s has no phone number and no WhatsApp user id for this number's business portfolio.")
            % {"contact": contact.display_name},
            code="no_address",
        )
    raise ValidationError(
        _("%(contact)s has no phone number: %(channel)s can only reach a phone number.")
        % {"contact": contact.display_name, "channel": channel.get_kind_display()},
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


def message_dispatch(*, message_id: int) -> float | None:
    """Send one queued message from here, through the dispatcher's own claim, send and record (what the
    runners do for batches). Always None: a retry is the row's next due time, never a countdown task."""
    from inbox.dispatcher import dispatch_one

    dispatch_one(message_id=message_id)
    return None


def messages_release() -> int:
    """After a suspension: every channel with queued outbound messages gets a runner (the messages wait
    as rows, with their due time). Returns how many channels were woken."""
    from inbox.dispatcher import kick

    channel_ids = list(
        Message.objects.filter(direction=Direction.OUTBOUND, status=MessageStatus.QUEUED)
        .order_by()
        .values_list("channel_id", flat=True)
        .distinct()
    )
    for channel_id in channel_ids:
        transaction.on_commit(lambda c=channel_id: kick(c))  # type: ignore[misc]
    return len(channel_ids)


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
    from inbox.dispatcher import statuses_changed

    statuses_changed([(found["id"], new, update.error_code)])
    return True


def _status_step(current: str, update: StatusUpdate) -> dict[str, Any] | None:
    """status_apply's rule for one update on a message in `current`: the fields to set, or None (stale)."""
    new = update.status
    if new == MessageStatus.FAILED:
        if current not in (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.UNKNOWN, MessageStatus.SENT):
            return None
        return {
            "status": new,
            "failed_at": update.timestamp,
            "error_code": update.error_code,
            "error_text": update.error_text[:500],
        }
    if new not in RANK or current not in RANK or RANK[current] >= RANK[new]:  # type: ignore[index]
        return None
    changes: dict[str, Any] = {"status": new, TIME_FIELD[new]: update.timestamp}  # type: ignore[index]
    for step in (MessageStatus.SENT, MessageStatus.DELIVERED):  # skipped steps still get their time
        if RANK[step] < RANK[new]:  # type: ignore[index]
            changes.setdefault("fill_" + TIME_FIELD[step], update.timestamp)
    return changes


def statuses_apply(*, updates: list[tuple[Channel, StatusUpdate]]) -> list[bool | None]:
    """status_apply for many updates at once (the ingest drain's batch): one SELECT of the messages, the
    updates folded per message in order with the same forward-only rule, one UPDATE ... FROM VALUES whose
    rows change only if the message is still in the status read (a row that moved meanwhile goes through
    status_apply one by one). Returns status_apply's answer per update (None: no such message yet)."""
    if not updates:
        return []
    pids = list({u.provider_message_id for _c, u in updates})
    channel_ids = list({c.pk for c, _u in updates})
    found: dict[tuple[int, str], dict[str, Any]] = {}
    # By channel and provider id: the order of the unique index (a provider id alone scanned every message).
    rows = Message.objects.filter(channel_id__any=channel_ids, provider_message_id__any=pids).order_by()
    for read in rows.values(
        "id", "channel_id", "provider_message_id", "conversation_id", "conversation__contact_id", "status"
    ):
        found[(read["channel_id"], str(read["provider_message_id"]))] = dict(read)
    results: list[bool | None] = []
    folded: dict[int, dict[str, Any]] = {}  # message id -> {"row", "status", fields...}
    for channel, update in updates:
        row = found.get((channel.pk, update.provider_message_id))
        if row is None:
            results.append(None)
            continue
        if (update.recipient_user_id or update.recipient_parent_user_id) and update.status in ("sent", "delivered"):
            _recipient_ids_learn(channel, row["conversation__contact_id"], update)
        state = folded.setdefault(row["id"], {"row": row, "from": row["status"], "status": row["status"]})
        changes = _status_step(state["status"], update)
        if changes is None:
            results.append(False)
            continue
        for key, value in changes.items():
            if key.startswith("fill_"):
                state.setdefault(key, value)  # the earliest implied time (status_apply's Coalesce)
            else:
                state[key] = value
        results.append(True)
    changed = [st for st in folded.values() if st["status"] != st["from"]]
    if not changed:
        return results
    cols = ["sent_at", "delivered_at", "read_at", "failed_at", "fill_sent_at", "fill_delivered_at"]
    arrays: list[list[Any]] = [
        [st["row"]["id"] for st in changed],
        [st["from"] for st in changed],
        [st["status"] for st in changed],
        *[[st.get(c) for st in changed] for c in cols],
        [st.get("error_code") for st in changed],
        [st.get("error_text") for st in changed],
    ]
    with connection.cursor() as cursor:  # one array per column: the same statement text for every batch
        cursor.execute(
            f"UPDATE {Message._meta.db_table} AS m SET status = v.status, "  # noqa: S608 (names ours, values params)
            "sent_at = COALESCE(v.sent_at, m.sent_at, v.fill_sent), "
            "delivered_at = COALESCE(v.delivered_at, m.delivered_at, v.fill_delivered), "
            "read_at = COALESCE(v.read_at, m.read_at), failed_at = COALESCE(v.failed_at, m.failed_at), "
            "error_code = COALESCE(v.code, m.error_code), error_text = COALESCE(v.text, m.error_text) "
            "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[], "
            "%s::timestamptz[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[], %s::text[], %s::text[]) "
            "AS v(id, old, status, sent_at, delivered_at, read_at, failed_at, fill_sent, fill_delivered, code, text) "
            "WHERE m.id = v.id AND m.status = v.old RETURNING m.id",
            arrays,
        )
        written = {r[0] for r in cursor.fetchall()}
    moved = {st["row"]["id"] for st in changed} - written
    if moved:  # changed under us (a send being recorded): one by one, as status_apply does
        for i, (channel, update) in enumerate(updates):
            row = found.get((channel.pk, update.provider_message_id))
            if row is not None and row["id"] in moved:
                results[i] = status_apply(channel=channel, update=update)
    done = [st for st in changed if st["row"]["id"] in written]
    payloads = [
        {
            "id": st["row"]["id"],
            "conversation_id": st["row"]["conversation_id"],
            "status": st["status"],
            "error_code": st.get("error_code") or "",
            "error_text": st.get("error_text") or "",
        }
        for st in done
    ]
    events.announce_many(events.MESSAGE_STATUS, _schema(), payloads)
    from inbox.dispatcher import statuses_changed

    statuses_changed([(st["row"]["id"], st["status"], st.get("error_code") or "") for st in done])
    return results


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


# timeline lines whose change also announces conversation.updated (the open pane is re-rendered)
PANE_REFRESHING_KINDS = frozenset({"assigned", "unassigned", "resolved", "reopened", "pending"})


def conversation_event_record(
    *, conversation: Conversation | int, kind: str, actor: Any = None, detail: dict[str, Any] | None = None
) -> Any:
    """Note in the timeline that something happened to the conversation (shown inline, never sent)."""
    from inbox.models import ConversationEvent

    event = ConversationEvent.objects.create(
        conversation_id=conversation if isinstance(conversation, int) else conversation.pk,
        kind=kind,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        detail=detail or {},
    )
    # An open timeline shows it at once, whoever or whatever caused it (a move on the board, the AI).
    # Assignment and status changes announce conversation.updated, which re-renders the open pane with
    # this line in it: pushing the line too would do that work twice (and race the pane's own swap).
    if kind not in PANE_REFRESHING_KINDS:
        events.announce(
            events.CONVERSATION_EVENT,
            _schema(),
            {"conversation_id": event.conversation_id, "id": event.pk, "kind": kind},
        )
    return event


def conversation_assign(*, conversation: Conversation, assignee: Any, actor: Any = None) -> None:
    """Assign to a member (or None to unassign); the timeline says who did it."""
    from inbox.models import AgentState, ConversationEventKind

    Conversation.objects.filter(pk=conversation.pk).update(assignee=assignee)
    previous = conversation.assignee_id
    conversation.assignee = assignee
    if previous != getattr(assignee, "pk", None):
        conversation_event_record(
            conversation=conversation,
            kind=ConversationEventKind.ASSIGNED if assignee is not None else ConversationEventKind.UNASSIGNED,
            actor=actor,
            detail={"assignee": assignee.get_full_name() or assignee.email} if assignee is not None else {},
        )
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


def conversation_set_status(*, conversation: Conversation, status: str, actor: Any = None) -> None:
    from inbox.models import ConversationEventKind

    Conversation.objects.filter(pk=conversation.pk).update(status=status)
    previous = conversation.status
    conversation.status = status
    if previous != status:
        kinds: dict[str, str] = {
            ConversationStatus.RESOLVED: ConversationEventKind.RESOLVED,
            ConversationStatus.PENDING: ConversationEventKind.PENDING,
        }
        kind = kinds.get(status, ConversationEventKind.REOPENED)
        conversation_event_record(conversation=conversation, kind=kind, actor=actor)
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
