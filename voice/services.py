"""Writes of the voice app: Retell settings, agent sync, starting calls, applying Retell's call events."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import AuditAction
from core import events
from crm import models as crm_models
from crm.models import Contact
from crm.services import consent_allows, contact_get_or_create
from tenants.selectors import tenant_current, tenant_is_active
from voice.models import FINAL_STATUSES, STATUS_RANK, Call, CallDirection, CallStatus, VoiceAgent, VoiceSettings
from voice.retell import AgentSpec, LlmSpec, RetellClient, RetellError
from voice.selectors import voice_agent_for_number, voice_settings_current

logger = logging.getLogger(__name__)

ROUTE_KIND = "voice_retell"  # intake routing table: our webhook route -> the tenant
AGENT_FIELDS = ("name", "prompt", "begin_message", "voice_id", "language", "from_number", "is_active")
APPLIED_EVENTS = {"call_started": CallStatus.ONGOING, "call_ended": CallStatus.ENDED, "call_analyzed": CallStatus.ENDED}


# --- erasure (LGPD) -------------------------------------------------------------------------------


def calls_erase_for_contact(*, contact_id: int) -> int:
    """Wipe what the calls of an erased contact say about them: transcripts, summary, the recording link
    and the customer's side of the numbers. Recordings are kept by Retell, never stored here."""
    wiped = 0
    for direction, number_field in ((CallDirection.INBOUND, "from_number"), (CallDirection.OUTBOUND, "to_number")):
        wiped += Call.objects.filter(contact_id=contact_id, direction=direction).update(
            transcript="",
            transcript_object=[],
            recording_url="",
            summary="",
            sentiment="",
            **{number_field: ""},
        )
    return wiped


def _contact_erased(schema_name: str, payload: dict[str, Any]) -> None:
    from django_tenants.utils import schema_context

    with schema_context(schema_name):
        calls_erase_for_contact(contact_id=int(payload["contact_id"]))


def subscribe() -> None:
    events.subscribe(events.CONTACT_ERASED, _contact_erased)


# --- settings -----------------------------------------------------------------------------------


def voice_settings_ensure() -> VoiceSettings:
    """The tenant's voice settings, made on first use with a fresh webhook route registered for intake."""
    from intake.services import route_register

    found = voice_settings_current()
    if found is not None:
        return found
    row = VoiceSettings.objects.create(webhook_route=secrets.token_urlsafe(16))
    route_register(kind=ROUTE_KIND, external_id=row.webhook_route, tenant_id=tenant_current().pk, channel_id=row.pk)
    return row


def voice_api_key_set(*, api_key: str) -> VoiceSettings:
    """Store the tenant's Retell API key (encrypted). It is never shown back."""
    row = voice_settings_ensure()
    row.api_key = api_key.strip()
    row.save(update_fields=["api_key", "updated_at"])
    audit_record(action=AuditAction.CHANNEL_CREDENTIALS, target=row, target_label="Retell API key")
    return row


def voice_webhook_urls(*, row: VoiceSettings) -> dict[str, str]:
    base = settings.PUBLIC_WEBHOOK_BASE_URL
    return {
        "retell": f"{base}/webhooks/retell/{row.webhook_route}/",
        "twilio": f"{base}/webhooks/twilio/voice/{row.webhook_route}/",
    }


def _client() -> tuple[RetellClient, VoiceSettings]:
    row = voice_settings_ensure()
    if not row.api_key:
        raise ValidationError(_("Set the Retell API key in the voice settings first."), code="no_api_key")
    return RetellClient(row.api_key), row


def _retell_failed(exc: RetellError) -> ValidationError:
    if exc.retryable:
        return ValidationError(_("Retell is unavailable right now. Try again in a minute."), code="retryable")
    if exc.status in (401, 403):
        return ValidationError(_("Retell refused the API key. Check it in the voice settings."), code="auth")
    return ValidationError(_("Retell refused the request: %(reason)s") % {"reason": exc.message[:200]}, code=exc.kind)


# --- agents -------------------------------------------------------------------------------------


def voice_agent_sync(*, agent: VoiceAgent) -> VoiceAgent:
    """Create (first time) or update the agent's Retell LLM and agent, pointing its webhook at this tenant.
    Fills in the Retell ids; the caller saves."""
    client, row = _client()
    llm_spec = LlmSpec(general_prompt=agent.prompt, begin_message=agent.begin_message or None)
    try:
        if agent.retell_llm_id:
            client.update_retell_llm(agent.retell_llm_id, llm_spec)
        else:
            agent.retell_llm_id = client.create_retell_llm(llm_spec).llm_id
        agent_spec = AgentSpec(
            llm_id=agent.retell_llm_id,
            voice_id=agent.voice_id,
            agent_name=agent.name,
            language=agent.language,
            webhook_url=voice_webhook_urls(row=row)["retell"],
        )
        if agent.retell_agent_id:
            client.update_agent(agent.retell_agent_id, agent_spec)
        else:
            agent.retell_agent_id = client.create_agent(agent_spec).agent_id
    except RetellError as exc:
        logger.warning("retell agent sync failed for agent %s: %s (%s)", agent.pk, exc.status, exc.kind)
        raise _retell_failed(exc) from exc
    return agent


def voice_agent_create(**fields: Any) -> VoiceAgent:
    """A new agent, synced to Retell before it is saved (nothing is saved if Retell refuses)."""
    agent = VoiceAgent(**{k: v for k, v in fields.items() if k in AGENT_FIELDS})
    agent.full_clean(exclude=["retell_agent_id", "retell_llm_id"])
    voice_agent_sync(agent=agent)
    agent.save()
    return agent


def voice_agent_update(*, agent: VoiceAgent, **fields: Any) -> VoiceAgent:
    for key, value in fields.items():
        if key in AGENT_FIELDS:
            setattr(agent, key, value)
    agent.full_clean(exclude=["retell_agent_id", "retell_llm_id"])
    voice_agent_sync(agent=agent)
    agent.save()
    return agent


def voice_agent_delete(*, agent: VoiceAgent) -> None:
    """Removed here; its calls stay (without an agent). The Retell agent is left for the account owner."""
    agent.delete()


# --- calls --------------------------------------------------------------------------------------


def _voice_consent_allows(contact: Contact) -> bool:
    """An AI call is an automated outreach: a contact who opted out of calls is never dialled."""
    return consent_allows(contact=contact, medium=crm_models.Medium.VOICE, marketing=True)


def call_start(*, contact: Contact, agent: VoiceAgent | None, actor: Any = None) -> Call:
    """Have an AI agent call a contact now (Retell dials out). The call row is committed before Retell is
    asked, so the call's webhooks always find it (through the metadata), even if they beat the answer."""
    if not tenant_is_active():
        raise ValidationError(
            _("This workspace is suspended: no calls are made until it is reactivated."), code="tenant_suspended"
        )
    if agent is None or not agent.is_active:
        raise ValidationError(_("Choose an active voice agent."), code="no_agent")
    if not agent.is_synced:
        raise ValidationError(_("This agent is not synced with Retell yet: save it again."), code="not_synced")
    if not agent.from_number:
        raise ValidationError(_("This agent has no phone number to call from."), code="no_number")
    if contact.erased_at is not None or not contact.phone:
        raise ValidationError(_("This contact has no phone number to call."), code="no_contact_number")
    if not _voice_consent_allows(contact):
        raise ValidationError(_("This contact opted out of calls."), code="opted_out")
    client, _row = _client()
    call = Call.objects.create(
        agent=agent,
        contact=contact,
        initiated_by=actor if getattr(actor, "is_authenticated", False) else None,
        direction=CallDirection.OUTBOUND,
        from_number=agent.from_number,
        to_number=contact.phone,
        status=CallStatus.REGISTERED,
    )
    try:
        answer = client.create_phone_call(
            from_number=agent.from_number,
            to_number=contact.phone,
            agent_id=agent.retell_agent_id,
            metadata={"call_id": call.pk, "contact_id": contact.pk},
        )
    except RetellError as exc:
        logger.warning("retell create-phone-call failed for call %s: %s (%s)", call.pk, exc.status, exc.kind)
        # An unknown outcome stays "registered": its webhooks, if the call exists, will still find it.
        if exc.kind != "unknown":
            Call.objects.filter(pk=call.pk).update(
                status=CallStatus.ERROR, disconnection_reason="error_retell", updated_at=timezone.now()
            )
        raise _retell_failed(exc) from exc
    Call.objects.filter(pk=call.pk, retell_call_id=None).update(retell_call_id=answer.call_id)
    call.refresh_from_db()
    return call


def call_inbound_register(*, from_number: str, to_number: str, twilio_call_sid: str) -> Call:
    """A call ringing on our Twilio number: register it with Retell so Twilio can bridge it over SIP.
    A retried Twilio webhook gets the same call back."""
    existing = Call.objects.filter(twilio_call_sid=twilio_call_sid or None).exclude(retell_call_id=None).first()
    if twilio_call_sid and existing is not None:
        return existing
    agent = voice_agent_for_number(number=to_number)
    if agent is None or not tenant_is_active():  # a suspended tenant's agents answer no calls
        raise ValidationError(_("No active voice agent answers this number."), code="no_agent")
    client, _row = _client()
    contact = _contact_for(from_number)
    fields = {
        "agent": agent,
        "contact": contact,
        "direction": CallDirection.INBOUND,
        "from_number": from_number[:20],
        "to_number": to_number[:20],
    }
    if twilio_call_sid:
        call, _created = Call.objects.get_or_create(twilio_call_sid=twilio_call_sid, defaults=fields)
    else:
        call = Call.objects.create(**fields)
    try:
        answer = client.register_phone_call(
            agent_id=agent.retell_agent_id,
            from_number=from_number,
            to_number=to_number,
            direction="inbound",
            metadata={"call_id": call.pk, "contact_id": contact.pk if contact else None},
        )
    except RetellError as exc:
        logger.warning("retell register-phone-call failed for call %s: %s (%s)", call.pk, exc.status, exc.kind)
        raise _retell_failed(exc) from exc
    Call.objects.filter(pk=call.pk, retell_call_id=None).update(retell_call_id=answer.call_id)
    call.refresh_from_db()
    return call


def _contact_for(phone: str) -> Contact | None:
    try:
        return contact_get_or_create(phone=phone, from_provider=True) if phone else None
    except ValidationError:
        return None  # a withheld or odd caller id: the call is kept without a contact


def _when(ms: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC) if ms else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _count(value: Any) -> int | None:
    """A non-negative integer that fits our columns, from a JSON number or digit string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int | float) and 0 <= value < 2**31:
        return int(value)
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _call_for_event(data: dict[str, Any]) -> Call | None:
    """The call this event is about, locked; found by Retell's id, else by our id in the metadata (an
    outbound call whose webhook beat Retell's answer), else made (a call that started elsewhere)."""
    call_id = str(data["call_id"])[:80]
    locked = Call.objects.select_for_update()
    call = locked.filter(retell_call_id=call_id).first()
    if call is not None:
        return call
    ours = str(_dict(data.get("metadata")).get("call_id") or "")
    if ours.isdigit():
        call = locked.filter(pk=int(ours), retell_call_id=None).first()
        if call is not None:
            call.retell_call_id = call_id
            call.save(update_fields=["retell_call_id", "updated_at"])
            return call
    direction = CallDirection.INBOUND if data.get("direction") == "inbound" else CallDirection.OUTBOUND
    other_party = str(data.get("from_number" if direction == CallDirection.INBOUND else "to_number") or "")
    try:
        with transaction.atomic():
            return Call.objects.create(
                retell_call_id=call_id,
                direction=direction,
                from_number=str(data.get("from_number") or "")[:20],
                to_number=str(data.get("to_number") or "")[:20],
                agent=VoiceAgent.objects.filter(retell_agent_id=str(data.get("agent_id") or "x")).first(),
                contact=_contact_for(other_party),
            )
    except IntegrityError:  # a concurrent delivery of the same call made it first
        return locked.filter(retell_call_id=call_id).first()


def _fill(call: Call, data: dict[str, Any], only_empty: bool) -> list[str]:
    """Copy the call object's fields onto our row; with only_empty, never overwrite what we have."""
    # Signed by the tenant's own key, so only as trustworthy as the tenant: every field is checked for
    # type and size before it reaches a column.
    analysis = _dict(data.get("call_analysis"))
    cost = _dict(data.get("call_cost")).get("combined_cost")
    try:
        cost_value = Decimal(str(cost)) if isinstance(cost, int | float) and not isinstance(cost, bool) else None
    except InvalidOperation:
        cost_value = None
    if cost_value is not None and not (cost_value.is_finite() and abs(cost_value) < 10**8):
        cost_value = None
    duration = _count(data.get("duration_ms"))
    start, end = _count(data.get("start_timestamp")), _count(data.get("end_timestamp"))
    if duration is None and start and end and end >= start:
        duration = _count(end - start)
    recording = str(data.get("recording_url") or "")
    transcript_object = data.get("transcript_object")
    values: dict[str, Any] = {
        "started_at": _when(data.get("start_timestamp")),
        "ended_at": _when(data.get("end_timestamp")),
        "duration_ms": duration,
        "disconnection_reason": str(data.get("disconnection_reason") or "")[:60],
        "transcript": str(data.get("transcript") or ""),
        "transcript_object": transcript_object if isinstance(transcript_object, list) else [],
        "recording_url": recording if recording.startswith(("https://", "http://")) and len(recording) <= 500 else "",
        "summary": str(analysis.get("call_summary") or ""),
        "sentiment": str(analysis.get("user_sentiment") or "")[:20],
        "successful": analysis.get("call_successful") if isinstance(analysis.get("call_successful"), bool) else None,
        "cost_cents": cost_value,
    }
    changed = []
    for name, value in values.items():
        if value in (None, "", []):
            continue
        current = getattr(call, name)
        if only_empty and current not in (None, "", []):
            continue
        if current != value:
            setattr(call, name, value)
            changed.append(name)
    return changed


def call_event_apply(*, payload: dict[str, Any]) -> Call | None:
    """Apply one Retell webhook (call_started, call_ended, call_analyzed) in the current tenant schema.
    Forward only and idempotent: a duplicate, or a call_started arriving after call_ended, changes nothing.
    Announces CALL_ENDED once, after commit, when the call reaches a final status."""
    event = str(payload.get("event") or "")
    data = payload.get("call") or payload.get("data") or {}
    if event not in APPLIED_EVENTS or not isinstance(data, dict) or not isinstance(data.get("call_id"), str | int):
        return None
    if isinstance(data["call_id"], bool) or not str(data["call_id"]) or len(str(data["call_id"])) > 80:
        return None
    status = str(data.get("call_status") or APPLIED_EVENTS[event])
    if status not in STATUS_RANK or (event != "call_started" and status not in FINAL_STATUSES):
        status = APPLIED_EVENTS[event]
    with transaction.atomic():
        call = _call_for_event(data)
        if call is None:
            return None
        was_final = call.is_final
        changed: list[str] = []
        if STATUS_RANK[CallStatus(status)] > STATUS_RANK[CallStatus(call.status)]:
            call.status = status
            changed = ["status", *_fill(call, data, only_empty=False)]
        elif event == "call_analyzed" and call.is_final and call.analyzed_at is None:
            changed = _fill(call, data, only_empty=True)
        if event == "call_analyzed" and call.is_final and call.analyzed_at is None:
            call.analyzed_at = timezone.now()
            changed.append("analyzed_at")
        if changed:
            call.save(update_fields=[*changed, "updated_at"])
        if call.is_final and not was_final:
            events.announce(
                events.CALL_ENDED,
                connection.schema_name,  # type: ignore[attr-defined]
                {
                    "call_id": call.pk,
                    "contact_id": call.contact_id,
                    "direction": call.direction,
                    "status": call.status,
                    "duration_ms": call.duration_ms,
                    "disconnection_reason": call.disconnection_reason,
                },
            )
    return call


def call_refresh(*, call: Call) -> Call:
    """Fetch the call from Retell (get-call) and apply it like a webhook: for a call whose webhooks got lost."""
    if not call.retell_call_id:
        return call
    client, _row = _client()
    try:
        remote = client.get_call(call.retell_call_id)
    except RetellError as exc:
        raise _retell_failed(exc) from exc
    event = "call_analyzed" if remote.raw.get("call_analysis") else "call_started"
    if event == "call_started" and remote.call_status in FINAL_STATUSES:
        event = "call_ended"
    return call_event_apply(payload={"event": event, "call": remote.raw}) or call
