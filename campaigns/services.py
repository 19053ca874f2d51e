"""Writes on campaigns and cadences. Every send goes through ``inbox.services.message_send`` with an
idempotency key made of the campaign (or enrollment) and the contact (or step), so a batch or a tick that
runs twice never sends anything twice."""

from __future__ import annotations

import datetime
import logging
import re
import zoneinfo
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import (
    RECIPIENT_RANK,
    Cadence,
    CadenceStep,
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    ContentKind,
    Enrollment,
    EnrollmentStatus,
    OutreachContent,
    QuietHours,
    RecipientStatus,
)
from core import events
from core.tasks import send_on_commit
from crm.models import ConsentStatus, Contact, ContactConsent
from crm.selectors import contacts_filter
from crm.services import MEDIUM_OF_KIND
from inbox.models import Channel, Conversation, Direction, Message, MessageStatus, MessageType
from inbox.providers import provider_class
from inbox.services import conversation_open, message_send
from tenants.selectors import tenant_is_active

logger = logging.getLogger(__name__)

PLACEHOLDER = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")
SLOT = re.compile(r"\{\{(\d{1,3})\}\}")
MAX_VALUE = 1000  # one filled-in value (a contact's data is the customer's: it never grows a message unbounded)
# Codes of message_send's refusals that concern one contact, not the campaign: skip that contact.
SKIP_CODES = {"opted_out", "window_closed", "no_address"}
MAX_BATCH = 500


def _schema() -> str:
    return str(getattr(connection, "schema_name", "public"))


# --- content --------------------------------------------------------------------------------------


def content_render(text: str, contact: Contact) -> str:
    """Fill {{name}}, {{first_name}}, {{phone}}, {{email}} and {{<custom field key>}} from the contact.
    An unknown placeholder becomes empty rather than reaching the customer as braces.

    Values are inserted as plain text in one pass: a value that itself looks like a placeholder stays as
    it is, nothing is evaluated, and each value is cut at MAX_VALUE characters."""
    name = str(contact.name or contact.wa_profile_name or "")
    fields = contact.custom_fields if isinstance(contact.custom_fields, dict) else {}
    known = {
        "name": name,
        "first_name": name.split()[0] if name.strip() else "",
        "phone": str(contact.phone or ""),
        "email": str(contact.email or ""),
    }

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        found = known[key] if key in known else fields.get(key, "")
        return ("" if found is None else str(found))[:MAX_VALUE]

    return PLACEHOLDER.sub(value, text)


def template_preview_fill(body: str, variables: list[str]) -> str:
    """The template body with its {{1}}, {{2}}… slots filled in one pass (a variable that contains
    "{{2}}" is shown as typed, never filled again); slots without a variable stay visible."""

    def slot(match: re.Match[str]) -> str:
        index = int(match.group(1))
        return variables[index - 1][:MAX_VALUE] if 1 <= index <= len(variables) else match.group(0)

    return SLOT.sub(slot, body)


def content_validate(*, kind: str, body: str, template_name: str, channel: Channel) -> None:
    """Raise a ValidationError (keyed by field) when this content cannot go out on this channel."""
    capabilities = provider_class(channel.kind).capabilities
    if kind == ContentKind.TEMPLATE:
        if not capabilities.templates:
            raise ValidationError({"kind": _("This channel does not support templates.")})
        if not template_name:
            raise ValidationError({"template_name": _("Choose an approved template.")})
    elif not body.strip():
        raise ValidationError({"body": _("Write the message.")})
    elif len(body) > capabilities.max_body:
        raise ValidationError({"body": _("The message is longer than this channel allows.")})


def template_text(content: OutreachContent, channel: Channel) -> str:
    """The approved template's body with its {{1}}… slots (the name when the template is unknown here)."""
    from whatsapp.models import MessageTemplate

    template = MessageTemplate.objects.filter(
        waba_id=channel.waba_id, name=content.template_name, language=content.template_language
    ).first()
    return template.body_text if template else content.template_name


def outreach_send(
    *,
    content: OutreachContent,
    channel: Channel,
    contact: Contact,
    idempotency_key: str,
    conversation: Conversation | None = None,
    template_body: str | None = None,
    dispatch: bool = True,
    hold_quiet_hours: bool = False,
) -> Message:
    """Send campaign or cadence content to one contact (marketing, so marketing opt-outs hold). A batch
    passes the conversation and the template text it already has."""
    conversation = conversation or conversation_open(contact=contact, channel=channel)
    if content.kind == ContentKind.TEMPLATE:
        variables = [content_render(str(v), contact) for v in content.template_variables]
        preview = template_preview_fill(
            template_body if template_body is not None else template_text(content, channel), variables
        )
        return message_send(
            conversation=conversation,
            type=MessageType.TEMPLATE,
            template_name=content.template_name,
            template_language=content.template_language,
            template_variables={"body": variables},
            body=preview,
            is_marketing=True,
            idempotency_key=idempotency_key,
            dispatch=dispatch,
            hold_quiet_hours=hold_quiet_hours,
        )
    return message_send(
        conversation=conversation,
        body=content_render(content.body, contact),
        is_marketing=True,
        idempotency_key=idempotency_key,
        dispatch=dispatch,
        hold_quiet_hours=hold_quiet_hours,
    )


def conversations_for(*, channel: Channel, contacts: list[Contact]) -> dict[int, Conversation]:
    """Each contact's conversation on the channel, opening the missing ones: two statements for a batch."""
    Conversation.objects.bulk_create(
        [Conversation(contact=contact, channel=channel) for contact in contacts], ignore_conflicts=True
    )
    found = Conversation.objects.filter(channel=channel, contact__in=contacts).select_related("channel", "contact")
    return {conversation.contact_id: conversation for conversation in found}


# --- quiet hours ----------------------------------------------------------------------------------


def quiet_until(now: datetime.datetime, quiet: QuietHours, tz_name: str) -> datetime.datetime | None:
    """The moment automated sends may go out again, or None when they may go out now."""
    if not quiet.enabled:
        return None
    tz = zoneinfo.ZoneInfo(tz_name)
    local = now.astimezone(tz)

    def is_quiet(moment: datetime.datetime) -> bool:
        if quiet.quiet_sundays and moment.weekday() == 6:
            return True
        t = moment.time()
        if quiet.start == quiet.end:
            return False
        if quiet.start < quiet.end:
            return quiet.start <= t < quiet.end
        return t >= quiet.start or t < quiet.end  # across midnight

    if not is_quiet(local):
        return None
    # The next candidate openings: the end of quiet hours today, tomorrow, ... (Sundays skipped).
    for days in range(0, 9):
        day = (local + datetime.timedelta(days=days)).date()
        opening = datetime.datetime.combine(day, quiet.end, tzinfo=tz)
        if quiet.start == quiet.end:
            opening = datetime.datetime.combine(day, datetime.time(0, 0), tzinfo=tz)
        if opening > local and not is_quiet(opening):
            return opening.astimezone(datetime.UTC)
    return None


def _quiet_wait(respect: bool) -> datetime.datetime | None:
    if not respect:
        return None
    tenant = getattr(connection, "tenant", None)
    return quiet_until(timezone.now(), QuietHours.current(), getattr(tenant, "timezone", "America/Sao_Paulo"))


# --- campaigns ------------------------------------------------------------------------------------


def campaign_save(*, campaign: Campaign | None = None, **fields: Any) -> Campaign:
    """Create or edit a campaign while it is a draft or scheduled."""
    campaign = campaign or Campaign()
    if campaign.pk and campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        raise ValidationError(_("A campaign that started sending cannot be edited."))
    for name, value in fields.items():
        setattr(campaign, name, value)
    content_validate(
        kind=campaign.kind, body=campaign.body, template_name=campaign.template_name, channel=campaign.channel
    )
    campaign.save()
    return campaign


def campaign_audience(campaign: Campaign) -> QuerySet[Contact]:
    return contacts_filter(campaign.audience)


def campaign_launch(*, campaign: Campaign) -> Campaign:
    """Fix the audience now (each contact once) and start sending, or wait for the scheduled time."""
    now = timezone.now()
    later = campaign.scheduled_at is not None and campaign.scheduled_at > now
    with transaction.atomic():
        target = CampaignStatus.SCHEDULED if later else CampaignStatus.RUNNING
        changed = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.DRAFT).update(
            status=target, started_at=None if later else now
        )
        if not changed:
            raise ValidationError(_("This campaign was already launched."))
        sql, params = campaign_audience(campaign).order_by().values("pk").query.sql_with_params()
        with connection.cursor() as cursor:
            # Straight from the audience query into the recipients table: 100,000 contacts in one statement.
            cursor.execute(  # the subquery is Django's own compiled SQL; values are parameters
                f"INSERT INTO {CampaignRecipient._meta.db_table} (campaign_id, contact_id, status, reason) "  # noqa: S608
                f"SELECT %s, audience.contact_id, %s, '' FROM ({sql}) AS audience(contact_id) ON CONFLICT DO NOTHING",
                [campaign.pk, RecipientStatus.PENDING, *params],
            )
        total = CampaignRecipient.objects.filter(campaign=campaign).count()
        Campaign.objects.filter(pk=campaign.pk).update(total_recipients=total)
        if not later:
            _run_soon(campaign.pk)
    campaign.refresh_from_db()
    return campaign


def _run_soon(campaign_id: int) -> None:
    """After commit, the campaign's channel gets a dispatcher runner (which builds and sends its batches)."""
    from inbox.dispatcher import kick_on_commit

    channel_id = Campaign.objects.filter(pk=campaign_id).values_list("channel_id", flat=True).first()
    if channel_id is not None:
        kick_on_commit(channel_id)


def campaign_run(*, campaign_id: int) -> float | None:
    """Wake the campaign's channel runner (the dispatcher builds and sends every batch). Always None."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.status != CampaignStatus.RUNNING or not tenant_is_active():
        return None
    from inbox.dispatcher import kick

    kick(campaign.channel_id)
    return None


# --- the dispatcher's campaign hooks ----------------------------------------------------------------


def campaigns_build(channel_id: int, wanted: int) -> int:
    """Dispatcher hook: build up to `wanted` messages of the running campaigns on this channel (bulk
    INSERT; the runner calls it in a thread of its own, so building overlaps the sends). Campaigns with
    nothing left are completed. Returns the recipients handled."""
    if not tenant_is_active():
        return 0
    built = 0
    running = Campaign.objects.filter(channel_id=channel_id, status=CampaignStatus.RUNNING).select_related("channel")
    for campaign in running.order_by("started_at", "id"):
        room = wanted - built
        handled = 0
        if room > 0 and _quiet_wait(campaign.respect_quiet_hours) is None:
            handled = _campaign_build_batch(campaign, min(room, MAX_BATCH))
            built += handled
        if handled == 0:
            _campaign_complete_if_done(campaign)
    return built


def campaign_channels_to_build() -> list[int]:
    """Channels with a running campaign that still has recipients to build (for the beat's ensure)."""
    return list(
        CampaignRecipient.objects.filter(campaign__status=CampaignStatus.RUNNING, status=RecipientStatus.PENDING)
        .order_by()
        .values_list("campaign__channel_id", flat=True)
        .distinct()
    )


def _campaign_build_batch(campaign: Campaign, limit: int) -> int:
    channel = campaign.channel
    caps = provider_class(channel.kind).capabilities
    medium = MEDIUM_OF_KIND[channel.kind]
    template_body = template_text(campaign, channel) if campaign.kind == ContentKind.TEMPLATE else None
    with transaction.atomic():
        batch = list(
            CampaignRecipient.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(campaign=campaign, status=RecipientStatus.PENDING)
            .select_related("contact")
            .order_by("id")[:limit]
        )
        if not batch:
            return 0
        contacts = [r.contact for r in batch]
        conversations = conversations_for(channel=channel, contacts=contacts)
        refused = dict(
            ContactConsent.objects.filter(contact__in=contacts, medium=medium)
            .exclude(status=ConsentStatus.OPTED_IN)
            .values_list("contact_id", "status")
        )
        now = timezone.now()
        window = caps.session_window_hours
        messages: list[tuple[CampaignRecipient, Message]] = []
        for recipient in batch:
            contact, conversation = recipient.contact, conversations[recipient.contact_id]
            recipient.processed_at = now
            if recipient.contact_id in refused:
                recipient.status = RecipientStatus.SKIPPED
                recipient.reason = _("%(contact)s opted out of %(medium)s messages.") % {
                    "contact": contact.display_name,
                    "medium": medium.label,
                }
                continue
            if not contact.phone:
                recipient.status, recipient.reason = RecipientStatus.SKIPPED, _("No phone number.")
                continue
            if (
                campaign.kind != ContentKind.TEMPLATE
                and window is not None
                and (
                    conversation.last_inbound_at is None
                    or now - conversation.last_inbound_at >= datetime.timedelta(hours=window)
                )
            ):
                recipient.status = RecipientStatus.SKIPPED
                recipient.reason = _(
                    "The 24-hour window to reply freely is closed. "
                    "Send an approved template to restart the conversation."
                )
                continue
            messages.append((recipient, _campaign_message(campaign, conversation, contact, template_body, now)))
        # A recipient put back to pending whose message exists (a replay) keeps that message: never two.
        existing = {
            m.idempotency_key: m
            for m in Message.objects.filter(idempotency_key__in=[m.idempotency_key for _r, m in messages])
        }
        Message.objects.bulk_create([m for _r, m in messages if m.idempotency_key not in existing], batch_size=1000)
        for recipient, message in messages:
            found = existing.get(message.idempotency_key)
            recipient.message = found or message
            recipient.status = _FOLLOW.get(found.status, RecipientStatus.SENDING) if found else RecipientStatus.SENDING  # type: ignore[call-overload]
        _recipients_record(batch, now)
        if messages:
            Conversation.objects.filter(pk__in={m.conversation_id for _r, m in messages}).update(last_message_at=now)
    return len(batch)


def _recipients_record(batch: list[CampaignRecipient], now: datetime.datetime) -> None:
    """One UPDATE ... FROM (VALUES ...) for the batch (bulk_update's CASE per row grows with the batch)."""
    if not batch:
        return
    rows = ", ".join(["(%s::bigint, %s, %s::bigint, %s)"] * len(batch))
    params: list[Any] = []
    for r in batch:
        params += [r.pk, r.status, r.message.pk if r.message else None, r.reason]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {CampaignRecipient._meta.db_table} AS r SET status = v.status, message_id = v.message_id, "  # noqa: S608
            f"reason = v.reason, processed_at = %s FROM (VALUES {rows}) AS v(id, status, message_id, reason) "
            "WHERE r.id = v.id",
            [now, *params],
        )


def _campaign_message(
    campaign: Campaign, conversation: Conversation, contact: Contact, template_body: str | None, now: datetime.datetime
) -> Message:
    common: dict[str, Any] = {
        "conversation": conversation,
        "channel_id": campaign.channel_id,
        "direction": Direction.OUTBOUND,
        "is_marketing": True,
        "status": MessageStatus.QUEUED,
        "queued_at": now,
        "next_attempt_at": now,
        "hold_quiet_hours": campaign.respect_quiet_hours,
        "idempotency_key": f"campaign:{campaign.pk}:{contact.pk}",
    }
    if campaign.kind == ContentKind.TEMPLATE:
        variables = [content_render(str(v), contact) for v in campaign.template_variables]
        return Message(
            type=MessageType.TEMPLATE,
            template_name=campaign.template_name,
            template_language=campaign.template_language,
            template_variables={"body": variables},
            body=template_preview_fill(template_body or "", variables),
            **common,
        )
    return Message(type=MessageType.TEXT, body=content_render(campaign.body, contact), **common)


def _campaign_complete_if_done(campaign: Campaign) -> None:
    """Complete only once every recipient has an outcome (never before: that is how broadcasts send twice)."""
    if CampaignRecipient.objects.filter(
        campaign=campaign, status__in=[RecipientStatus.PENDING, RecipientStatus.SENDING]
    ).exists():
        return
    if Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.RUNNING).update(
        status=CampaignStatus.COMPLETED, finished_at=timezone.now()
    ):
        events.announce(events.CAMPAIGN_FINISHED, _schema(), {"campaign_id": campaign.pk})


_FOLLOW = {
    MessageStatus.SENT: RecipientStatus.SENT,
    MessageStatus.DELIVERED: RecipientStatus.DELIVERED,
    MessageStatus.READ: RecipientStatus.READ,
    MessageStatus.FAILED: RecipientStatus.FAILED,
    MessageStatus.UNKNOWN: RecipientStatus.UNKNOWN,
}


def recipients_follow(changes: list[tuple[int, str, str]]) -> int:
    """Dispatcher and status hook: the recipients of these messages take their new state, forward only
    (RECIPIENT_RANK; failed after anything short of delivered; an opt-out found at send time is a skip).
    One statement for the batch."""
    rows: list[Any] = []
    for message_id, status, code in changes:
        target = _FOLLOW.get(status)  # type: ignore[call-overload]
        if target is None:
            continue
        if target == RecipientStatus.FAILED and code == "opted_out":
            target = RecipientStatus.SKIPPED
        rows += [message_id, target, RECIPIENT_RANK.get(target, 0)]
    if not rows:
        return 0
    values = ", ".join(["(%s::bigint, %s, %s::int)"] * (len(rows) // 3))
    rank_sql = "CASE r.status " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in RECIPIENT_RANK.items()) + " ELSE 99 END"
    table, messages = CampaignRecipient._meta.db_table, Message._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS r SET status = v.status, processed_at = %s, "  # noqa: S608 (our names; values are parameters)
            "reason = CASE WHEN v.status IN ('failed', 'skipped') THEN left(m.error_text, 300) ELSE r.reason END "
            f"FROM (VALUES {values}) AS v(id, status, rank) JOIN {messages} m ON m.id = v.id "
            "WHERE r.message_id = v.id AND ("
            "(v.status IN ('failed', 'skipped') AND r.status IN ('sending', 'unknown', 'sent')) OR "
            "(v.status NOT IN ('failed', 'skipped') AND r.status NOT IN ('failed', 'skipped') "
            f"AND {rank_sql} < v.rank))",
            [timezone.now(), *rows],
        )
        return int(cursor.rowcount)


def recipients_replied(*, contact_id: int) -> int:
    """The contact wrote back: its campaign recipients that reached it count as replied."""
    return CampaignRecipient.objects.filter(
        contact_id=contact_id,
        status__in=[RecipientStatus.SENT, RecipientStatus.DELIVERED, RecipientStatus.READ],
        campaign__status__in=[CampaignStatus.RUNNING, CampaignStatus.COMPLETED],
    ).update(status=RecipientStatus.REPLIED)


def quiet_opening_now() -> datetime.datetime | None:
    """Dispatcher hook: when automated sends held by quiet hours may go again (None: they may go now)."""
    return _quiet_wait(True)


def _campaign_queued(campaign: Campaign) -> QuerySet[Message]:
    """The campaign's messages built and not yet claimed by a sender."""
    return Message.objects.filter(
        pk__in=CampaignRecipient.objects.filter(campaign=campaign, status=RecipientStatus.SENDING).values("message_id"),
        status=MessageStatus.QUEUED,
    )


def campaign_pause(*, campaign: Campaign) -> bool:
    """Stop sending: nothing more is built, and the messages already built (deferred retries included)
    are held (no due time) until resumed. A request already in flight finishes."""
    with transaction.atomic():
        moved = _campaign_move(campaign, [CampaignStatus.RUNNING, CampaignStatus.SCHEDULED], CampaignStatus.PAUSED)
        if moved:
            _campaign_queued(campaign).update(next_attempt_at=None)
    return moved


def campaign_resume(*, campaign: Campaign) -> bool:
    """Go on: to running, or back to scheduled when its time is still in the future."""
    with transaction.atomic():
        later = campaign.scheduled_at is not None and campaign.scheduled_at > timezone.now()
        target = CampaignStatus.SCHEDULED if later and campaign.started_at is None else CampaignStatus.RUNNING
        moved = _campaign_move(campaign, [CampaignStatus.PAUSED], target)
        if moved and target == CampaignStatus.RUNNING:
            Campaign.objects.filter(pk=campaign.pk, started_at=None).update(started_at=timezone.now())
            _campaign_queued(campaign).filter(next_attempt_at=None).update(next_attempt_at=timezone.now())
            _run_soon(campaign.pk)
    return moved


def campaign_cancel(*, campaign: Campaign) -> bool:
    """Stop for good: recipients not reached yet are skipped, messages not yet sent are dropped (failed,
    'canceled'); a request already in flight finishes."""
    with transaction.atomic():
        moved = _campaign_move(
            campaign,
            [CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED],
            CampaignStatus.CANCELED,
        )
        if moved:
            now = timezone.now()
            dropped = list(_campaign_queued(campaign).values_list("pk", flat=True))
            Message.objects.filter(pk__in=dropped, status=MessageStatus.QUEUED).update(
                status=MessageStatus.FAILED, failed_at=now, next_attempt_at=None, error_code="canceled"
            )
            CampaignRecipient.objects.filter(
                Q(status=RecipientStatus.PENDING) | Q(message_id__in=dropped), campaign=campaign
            ).update(status=RecipientStatus.SKIPPED, reason=_("Campaign canceled."), processed_at=now)
            Campaign.objects.filter(pk=campaign.pk).update(finished_at=now)
    return moved


def _campaign_move(campaign: Campaign, sources: list[str], target: str) -> bool:
    moved = Campaign.objects.filter(pk=campaign.pk, status__in=sources).update(status=target) == 1
    campaign.refresh_from_db()
    return moved


def campaigns_resume_running() -> int:
    """After a suspension: every campaign still running gets its batches going again (a second runner
    is harmless: recipients are claimed with SKIP LOCKED and every message has its idempotency key)."""
    ids = list(Campaign.objects.filter(status=CampaignStatus.RUNNING).values_list("pk", flat=True))
    for pk in ids:
        _run_soon(pk)
    return len(ids)


def campaigns_start_due() -> int:
    """Beat: scheduled campaigns whose time has come start sending."""
    started = 0
    for pk in Campaign.objects.filter(status=CampaignStatus.SCHEDULED, scheduled_at__lte=timezone.now()).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            if Campaign.objects.filter(pk=pk, status=CampaignStatus.SCHEDULED).update(
                status=CampaignStatus.RUNNING, started_at=timezone.now()
            ):
                _run_soon(pk)
                started += 1
    return started


# --- cadences -------------------------------------------------------------------------------------


@transaction.atomic
def cadence_save(*, cadence: Cadence | None = None, steps: list[dict[str, Any]], **fields: Any) -> Cadence:
    """Create or edit a cadence and replace its steps (in order). Active enrollments go on from the step
    number they reached."""
    cadence = cadence or Cadence()
    for name, value in fields.items():
        setattr(cadence, name, value)
    if not steps:
        raise ValidationError({"steps": _("Add at least one step.")})
    for i, step in enumerate(steps, start=1):
        try:
            content_validate(
                kind=step.get("kind", ContentKind.TEXT),
                body=step.get("body", ""),
                template_name=step.get("template_name", ""),
                channel=cadence.channel,
            )
        except ValidationError as exc:
            problems = " ".join(exc.messages)
            raise ValidationError({"steps": _("Step %(n)s: %(problem)s") % {"n": i, "problem": problems}}) from exc
    cadence.save()
    cadence.steps.all().delete()
    CadenceStep.objects.bulk_create(
        CadenceStep(
            cadence=cadence,
            position=i,
            delay_minutes=int(step.get("delay_minutes") or 0),
            kind=step.get("kind", ContentKind.TEXT),
            body=step.get("body", ""),
            template_name=step.get("template_name", ""),
            template_language=step.get("template_language", ""),
            template_variables=list(step.get("template_variables") or []),
        )
        for i, step in enumerate(steps)
    )
    return cadence


def cadence_enroll(*, cadence: Cadence, contacts: QuerySet[Contact], enrolled_by: Any = None) -> int:
    """Start the cadence for these contacts (those already in it are left where they are). One statement,
    whatever the number of contacts. Returns how many started."""
    if not cadence.is_active:
        raise ValidationError(_("This cadence is paused. Turn it on to start it for contacts."))
    first = cadence.steps.order_by("position").first()
    if first is None:
        raise ValidationError(_("This cadence has no steps."))
    first_run = timezone.now() + datetime.timedelta(minutes=first.delay_minutes)
    user_id = getattr(enrolled_by, "pk", None) if getattr(enrolled_by, "is_authenticated", False) else None
    sql, params = contacts.order_by().values("pk").query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(  # the subquery is Django's own compiled SQL; values are parameters
            f"INSERT INTO {Enrollment._meta.db_table} "  # noqa: S608
            "(cadence_id, contact_id, status, next_position, next_run_at, steps_sent, reason, enrolled_by_id, "
            "started_at) "
            f"SELECT %s, chosen.contact_id, %s, 0, %s, 0, '', %s, now() FROM ({sql}) AS chosen(contact_id) "
            "ON CONFLICT (cadence_id, contact_id) WHERE status = 'active' DO NOTHING",
            [cadence.pk, EnrollmentStatus.ACTIVE, first_run, user_id, *params],
        )
        count = cursor.rowcount
        if first.delay_minutes == 0:
            from campaigns.tasks import cadence_tick

            send_on_commit(cadence_tick, queue="dispatch")
    return count


def enrollments_stop(*, enrollments: QuerySet[Enrollment], reason: str) -> int:
    return enrollments.filter(status=EnrollmentStatus.ACTIVE).update(
        status=EnrollmentStatus.STOPPED, reason=reason[:300], finished_at=timezone.now(), next_run_at=None
    )


def enrollments_stop_on_reply(*, contact_id: int) -> int:
    return enrollments_stop(
        enrollments=Enrollment.objects.filter(contact_id=contact_id, cadence__stop_on_reply=True),
        reason=_("The contact replied."),
    )


def enrollments_stop_on_opt_out(*, contact_id: int, medium: str) -> int:
    kinds = [kind for kind, of in MEDIUM_OF_KIND.items() if of == medium]
    return enrollments_stop(
        enrollments=Enrollment.objects.filter(contact_id=contact_id, cadence__channel__kind__in=kinds),
        reason=_("The contact opted out."),
    )


def cadences_advance(*, limit: int | None = None) -> int:
    """Beat: send the due step of up to `limit` (MAX_BATCH) due enrollments of active cadences. Returns the
    steps sent. A suspended tenant sends nothing; its due steps go out once it is reactivated."""
    if not tenant_is_active():
        return 0
    limit = limit or MAX_BATCH
    now = timezone.now()
    sent = 0
    with transaction.atomic():
        due = list(
            Enrollment.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=EnrollmentStatus.ACTIVE, next_run_at__lte=now, cadence__is_active=True)
            .select_related("cadence__channel", "contact")
            .order_by("next_run_at")[:limit]
        )
        steps: dict[int, list[CadenceStep]] = {}
        for enrollment in due:
            cadence = enrollment.cadence
            if cadence.pk not in steps:
                steps[cadence.pk] = list(cadence.steps.order_by("position"))
            sent += _enrollment_step(enrollment, steps[cadence.pk], now)
    return sent


def _enrollment_step(enrollment: Enrollment, steps: list[CadenceStep], now: datetime.datetime) -> int:
    cadence = enrollment.cadence
    changes: dict[str, Any]
    if enrollment.next_position >= len(steps):
        changes = {"status": EnrollmentStatus.COMPLETED, "finished_at": now, "next_run_at": None}
        Enrollment.objects.filter(pk=enrollment.pk).update(**changes)
        return 0
    opening = _quiet_wait(cadence.respect_quiet_hours)
    if opening is not None:
        Enrollment.objects.filter(pk=enrollment.pk).update(next_run_at=opening)
        return 0
    step = steps[enrollment.next_position]
    try:
        outreach_send(
            content=step,
            channel=cadence.channel,
            contact=enrollment.contact,
            idempotency_key=f"cadence:{enrollment.pk}:{step.position}",
            hold_quiet_hours=cadence.respect_quiet_hours,
        )
    except ValidationError as exc:
        if getattr(exc, "code", None) == "tenant_suspended":
            return 0  # suspended meanwhile: the step stays due
        opted_out = getattr(exc, "code", None) == "opted_out"
        changes = {
            "status": EnrollmentStatus.STOPPED if opted_out else EnrollmentStatus.FAILED,
            "reason": " ".join(exc.messages)[:300],
            "finished_at": now,
            "next_run_at": None,
        }
        Enrollment.objects.filter(pk=enrollment.pk).update(**changes)
        return 0
    following = enrollment.next_position + 1
    changes = {"next_position": following, "steps_sent": F("steps_sent") + 1}
    if following < len(steps):
        changes["next_run_at"] = now + datetime.timedelta(minutes=steps[following].delay_minutes)
    else:
        changes.update(status=EnrollmentStatus.COMPLETED, finished_at=now, next_run_at=None)
    Enrollment.objects.filter(pk=enrollment.pk).update(**changes)
    return 1


@transaction.atomic
def quiet_hours_save(**fields: Any) -> QuietHours:
    quiet = QuietHours.current()
    for name, value in fields.items():
        setattr(quiet, name, value)
    quiet.save()
    return quiet
