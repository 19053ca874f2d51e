"""Writes on campaigns and cadences. Every send goes through ``inbox.services.message_send`` with an
idempotency key made of the campaign (or enrollment) and the contact (or step), so a batch or a tick that
runs twice never sends anything twice."""

from __future__ import annotations

import datetime
import logging
import re
import time
import zoneinfo
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import (
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
from core import events, realtime
from core.tasks import send_on_commit
from crm.models import Contact
from crm.selectors import contacts_filter
from crm.services import MEDIUM_OF_KIND
from inbox.models import Channel, Conversation, Message, MessageType
from inbox.providers import provider_class
from inbox.services import conversation_open, message_send, messages_dispatch_now
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
        )
    return message_send(
        conversation=conversation,
        body=content_render(content.body, contact),
        is_marketing=True,
        idempotency_key=idempotency_key,
        dispatch=dispatch,
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
    from campaigns.tasks import campaign_run as task

    send_on_commit(task, campaign_id, queue="dispatch")


def campaign_run(*, campaign_id: int) -> float | None:
    """Send the next batch. Returns the seconds to wait before the next batch, or None when there is no
    next one (finished, paused, canceled).

    Batches are paced at the channel's rate (one batch a second, as many as the channel's messages per
    second), so the dispatch queue never holds more than the provider takes. Recipients are claimed with
    SKIP LOCKED: two runners never take the same contact; the message's idempotency key covers a crash."""
    campaign = Campaign.objects.select_related("channel").get(pk=campaign_id)
    if campaign.status != CampaignStatus.RUNNING:
        return None
    if not tenant_is_active():
        return None  # suspended: the campaign stays running and goes on from campaigns_resume_running
    opening = _quiet_wait(campaign.respect_quiet_hours)
    if opening is not None:
        return max(1.0, (opening - timezone.now()).total_seconds())
    started = time.monotonic()
    batch_size = max(1, min(MAX_BATCH, campaign.channel.rate_limit_per_s))
    template_body = template_text(campaign, campaign.channel) if campaign.kind == ContentKind.TEMPLATE else None
    # Live pushes of the whole batch leave together, after the commit.
    with realtime.batched(), transaction.atomic():
        batch = list(
            CampaignRecipient.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(campaign=campaign, status=RecipientStatus.PENDING)
            .select_related("contact")
            .order_by("id")[:batch_size]
        )
        conversations = conversations_for(channel=campaign.channel, contacts=[r.contact for r in batch])
        now = timezone.now()
        handled: list[CampaignRecipient] = []
        for recipient in batch:
            try:
                message = outreach_send(
                    content=campaign,
                    channel=campaign.channel,
                    contact=recipient.contact,
                    idempotency_key=f"campaign:{campaign.pk}:{recipient.contact_id}",
                    conversation=conversations[recipient.contact_id],
                    template_body=template_body,
                    dispatch=False,
                )
            except ValidationError as exc:
                code = getattr(exc, "code", None)
                if code == "tenant_suspended":
                    break  # suspended mid-batch: the rest stay pending for the reactivation
                recipient.status = RecipientStatus.SKIPPED if code in SKIP_CODES else RecipientStatus.FAILED
                recipient.reason = " ".join(exc.messages)[:300]
            else:
                recipient.status = RecipientStatus.QUEUED
                recipient.message = message
            recipient.processed_at = now
            handled.append(recipient)
        _recipients_record(handled, now)
    # Committed: send the batch from here, many requests at once (no task per message).
    messages_dispatch_now(message_ids=[r.message.pk for r in handled if r.message is not None])
    if len(handled) < len(batch):
        return None
    if CampaignRecipient.objects.filter(campaign=campaign, status=RecipientStatus.PENDING).exists():
        # More to send (or another runner holds the last rows): the next batch, one second after this one.
        return max(0.0, 1.0 - (time.monotonic() - started))
    # Complete only once every recipient was handled (never before: that is how broadcasts send twice).
    if Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.RUNNING).update(
        status=CampaignStatus.COMPLETED, finished_at=timezone.now()
    ):
        events.announce(events.CAMPAIGN_FINISHED, _schema(), {"campaign_id": campaign.pk})
    return None


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


def campaign_pause(*, campaign: Campaign) -> bool:
    return _campaign_move(campaign, [CampaignStatus.RUNNING, CampaignStatus.SCHEDULED], CampaignStatus.PAUSED)


def campaign_resume(*, campaign: Campaign) -> bool:
    with transaction.atomic():
        moved = _campaign_move(campaign, [CampaignStatus.PAUSED], CampaignStatus.RUNNING)
        if moved:
            Campaign.objects.filter(pk=campaign.pk, started_at=None).update(started_at=timezone.now())
            _run_soon(campaign.pk)
    return moved


def campaign_cancel(*, campaign: Campaign) -> bool:
    """Stop for good: recipients not reached yet are skipped; messages already handed over still go."""
    with transaction.atomic():
        moved = _campaign_move(
            campaign,
            [CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED],
            CampaignStatus.CANCELED,
        )
        if moved:
            CampaignRecipient.objects.filter(campaign=campaign, status=RecipientStatus.PENDING).update(
                status=RecipientStatus.SKIPPED, reason=_("Campaign canceled."), processed_at=timezone.now()
            )
            Campaign.objects.filter(pk=campaign.pk).update(finished_at=timezone.now())
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
