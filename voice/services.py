"""Writes of the voice app: Retell settings, agent sync, starting calls, applying Retell's call events."""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from tenants import usage
from tenants.models import Feature, Metric
from tenants.selectors import tenant_current, tenant_is_active
from voice.models import (
    FINAL_STATUSES,
    STATUS_RANK,
    AgentStatus,
    Call,
    CallDirection,
    CallStatus,
    FallbackAction,
    FallbackCause,
    VoiceAgent,
    VoicemailAction,
    VoiceNumber,
    VoiceSettings,
)
from voice.retell import AgentSpec, LlmSpec, RetellClient, RetellError, agent_body, llm_body
from voice.selectors import voice_settings_current

logger = logging.getLogger(__name__)

ROUTE_KIND = "voice_retell"  # intake routing table: our webhook route -> the tenant
AGENT_FIELDS = (
    "name",
    "prompt",
    "begin_message",
    "voice_id",
    "language",
    "from_number",
    "is_active",
    "direction",
    "llm_model",
    "voicemail_action",
    "voicemail_message",
)
# Fields we send but Retell may fill in or reshape on its side: not drift.
DRIFT_IGNORED = frozenset({"general_tools", "start_speaker", "post_call_analysis_data", "enable_voicemail_detection"})
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


def voice_twilio_set(
    *, account_sid: str, auth_token: str = "", sip_termination_uri: str | None = None
) -> VoiceSettings:
    """The Twilio account of the voice numbers: its SID and auth token (encrypted; the token signs
    Twilio's voice webhooks and is never shown back). An empty token keeps the stored one."""
    row = voice_settings_ensure()
    row.twilio_account_sid = account_sid.strip()
    if auth_token.strip():
        row.twilio_auth_token = auth_token.strip()
    if sip_termination_uri is not None:
        row.sip_termination_uri = sip_termination_uri.strip()
    row.save(update_fields=["twilio_account_sid", "twilio_auth_token", "sip_termination_uri", "updated_at"])
    audit_record(action=AuditAction.CHANNEL_CREDENTIALS, target=row, target_label="Twilio voice credentials")
    return row


FALLBACK_FIELDS = ("fallback_message", "fallback_voice", "fallback_action", "fallback_number", "voicemail_prompt")


def voice_fallback_set(**fields: Any) -> VoiceSettings:
    """What a caller hears when no agent can take an incoming call, and what happens next."""
    row = voice_settings_ensure()
    for name in FALLBACK_FIELDS:
        if name in fields:
            setattr(row, name, fields[name])
    if row.fallback_action == FallbackAction.FORWARD and not row.fallback_number:
        raise ValidationError({"fallback_number": _("Enter the number to forward calls to.")}, code="no_number")
    row.full_clean(exclude=["api_key", "twilio_auth_token"])
    row.save()
    return row


def voice_webhook_urls(*, row: VoiceSettings) -> dict[str, str]:
    base = settings.PUBLIC_WEBHOOK_BASE_URL
    return {
        "retell": f"{base}/webhooks/retell/{row.webhook_route}/",
        "twilio": f"{base}/webhooks/twilio/voice/{row.webhook_route}/",
        "twilio_status": f"{base}/webhooks/twilio/voice/{row.webhook_route}/status/",
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

SYNC_RETRY_FIRST_S = 60  # a sync Retell could not take is tried again after 1 min, 2, 4, ... up to an hour
SYNC_RETRY_MAX_S = 3600


def _agent_specs(agent: VoiceAgent, row: VoiceSettings) -> tuple[LlmSpec, AgentSpec]:
    llm = LlmSpec(general_prompt=agent.prompt, begin_message=agent.begin_message or None, model=agent.llm_model)
    remote_agent = AgentSpec(
        llm_id=agent.retell_llm_id,
        voice_id=agent.voice_id,
        agent_name=agent.name,
        language=agent.language,
        webhook_url=voice_webhook_urls(row=row)["retell"],
        voicemail_message=agent.voicemail_message if agent.voicemail_action == VoicemailAction.LEAVE_MESSAGE else "",
    )
    return llm, remote_agent


def _agent_push(agent: VoiceAgent, client: RetellClient, row: VoiceSettings, publish: bool) -> int:
    """Create or update the remote LLM, then the agent, then publish. Returns the agent's version.
    A remote LLM made here is deleted again when the agent step fails (no orphaned LLMs); if even that
    delete fails its id is kept on our row, so the next sync updates it instead of making another."""
    llm_spec, _spec = _agent_specs(agent, row)
    created_llm = False
    if agent.retell_llm_id:
        try:
            client.update_retell_llm(agent.retell_llm_id, llm_spec)
        except RetellError as exc:
            if exc.status != 404:
                raise
            agent.retell_llm_id = ""  # deleted on Retell's side: make it again
    if not agent.retell_llm_id:
        agent.retell_llm_id = client.create_retell_llm(llm_spec).llm_id
        created_llm = True
    _llm, agent_spec = _agent_specs(agent, row)
    try:
        remote = None
        if agent.retell_agent_id:
            try:
                remote = client.update_agent(agent.retell_agent_id, agent_spec)
            except RetellError as exc:
                if exc.status != 404:
                    raise
                agent.retell_agent_id = ""
        if remote is None:
            remote = client.create_agent(agent_spec)
            agent.retell_agent_id = remote.agent_id
    except RetellError:
        if created_llm:
            try:
                client.delete_retell_llm(agent.retell_llm_id)
                agent.retell_llm_id = ""
            except RetellError:
                logger.warning("could not delete the new Retell LLM of agent %s; kept for the next sync", agent.pk)
        raise
    if publish:
        client.publish_agent(agent.retell_agent_id)
    return remote.version


def voice_agent_sync(*, agent: VoiceAgent, publish: bool = True) -> VoiceAgent:
    """Create or update the agent's Retell LLM and agent (webhook pointed at this tenant) and publish it.
    Saves the ids and the outcome on the agent: published (or synced), or error with the reason; on
    error it also raises ValidationError with that reason."""
    try:
        client, row = _client()
        try:
            version = _agent_push(agent, client, row, publish)
        except RetellError as exc:
            logger.warning("retell agent sync failed for agent %s: %s (%s)", agent.pk, exc.status, exc.kind)
            raise _retell_failed(exc) from exc
    except ValidationError as exc:
        agent.status, agent.status_reason = AgentStatus.ERROR, " ".join(exc.messages)[:300]
        if exc.code == "retryable":  # Retell down or overloaded: beat tries again, backing off
            agent.sync_attempts = min(agent.sync_attempts + 1, 30)
            backoff = min(SYNC_RETRY_FIRST_S * 2 ** (agent.sync_attempts - 1), SYNC_RETRY_MAX_S)
            agent.sync_retry_at = timezone.now() + timedelta(seconds=backoff)
        else:  # refused (a key, a field): a person has to act; the next sync is theirs
            agent.sync_attempts, agent.sync_retry_at = 0, None
        agent.save(
            update_fields=[
                "status", "status_reason", "retell_llm_id", "retell_agent_id", "sync_retry_at", "sync_attempts",
                "updated_at",
            ]
        )  # fmt: skip
        voice_agent_publish_alert(agent=agent)
        raise
    agent.status = AgentStatus.PUBLISHED if publish else AgentStatus.SYNCED
    agent.status_reason = ""
    agent.sync_attempts, agent.sync_retry_at = 0, None
    agent.published_version = version if publish else agent.published_version
    agent.synced_at = timezone.now()
    agent.save()
    voice_agent_publish_alert(agent=agent)
    return agent


def voice_agents_resync_due() -> int:
    """Beat: sync again the active agents whose last sync failed only because Retell was unreachable or
    overloaded, once their retry time has come. Returns how many are published now."""
    due = VoiceAgent.objects.filter(is_active=True, status=AgentStatus.ERROR, sync_retry_at__lte=timezone.now())
    published = 0
    for agent in due.order_by("sync_retry_at")[:50]:
        with contextlib.suppress(ValidationError):  # kept on the agent, with the next retry time
            voice_agent_sync(agent=agent)
            published += 1
    return published


ALERT_KIND_UNPUBLISHED = "voice.agent_unpublished"


def voice_agent_publish_alert(*, agent: VoiceAgent) -> None:
    """An agent that answers one of our numbers but is not published (a failed sync, saved unpublished,
    switched off) leaves its callers on the fallback: raise an alert naming it; publishing clears it."""
    schema = connection.schema_name  # type: ignore[attr-defined]
    key = str(agent.pk)
    numbers = list(VoiceNumber.objects.filter(agent=agent).values_list("e164", flat=True)[:5])
    if (agent.is_published and agent.is_active) or not numbers:
        events.announce(events.ALERT_CLEARED, schema, {"kind": ALERT_KIND_UNPUBLISHED, "key": key})
        return
    detail = {
        "agent_id": agent.pk,
        "name": agent.name,
        "numbers": ", ".join(numbers),
        "status": agent.status if agent.is_active else "inactive",
        "reason": agent.status_reason or "-",
    }
    events.announce(events.ALERT_RAISED, schema, {"kind": ALERT_KIND_UNPUBLISHED, "key": key, "detail": detail})


def voice_agent_create(**fields: Any) -> VoiceAgent:
    """A new agent, saved as a draft, then synced and published to Retell. When Retell refuses, the
    agent stays with status "error" and the reason (see `status_reason`); a sync later retries."""
    agent = VoiceAgent(**{k: v for k, v in fields.items() if k in AGENT_FIELDS})
    agent.full_clean(exclude=["retell_agent_id", "retell_llm_id"])
    agent.save()
    with contextlib.suppress(ValidationError):
        voice_agent_sync(agent=agent)
    return agent


def voice_agent_update(*, agent: VoiceAgent, **fields: Any) -> VoiceAgent:
    """Change the agent here, then sync and publish it (an error is kept on the agent, as on create)."""
    for key, value in fields.items():
        if key in AGENT_FIELDS:
            setattr(agent, key, value)
    agent.full_clean(exclude=["retell_agent_id", "retell_llm_id"])
    agent.status = AgentStatus.DRAFT
    agent.save()
    with contextlib.suppress(ValidationError):
        voice_agent_sync(agent=agent)
    return agent


def voice_agent_delete(*, agent: VoiceAgent) -> None:
    """Removed here; its calls stay (without an agent). The Retell agent is left for the account owner."""
    events.announce(
        events.ALERT_CLEARED,
        connection.schema_name,  # type: ignore[attr-defined]
        {"kind": ALERT_KIND_UNPUBLISHED, "key": str(agent.pk)},
    )
    agent.delete()


@dataclass(frozen=True)
class Drift:
    field: str
    ours: Any
    remote: Any


def voice_agent_drift(*, agent: VoiceAgent) -> list[Drift]:
    """Where the agent on Retell differs from ours (someone edited it in Retell's dashboard, or a sync
    failed half-way). Empty: in step. Raises ValidationError when Retell cannot be asked."""
    if not agent.is_synced:
        return []
    client, row = _client()
    llm_spec, agent_spec = _agent_specs(agent, row)
    try:
        remote_llm = client.get_retell_llm(agent.retell_llm_id).raw
        remote_agent = client.get_agent(agent.retell_agent_id).raw
    except RetellError as exc:
        if exc.status == 404:
            return [Drift(field="agent", ours=agent.retell_agent_id, remote=None)]
        raise _retell_failed(exc) from exc
    found = []
    for body, remote in ((llm_body(llm_spec), remote_llm), (agent_body(agent_spec), remote_agent)):
        for name, ours in body.items():
            if name in DRIFT_IGNORED:
                continue
            theirs = remote.get(name)
            if name == "response_engine":
                ours, theirs = ours.get("llm_id"), _dict(theirs).get("llm_id")
            if (ours or None) != (theirs or None):
                found.append(Drift(field=name, ours=ours, remote=theirs))
    return found


# --- calls --------------------------------------------------------------------------------------


def _voice_consent_allows(contact: Contact) -> bool:
    """An AI call is an automated outreach: a contact who opted out of calls is never dialled."""
    return consent_allows(contact=contact, medium=crm_models.Medium.VOICE, marketing=True)


@dataclass(frozen=True)
class InboundAnswer:
    """What to tell Twilio about a ringing call: bridge it to Retell (sip_uri) or play the fallback."""

    call: Call
    sip_uri: str = ""
    fallback: FallbackAction | None = None
    settings: VoiceSettings | None = None


ALERT_KIND_INBOUND = "voice.inbound_fallback"


def voice_inbound_agent(*, number: str) -> tuple[VoiceAgent | None, str]:
    """The published agent that answers calls to this number, or None and the cause (a FallbackCause).
    The number's own assignment (VoiceNumber) wins; else an inbound-capable agent calling from it."""
    assigned = VoiceNumber.objects.filter(e164=number).select_related("agent").first()
    if assigned is not None and assigned.agent is not None:
        candidates = [assigned.agent]
    else:
        candidates = list(VoiceAgent.objects.filter(from_number=number, is_active=True).exclude(direction="outbound"))
    for agent in candidates:
        if agent.is_active and agent.answers_inbound and agent.is_published:
            return agent, ""
    return None, FallbackCause.NOT_PUBLISHED if candidates else FallbackCause.NO_AGENT


def _inbound_fallback(call: Call, row: VoiceSettings, cause: str, reason: str = "") -> InboundAnswer:
    action = FallbackAction(row.fallback_action)
    if action == FallbackAction.FORWARD and not row.fallback_number:
        action = FallbackAction.VOICEMAIL  # nobody to forward to: never leave the caller with nothing
    Call.objects.filter(pk=call.pk).update(
        status=CallStatus.NOT_CONNECTED,
        fallback_cause=cause,
        fallback_action=action,
        disconnection_reason=f"fallback_{cause}"[:60],
        error_reason=reason[:300],
        updated_at=timezone.now(),
    )
    call.refresh_from_db()
    logger.warning("inbound call %s to %s got the fallback (%s): %s", call.pk, call.to_number, cause, action)
    events.announce(
        events.ALERT_RAISED,
        connection.schema_name,  # type: ignore[attr-defined]
        {
            "kind": ALERT_KIND_INBOUND,
            "key": call.to_number,
            "detail": {"cause": cause, "call_id": call.pk, "number": call.to_number},
        },
    )
    return InboundAnswer(call=call, fallback=action, settings=row)


def _inbound_answer_of(call: Call, row: VoiceSettings) -> InboundAnswer:
    if call.retell_call_id:
        return InboundAnswer(call=call, sip_uri=sip_uri(call.retell_call_id), settings=row)
    return InboundAnswer(call=call, fallback=FallbackAction(call.fallback_action or row.fallback_action), settings=row)


def sip_uri(retell_call_id: str) -> str:
    return f"sip:{retell_call_id}@sip.retellai.com;transport=tcp"


def call_inbound_answer(*, from_number: str, to_number: str, twilio_call_sid: str) -> InboundAnswer:
    """A call ringing on one of our Twilio numbers: register it with the number's published inbound agent
    and bridge it over SIP; or, with no such agent, a Retell error or an answer slower than the budget
    (VOICE_INBOUND_BUDGET_S, well under Twilio's 15 s), the tenant's fallback (a message, then a person
    or a voicemail), the cause kept on the call and an alert raised. Never silence, never a reject.
    A retried Twilio webhook gets the same answer back."""
    row = voice_settings_ensure()
    existing = Call.objects.filter(twilio_call_sid=twilio_call_sid).first()
    if existing is not None and (existing.retell_call_id or existing.fallback_cause):
        return _inbound_answer_of(existing, row)
    contact = _contact_for(from_number)
    agent, cause = voice_inbound_agent(number=to_number)
    fields = {
        "agent": agent,
        "contact": contact,
        "direction": CallDirection.INBOUND,
        "from_number": from_number[:20],
        "to_number": to_number[:20],
    }
    call, _created = Call.objects.get_or_create(twilio_call_sid=twilio_call_sid, defaults=fields)
    if not tenant_is_active():  # a suspended tenant's agents answer no calls
        return _inbound_fallback(call, row, FallbackCause.SUSPENDED)
    refused, why = voice_refusal()
    if refused:  # voice is not in the plan, or its minutes are used up: the fallback answers
        return _inbound_fallback(call, row, FallbackCause.PLAN_LIMIT, reason=why)
    if agent is None:
        return _inbound_fallback(call, row, cause)
    if not row.api_key:
        return _inbound_fallback(call, row, FallbackCause.NO_API_KEY)
    try:
        answer = RetellClient(row.api_key).register_phone_call(
            agent_id=agent.retell_agent_id,
            agent_version=agent.published_version,
            from_number=from_number,
            to_number=to_number,
            direction="inbound",
            metadata={"call_id": call.pk, "contact_id": contact.pk if contact else None},
            timeout=settings.VOICE_INBOUND_BUDGET_S,
        )
    except RetellError as exc:
        logger.warning("retell register-phone-call failed for call %s: %s (%s)", call.pk, exc.status, exc.kind)
        cause = FallbackCause.RETELL_TIMEOUT if exc.timed_out else FallbackCause.RETELL_ERROR
        return _inbound_fallback(call, row, cause, reason=f"{exc.status} {exc.kind}")
    Call.objects.filter(pk=call.pk, retell_call_id=None).update(retell_call_id=answer.call_id)
    call.refresh_from_db()
    previous = (
        Call.objects.filter(direction=CallDirection.INBOUND, to_number=call.to_number, created_at__lte=call.created_at)
        .exclude(pk=call.pk)
        .order_by("-created_at", "-pk")
        .first()
    )
    if previous is not None and previous.fallback_cause:
        events.announce(
            events.ALERT_CLEARED,
            connection.schema_name,  # type: ignore[attr-defined]
            {"kind": ALERT_KIND_INBOUND, "key": call.to_number},
        )
    return InboundAnswer(call=call, sip_uri=sip_uri(str(call.retell_call_id)), settings=row)


def call_voicemail_recorded(*, twilio_call_sid: str, recording_url: str) -> Call | None:
    """The voicemail a caller left after the fallback (Twilio's <Record> action). The call's duration
    comes from Twilio's status callback."""
    call = Call.objects.filter(twilio_call_sid=twilio_call_sid).first()
    if call is None:
        return None
    fields: dict[str, Any] = {}
    if recording_url.startswith("https://") and len(recording_url) <= 500 and not call.recording_url:
        fields["recording_url"] = recording_url
    if fields:
        Call.objects.filter(pk=call.pk).update(**fields, updated_at=timezone.now())
        call.refresh_from_db()
    return call


TWILIO_CALL_RANK = {
    "queued": 0,
    "initiated": 0,
    "ringing": 1,
    "in-progress": 2,
    "answered": 2,
    "completed": 3,
    "busy": 3,
    "failed": 3,
    "no-answer": 3,
    "canceled": 3,
}


def call_twilio_status_apply(*, twilio_call_sid: str, call_status: str, duration_s: str = "") -> Call | None:
    """Twilio's voice status callback for a call that came in on our number: forward only. A fallback
    call (never bridged to Retell) takes its duration from here."""
    if call_status not in TWILIO_CALL_RANK:
        return None
    with transaction.atomic():
        call = Call.objects.select_for_update().filter(twilio_call_sid=twilio_call_sid).first()
        if call is None:
            return None
        current = TWILIO_CALL_RANK.get(call.twilio_status, -1)
        if TWILIO_CALL_RANK[call_status] <= current:
            return call
        call.twilio_status = call_status
        changed = ["twilio_status"]
        seconds = _count(duration_s)
        if call.fallback_cause and seconds is not None and TWILIO_CALL_RANK[call_status] == 3:
            call.duration_ms, call.ended_at = seconds * 1000, timezone.now()
            changed += ["duration_ms", "ended_at"]
            call_minutes_meter(duration_ms=call.duration_ms)
        call.save(update_fields=[*changed, "updated_at"])
    return call


def voice_refusal() -> tuple[str, str]:
    """Why the plan lets no call go now: (code, message in the active language), or ("", "")."""
    if not usage.feature_enabled(Feature.VOICE):
        return usage.FEATURE_CODE, usage.feature_refusal(Feature.VOICE)
    try:
        usage.limit_check(metric=Metric.VOICE_MINUTES)  # a minute left this month, at least
    except usage.LimitReached as exc:
        return usage.LIMIT_CODE, " ".join(exc.messages)
    return "", ""


def call_minutes_meter(*, duration_ms: int | None) -> int:
    """A call ended with its duration: its minutes (started minutes count whole) go on the plan's meter,
    once (the callers run it on the change to final only)."""
    minutes = math.ceil((duration_ms or 0) / 60_000)
    if minutes > 0:
        usage.usage_add(metric=Metric.VOICE_MINUTES, amount=minutes)
    return minutes


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
            events.announce(
                events.CALL_ANALYZED,
                connection.schema_name,  # type: ignore[attr-defined]
                {
                    "call_id": call.pk,
                    "contact_id": call.contact_id,
                    "sentiment": call.sentiment,
                    "successful": call.successful,
                },
            )
        if changed:
            call.save(update_fields=[*changed, "updated_at"])
        if call.is_final and not was_final:
            from voice.outbound import call_retry_if_unanswered

            call_minutes_meter(duration_ms=call.duration_ms)

            call_retry_if_unanswered(call=call)  # no answer or busy: queued again after a delay
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
