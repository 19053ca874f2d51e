"""Outbound AI calls as work in rows: a call is queued (a row with a due time, unique on its idempotency
key), placed by a task on the `voice` queue (never inside a web request), held by quiet hours, refused
without voice consent, and retried after a delay on no-answer or busy (a new row, not a countdown)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.contributions import QUIET_HOURS_OPENING, collect
from crm.models import Contact
from tenants.selectors import tenant_is_active
from voice.models import Call, CallDirection, CallStatus, VoiceAgent
from voice.retell import RetellClient, RetellError
from voice.services import _voice_consent_allows, voice_refusal, voice_settings_ensure

logger = logging.getLogger(__name__)

RETRY_REASONS = frozenset({"dial_no_answer", "dial_busy"})


def call_dynamic_variables(*, contact: Contact, context: dict[str, Any] | None = None) -> dict[str, str]:
    """retell_llm_dynamic_variables for a call: the contact's name, phone and email, each custom field
    (by key) and what the caller passed (a cadence's step context); Retell wants a string map."""
    values: dict[str, Any] = {
        "contact_name": contact.display_name,
        "contact_first_name": (contact.name or "").split(" ")[0],
        "contact_phone": contact.phone or "",
        "contact_email": getattr(contact, "email", "") or "",
    }
    for key, value in (getattr(contact, "custom_fields", None) or {}).items():
        values[f"custom_{key}"] = value
    for key, value in (context or {}).items():
        if isinstance(value, str | int | float | bool):
            values[str(key)] = value
    return {str(k)[:64]: str(v)[:500] for k, v in values.items() if v is not None}


def _check_agent(agent: VoiceAgent | None) -> VoiceAgent:
    if agent is None or not agent.is_active:
        raise ValidationError(_("Choose an active voice agent."), code="no_agent")
    if not agent.is_published:
        raise ValidationError(_("This agent is not published on Retell yet: sync it first."), code="not_published")
    if not agent.calls_outbound:
        raise ValidationError(_("This agent only answers incoming calls."), code="inbound_only")
    if not agent.from_number:
        raise ValidationError(_("This agent has no phone number to call from."), code="no_number")
    return agent


def call_queue(
    *,
    contact: Contact,
    agent: VoiceAgent | None,
    idempotency_key: str = "",
    context: dict[str, Any] | None = None,
    actor: Any = None,
    voice_campaign_id: int | None = None,
    from_number: str = "",
) -> Call:
    """Queue one outbound call and have the `voice` queue place it after commit. The same idempotency key
    returns the call already queued and places nothing. `from_number` (a voice campaign's number)
    replaces the agent's own caller number. Refused at once (ValidationError) for an
    unusable agent, a contact without a number, or one who opted out of calls."""
    if idempotency_key:
        existing = Call.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    if not tenant_is_active():
        raise ValidationError(
            _("This workspace is suspended: no calls are made until it is reactivated."), code="tenant_suspended"
        )
    refused, why = voice_refusal()
    if refused:
        raise ValidationError(why, code=refused)
    agent = _check_agent(agent)
    if contact.erased_at is not None or not contact.phone:
        raise ValidationError(_("This contact has no phone number to call."), code="no_contact_number")
    if not _voice_consent_allows(contact):
        raise ValidationError(_("This contact opted out of calls."), code="opted_out")
    fields = {
        "agent": agent,
        "contact": contact,
        "initiated_by": actor if getattr(actor, "is_authenticated", False) else None,
        "direction": CallDirection.OUTBOUND,
        "from_number": from_number or agent.from_number,
        "to_number": contact.phone,
        "status": CallStatus.QUEUED,
        "due_at": timezone.now(),
        "idempotency_key": idempotency_key or None,
        "dynamic_variables": call_dynamic_variables(contact=contact, context=context),
        "voice_campaign_id": voice_campaign_id,
    }
    try:
        with transaction.atomic():
            call = Call.objects.create(**fields)
    except IntegrityError:  # the same key, queued concurrently
        return Call.objects.get(idempotency_key=idempotency_key)
    _place_on_commit(call.pk)
    return call


def _place_on_commit(call_id: int) -> None:
    from voice.tasks import call_place as task

    schema = getattr(connection, "schema_name", "public")
    transaction.on_commit(lambda: task.apply_async(args=(call_id,), queue="voice", headers={"_schema_name": schema}))


def _quiet_opening() -> datetime | None:
    """When automated calls may go again (None: now), as the tenant's quiet hours say."""
    openings = [when for when in collect(QUIET_HOURS_OPENING) if when is not None]
    return max(openings) if openings else None


def call_place(*, call_id: int) -> str:
    """Place one queued call that is due (the `voice` queue's task). Claimed with a conditional UPDATE so
    a second run does nothing; held again by quiet hours; refused on consent. Returns what happened."""
    now = timezone.now()
    claimed = Call.objects.filter(pk=call_id, status=CallStatus.QUEUED, due_at__lte=now).update(
        status=CallStatus.REGISTERED, due_at=None, updated_at=now
    )
    if claimed != 1:
        return "not_due"
    call = Call.objects.select_related("agent", "contact").get(pk=call_id)
    contact, agent = call.contact, call.agent
    reason, detail = "", ""
    if not tenant_is_active():
        reason = "tenant_suspended"
    elif voice_refusal()[0]:
        reason, detail = voice_refusal()  # the plan changed, or the minutes ran out, since it was queued
    elif contact is None or contact.erased_at is not None or not contact.phone:
        reason = "no_contact_number"
    elif not _voice_consent_allows(contact):
        reason = "opted_out"  # consent withdrawn after the call was queued
    else:
        try:
            _check_agent(agent)
        except ValidationError as exc:
            reason = str(exc.code or "no_agent")
    if reason:
        _refuse(call, reason, detail=detail)
        return reason
    opening = _quiet_opening()
    if opening is not None:
        Call.objects.filter(pk=call.pk).update(status=CallStatus.QUEUED, due_at=opening, updated_at=timezone.now())
        return "quiet_hours"
    row = voice_settings_ensure()
    assert agent is not None and contact is not None
    try:
        answer = RetellClient(row.api_key).create_phone_call(
            from_number=call.from_number or agent.from_number,
            to_number=call.to_number,
            agent_id=agent.retell_agent_id,
            metadata={"call_id": call.pk, "contact_id": contact.pk},
            dynamic_variables=call.dynamic_variables or {},
        )
    except RetellError as exc:
        logger.warning("retell create-phone-call failed for call %s: %s (%s)", call.pk, exc.status, exc.kind)
        if exc.kind == "unknown":
            return "unknown"  # it may exist: its webhooks, if any, still find the row (metadata)
        if exc.retryable and call.attempt < settings.VOICE_MAX_ATTEMPTS:
            Call.objects.filter(pk=call.pk).update(
                status=CallStatus.QUEUED, due_at=timezone.now() + timedelta(seconds=60), updated_at=timezone.now()
            )
            return "retry_later"
        _refuse(call, "error_retell", detail=f"{exc.status} {exc.message}"[:300])
        return "error"
    Call.objects.filter(pk=call.pk, retell_call_id=None).update(retell_call_id=answer.call_id)
    return "placed"


def _refuse(call: Call, reason: str, detail: str = "") -> None:
    Call.objects.filter(pk=call.pk).update(
        status=CallStatus.ERROR if reason == "error_retell" else CallStatus.NOT_CONNECTED,
        disconnection_reason=reason[:60],
        error_reason=(detail or reason)[:300],
        updated_at=timezone.now(),
    )


def call_retry_if_unanswered(*, call: Call) -> Call | None:
    """After a final status: a queued outbound call Retell reports as no answer or busy is queued again
    after VOICE_RETRY_DELAY_S, up to VOICE_MAX_ATTEMPTS in all (a new row, unique on its key)."""
    if call.direction != CallDirection.OUTBOUND or call.disconnection_reason not in RETRY_REASONS:
        return None
    if call.voice_campaign_id is not None:
        return None  # a campaign's call: its campaign calls again, with its own count and delay
    if call.attempt >= settings.VOICE_MAX_ATTEMPTS or call.contact_id is None:
        return None
    root_key = call.idempotency_key or f"call-{call.pk}"
    key = f"{root_key.split('#')[0]}#{call.attempt + 1}"[:120]
    try:
        with transaction.atomic():
            retry = Call.objects.create(
                agent=call.agent,
                contact=call.contact,
                direction=CallDirection.OUTBOUND,
                from_number=call.from_number,
                to_number=call.to_number,
                status=CallStatus.QUEUED,
                due_at=timezone.now() + timedelta(seconds=settings.VOICE_RETRY_DELAY_S),
                idempotency_key=key,
                attempt=call.attempt + 1,
                retry_of=call,
                dynamic_variables=call.dynamic_variables,
            )
    except IntegrityError:  # this retry exists already (a duplicate webhook)
        return None
    return retry


def calls_due_place() -> int:
    """Beat: queue the placing task for every queued call whose due time has come (retries and calls
    held by quiet hours). A claimed call whose worker died is not placed again: its request may have
    left, so it stays "registered" (its webhooks, if the call exists, still find it)."""
    now = timezone.now()
    due = list(Call.objects.filter(status=CallStatus.QUEUED, due_at__lte=now).values_list("pk", flat=True)[:500])
    for call_id in due:
        _place_on_commit(call_id)
    return len(due)
