"""Voice campaigns: outbound AI calls to an audience, at most `max_concurrent` in progress at once.

Work lives in rows: one recipient row per contact (fixed at launch, unique per campaign), a due time on
each. `voice_campaign_fill` runs under a lock on the campaign row, so two fills never start more calls
than the limit: it settles the recipients whose call ended, counts the campaign's calls still in
progress and starts calls (through `call_queue`, the one outbound path: the `voice` queue places them,
consent and quiet hours are checked there) for due recipients up to the limit. It runs at launch, when a
call of the campaign ends (CALL_ENDED) and on the beat (retries whose delay has passed)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from core import events
from crm.models import Contact, Tag
from crm.selectors import contacts_filter
from voice.models import (
    FINAL_STATUSES,
    Call,
    CallStatus,
    VoiceAgent,
    VoiceCampaign,
    VoiceCampaignRecipient,
    VoiceCampaignStatus,
    VoiceNumber,
    VoiceOutcome,
    VoiceRecipientStatus,
)
from voice.outbound import _check_agent, call_queue

logger = logging.getLogger(__name__)

MAX_CONCURRENT = 20
MAX_RETRIES = 5
RETRIED_OUTCOMES = frozenset({VoiceOutcome.NO_ANSWER, VoiceOutcome.BUSY, VoiceOutcome.VOICEMAIL})
OUTCOME_OF_REASON = {
    "dial_no_answer": VoiceOutcome.NO_ANSWER,
    "dial_busy": VoiceOutcome.BUSY,
    "voicemail_reached": VoiceOutcome.VOICEMAIL,
    "opted_out": VoiceOutcome.OPTED_OUT,
    "no_contact_number": VoiceOutcome.NO_NUMBER,
}


MAX_LISTED_CONTACTS = 10_000


def voice_campaign_audience(audience: dict[str, Any] | None) -> Any:
    """The contacts an audience names: the listed contacts, or a segment and/or tags (any of them); {} is
    every contact with a phone. Erased contacts and contacts without a phone are never in it."""
    spec = dict(audience or {})
    if "contacts" in spec:
        listed = [int(c) for c in spec.get("contacts") or [] if str(c).isdigit()]
        return contacts_filter().filter(pk__in=listed, erased_at=None).exclude(Q(phone="") | Q(phone=None))
    segment = str(spec.get("segment") or "")
    qs = contacts_filter({"segment": int(segment)}) if segment.isdigit() else contacts_filter()
    tags = [int(t) for t in spec.get("tags") or [] if str(t).isdigit()]
    if tags:
        qs = qs.filter(pk__in=Contact.tags.through.objects.filter(tag_id__in=tags).values("contact_id"))
    return qs.filter(erased_at=None).exclude(Q(phone="") | Q(phone=None))


def voice_campaign_save(
    *,
    name: str,
    agent: VoiceAgent | None,
    audience: dict[str, Any] | None = None,
    number: VoiceNumber | None = None,
    max_concurrent: int = 2,
    retries: int = 1,
    retry_delay_minutes: int = 30,
    campaign: VoiceCampaign | None = None,
) -> VoiceCampaign:
    """Create (or edit, before launch) a voice campaign. The audience is {"segment": id, "tags": [ids]}
    or {"contacts": [ids]}; `number` (one imported into Retell) replaces the agent's own caller number.
    Raises ValidationError with what to fix, field by field."""
    if campaign is not None and campaign.status != VoiceCampaignStatus.DRAFT:
        raise ValidationError(_("A launched campaign cannot be changed."), code="launched")
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = _("Give the campaign a name.")
    try:
        _check_agent(agent)
    except ValidationError as exc:
        errors["agent"] = " ".join(exc.messages)
    if not 1 <= max_concurrent <= MAX_CONCURRENT:
        errors["max_concurrent"] = _("Between 1 and %(n)s calls at once.") % {"n": MAX_CONCURRENT}
    if not 0 <= retries <= MAX_RETRIES:
        errors["retries"] = _("Between 0 and %(n)s retries.") % {"n": MAX_RETRIES}
    if not 1 <= retry_delay_minutes <= 7 * 24 * 60:
        errors["retry_delay_minutes"] = _("Between 1 minute and 7 days.")
    spec = dict(audience or {})
    clean: dict[str, Any] = {}
    if str(spec.get("segment") or "").isdigit():
        clean["segment"] = int(spec["segment"])
    tags = [int(t) for t in spec.get("tags") or [] if str(t).isdigit()]
    if tags:
        if Tag.objects.filter(pk__in=tags).count() != len(set(tags)):
            errors["audience"] = _("That tag does not exist.")
        clean["tags"] = sorted(set(tags))
    if "contacts" in spec:
        listed = spec.get("contacts")
        ids = (
            {int(c) for c in listed if not isinstance(c, bool) and str(c).isdigit()}
            if isinstance(listed, list)
            else set()
        )
        if clean:
            errors["audience"] = _("List the contacts, or choose a segment and tags; not both.")
        elif not ids or not isinstance(listed, list) or len(ids) != len(listed):
            errors["audience"] = _("List the contacts by their ids, each once.")
        elif len(ids) > MAX_LISTED_CONTACTS:
            errors["audience"] = _("At most %(n)s contacts in a list.") % {"n": MAX_LISTED_CONTACTS}
        elif Contact.objects.filter(pk__in=ids, erased_at=None).count() != len(ids):
            errors["audience"] = _("Some of these contacts do not exist.")
        else:
            clean["contacts"] = sorted(ids)
    if number is not None and number.retell_imported_at is None:
        errors["number"] = _("This number is not imported into Retell yet: import it on the number's page first.")
    if errors:
        raise ValidationError(errors)
    assert agent is not None
    row = campaign or VoiceCampaign()
    row.name, row.agent, row.audience, row.number = name.strip()[:120], agent, clean, number
    row.max_concurrent, row.retries, row.retry_delay_minutes = max_concurrent, retries, retry_delay_minutes
    row.save()
    return row


def voice_campaign_launch(*, campaign: VoiceCampaign) -> int:
    """Fix the audience (one row per contact, a second launch adds nobody twice) and start the first
    calls. Returns how many recipients the campaign has."""
    with transaction.atomic():
        locked = VoiceCampaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != VoiceCampaignStatus.DRAFT:
            raise ValidationError(_("This campaign was launched already."), code="launched")
        _check_agent(locked.agent)
        now = timezone.now()
        contacts = voice_campaign_audience(locked.audience).values_list("pk", flat=True)
        VoiceCampaignRecipient.objects.bulk_create(
            [VoiceCampaignRecipient(campaign=locked, contact_id=pk, next_attempt_at=now) for pk in contacts],
            ignore_conflicts=True,
            batch_size=1000,
        )
        VoiceCampaign.objects.filter(pk=locked.pk).update(
            status=VoiceCampaignStatus.RUNNING, launched_at=now, updated_at=now
        )
    _fill_on_commit(campaign.pk)
    campaign.refresh_from_db()
    return campaign.recipients.count()


def voice_campaign_pause(*, campaign: VoiceCampaign) -> VoiceCampaign:
    """No new call starts; the calls in progress end as they will. Refused unless it is running."""
    changed = VoiceCampaign.objects.filter(pk=campaign.pk, status=VoiceCampaignStatus.RUNNING).update(
        status=VoiceCampaignStatus.PAUSED, updated_at=timezone.now()
    )
    if changed != 1:
        raise ValidationError(_("Only a running campaign can be paused."), code="not_running")
    campaign.refresh_from_db()
    return campaign


def voice_campaign_resume(*, campaign: VoiceCampaign) -> VoiceCampaign:
    """Start calls again after a pause. Refused unless it is paused."""
    changed = VoiceCampaign.objects.filter(pk=campaign.pk, status=VoiceCampaignStatus.PAUSED).update(
        status=VoiceCampaignStatus.RUNNING, updated_at=timezone.now()
    )
    if changed != 1:
        raise ValidationError(_("Only a paused campaign can be resumed."), code="not_paused")
    _fill_on_commit(campaign.pk)
    campaign.refresh_from_db()
    return campaign


def _fill_on_commit(campaign_id: int) -> None:
    transaction.on_commit(lambda: voice_campaign_fill(campaign_id=campaign_id))


def _outcome(call: Call) -> str:
    if call.disconnection_reason in OUTCOME_OF_REASON:
        return OUTCOME_OF_REASON[call.disconnection_reason]
    if call.status == CallStatus.ENDED:
        return VoiceOutcome.ANSWERED
    return VoiceOutcome.FAILED


def _settle(campaign: VoiceCampaign, now: Any) -> None:
    """Recipients whose call has ended: done with its outcome, or due again after the delay."""
    calling = VoiceCampaignRecipient.objects.filter(
        campaign=campaign, status=VoiceRecipientStatus.CALLING, call__status__in=list(FINAL_STATUSES)
    ).select_related("call")
    for recipient in calling:
        assert recipient.call is not None
        outcome = _outcome(recipient.call)
        if outcome in RETRIED_OUTCOMES and recipient.attempts <= campaign.retries:
            recipient.status = VoiceRecipientStatus.PENDING
            recipient.next_attempt_at = now + timedelta(minutes=campaign.retry_delay_minutes)
        elif outcome in (VoiceOutcome.OPTED_OUT, VoiceOutcome.NO_NUMBER):
            recipient.status = VoiceRecipientStatus.SKIPPED
        else:
            recipient.status = VoiceRecipientStatus.DONE
        recipient.outcome = outcome
        recipient.save(update_fields=["status", "outcome", "next_attempt_at", "updated_at"])


def voice_campaign_fill(*, campaign_id: int) -> int:
    """Start calls for due recipients until `max_concurrent` of the campaign's calls are in progress
    (queued, registered or ongoing). Returns how many calls it started."""
    started = 0
    with transaction.atomic():
        campaign = (
            VoiceCampaign.objects.select_for_update(of=("self",))
            .filter(pk=campaign_id)
            .select_related("agent", "number")
            .first()
        )
        if campaign is None or campaign.status not in (VoiceCampaignStatus.RUNNING, VoiceCampaignStatus.PAUSED):
            return 0
        now = timezone.now()
        _settle(campaign, now)
        if campaign.status == VoiceCampaignStatus.RUNNING:
            in_progress = Call.objects.filter(voice_campaign=campaign).exclude(status__in=list(FINAL_STATUSES)).count()
            slots = campaign.max_concurrent - in_progress
            due = list(
                VoiceCampaignRecipient.objects.filter(
                    campaign=campaign, status=VoiceRecipientStatus.PENDING, next_attempt_at__lte=now
                )
                .select_related("contact")
                .order_by("next_attempt_at", "id")[: max(slots, 0) * 2 + 10]
            )
            for recipient in due:
                if slots <= 0:
                    break
                result = _start(campaign, recipient)
                if result == "stop":  # the agent can no longer call: nobody else is tried
                    VoiceCampaign.objects.filter(pk=campaign.pk).update(
                        status=VoiceCampaignStatus.PAUSED, updated_at=now
                    )
                    campaign.status = VoiceCampaignStatus.PAUSED
                    break
                if result == "started":
                    started += 1
                    slots -= 1
        left = VoiceCampaignRecipient.objects.filter(
            campaign=campaign, status__in=[VoiceRecipientStatus.PENDING, VoiceRecipientStatus.CALLING]
        ).exists()
        # nobody left to call: done, even if paused meanwhile (a pause that outlived the last call)
        if not left:
            VoiceCampaign.objects.filter(pk=campaign.pk).update(
                status=VoiceCampaignStatus.DONE, finished_at=now, updated_at=now
            )
    return started


def _start(campaign: VoiceCampaign, recipient: VoiceCampaignRecipient) -> str:
    """One call for this recipient (its key makes a second fill of the same attempt a no-op); a contact
    who cannot be called is skipped with the reason, never called; "stop" when the agent cannot call."""
    attempt = recipient.attempts + 1
    try:
        call = call_queue(
            contact=recipient.contact,
            agent=campaign.agent,
            idempotency_key=f"voice-campaign-{campaign.pk}-{recipient.pk}#{attempt}",
            context={"campaign": campaign.name},
            voice_campaign_id=campaign.pk,
            from_number=campaign.number.e164 if campaign.number is not None else "",
        )
    except ValidationError as exc:
        code = str(exc.code or "")
        if code not in OUTCOME_OF_REASON:
            logger.warning("voice campaign %s paused: %s", campaign.pk, code)
            return "stop"
        recipient.status = VoiceRecipientStatus.SKIPPED
        recipient.outcome = OUTCOME_OF_REASON.get(code, VoiceOutcome.FAILED)
        recipient.save(update_fields=["status", "outcome", "updated_at"])
        logger.info("voice campaign %s skipped recipient %s: %s", campaign.pk, recipient.pk, code)
        return "skipped"
    recipient.status, recipient.attempts, recipient.call = VoiceRecipientStatus.CALLING, attempt, call
    recipient.next_attempt_at = None
    recipient.save(update_fields=["status", "attempts", "call", "next_attempt_at", "updated_at"])
    return "started"


def voice_campaigns_due_fill() -> int:
    """Beat: fill every running campaign (retries whose delay has passed, calls that ended unseen)."""
    ids = list(VoiceCampaign.objects.filter(status=VoiceCampaignStatus.RUNNING).values_list("pk", flat=True))
    return sum(voice_campaign_fill(campaign_id=pk) for pk in ids)


def _call_ended(schema_name: str, payload: dict[str, Any]) -> None:
    from django_tenants.utils import schema_context

    call_id = payload.get("call_id")
    if not isinstance(call_id, int):
        return
    with schema_context(schema_name):
        campaign_id = Call.objects.filter(pk=call_id).values_list("voice_campaign_id", flat=True).first()
        if campaign_id is not None:
            voice_campaign_fill(campaign_id=campaign_id)


def subscribe() -> None:
    events.subscribe(events.CALL_ENDED, _call_ended)
