"""Retell's call webhooks and Twilio's incoming voice webhook, as the providers send them."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from core import events
from crm.models import Contact
from emulators.retell import RetellEmulator
from tenants.models import Tenant
from tests.conftest import RETELL_KEY, SMS_NUMBER, TWILIO_SID, TWILIO_TOKEN
from tests.messaging import post_twilio
from tests.voice.conftest import BETA_KEY, in_schema, now_ms, post_retell, retell_event
from voice.models import Call, CallDirection, CallStatus, VoiceSettings
from voice.services import voice_agent_create, voice_api_key_set

pytestmark = pytest.mark.django_db


def call_id() -> str:
    return "call_" + uuid.uuid4().hex[:16]


def outbound_call(retell_id: str | None = None) -> Call:
    contact = Contact.objects.create(phone=f"+55119870{uuid.uuid4().int % 100000:05d}")
    return Call.objects.create(
        direction=CallDirection.OUTBOUND, contact=contact, to_number=contact.phone, retell_call_id=retell_id
    )


def test_signature_is_checked_before_anything(voice_a: VoiceSettings, tenant_a: Tenant) -> None:
    route = voice_a.webhook_route
    call = outbound_call(call_id())
    payload = retell_event("call_started", str(call.retell_call_id))
    assert post_retell(route, payload, "wrong-key").status_code == 401
    assert post_retell(route, payload, None).status_code == 401  # missing header
    assert post_retell(route, payload, RETELL_KEY, at_ms=now_ms() - 6 * 60 * 1000).status_code == 401  # stale
    assert post_retell("no-such-route", payload, RETELL_KEY).status_code == 401
    in_schema(tenant_a)
    call.refresh_from_db()
    assert call.status == CallStatus.REGISTERED
    assert post_retell(route, payload, RETELL_KEY).status_code == 204
    in_schema(tenant_a)
    call.refresh_from_db()
    assert call.status == CallStatus.ONGOING and call.started_at is not None


def test_duplicates_and_late_events_change_nothing_twice(
    voice_a: VoiceSettings, tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    route = voice_a.webhook_route
    call = outbound_call(call_id())
    retell_id = str(call.retell_call_id)
    ended: list[dict[str, Any]] = []
    events.subscribe(events.CALL_ENDED, lambda schema, payload: ended.append({"schema": schema, **payload}))
    with django_capture_on_commit_callbacks(execute=True):
        assert post_retell(route, retell_event("call_ended", retell_id), RETELL_KEY).status_code == 204
        assert post_retell(route, retell_event("call_ended", retell_id), RETELL_KEY).status_code == 204  # retry
        # a call_started delivered late must not reopen the call
        assert post_retell(route, retell_event("call_started", retell_id), RETELL_KEY).status_code == 204
    in_schema(tenant_a)
    call.refresh_from_db()
    assert (call.status, call.duration_ms, call.disconnection_reason) == (CallStatus.ENDED, 90000, "user_hangup")
    assert call.transcript.startswith("Agent: Olá!") and call.transcript_object[1]["role"] == "user"
    assert str(call.cost_cents) == "12.500" and call.recording_url.endswith("call.wav")
    assert call.summary == "" and call.analyzed_at is None
    mine = [e for e in ended if e["call_id"] == call.pk]
    assert len(mine) == 1 and mine[0]["schema"] == tenant_a.schema_name and mine[0]["status"] == "ended"

    with django_capture_on_commit_callbacks(execute=True):
        post_retell(route, retell_event("call_analyzed", retell_id), RETELL_KEY)
        in_schema(tenant_a)
        analyzed_at = Call.objects.get(pk=call.pk).analyzed_at
        assert analyzed_at is not None
        post_retell(
            route, retell_event("call_analyzed", retell_id, call_analysis={"call_summary": "outro"}), RETELL_KEY
        )
    in_schema(tenant_a)
    call.refresh_from_db()
    assert (call.summary, call.sentiment, call.successful) == ("Cliente pediu retorno amanhã.", "Positive", True)
    assert call.analyzed_at == analyzed_at
    assert len([e for e in ended if e["call_id"] == call.pk]) == 1
    assert Call.objects.filter(retell_call_id=retell_id).count() == 1


def test_analysis_before_end_is_kept_and_end_changes_nothing(voice_a: VoiceSettings, tenant_a: Tenant) -> None:
    call = outbound_call(call_id())
    retell_id = str(call.retell_call_id)
    post_retell(voice_a.webhook_route, retell_event("call_analyzed", retell_id), RETELL_KEY)
    post_retell(voice_a.webhook_route, retell_event("call_ended", retell_id, duration_ms=1), RETELL_KEY)
    in_schema(tenant_a)
    call.refresh_from_db()
    assert (call.status, call.duration_ms, call.summary) == (CallStatus.ENDED, 90000, "Cliente pediu retorno amanhã.")


def test_event_finds_our_call_by_metadata_before_retell_answered(voice_a: VoiceSettings, tenant_a: Tenant) -> None:
    call = outbound_call(None)  # create-phone-call's answer not stored yet
    retell_id = call_id()
    post_retell(
        voice_a.webhook_route, retell_event("call_started", retell_id, metadata={"call_id": call.pk}), RETELL_KEY
    )
    in_schema(tenant_a)
    call.refresh_from_db()
    assert (call.retell_call_id, call.status) == (retell_id, CallStatus.ONGOING)


def test_a_webhook_for_alpha_never_touches_beta(voice_a: VoiceSettings, tenant_a: Tenant, tenant_b: Tenant) -> None:
    shared_id = call_id()
    in_schema(tenant_b)
    beta_settings = voice_api_key_set(api_key=BETA_KEY)
    beta_call = outbound_call(shared_id)
    in_schema(tenant_a)
    # signed with alpha's key for beta's route: refused
    assert (
        post_retell(beta_settings.webhook_route, retell_event("call_ended", shared_id), RETELL_KEY).status_code == 401
    )
    # alpha's own route, naming beta's call id and beta's row id in the metadata: applied in alpha only
    payload = retell_event("call_ended", shared_id, metadata={"call_id": beta_call.pk})
    assert post_retell(voice_a.webhook_route, payload, RETELL_KEY).status_code == 204
    in_schema(tenant_b)
    beta_call.refresh_from_db()
    assert (beta_call.status, beta_call.transcript) == (CallStatus.REGISTERED, "")
    in_schema(tenant_a)
    assert Call.objects.get(retell_call_id=shared_id).status == CallStatus.ENDED  # alpha's own record of it
    assert post_retell(beta_settings.webhook_route, retell_event("call_ended", shared_id), BETA_KEY).status_code == 204
    in_schema(tenant_b)
    beta_call.refresh_from_db()
    assert beta_call.status == CallStatus.ENDED


def twilio_call_params(caller: str, **extra: str) -> dict[str, str]:
    sid = "CA" + uuid.uuid4().hex
    return {
        "CallSid": sid,
        "AccountSid": TWILIO_SID,
        "From": caller,
        "To": SMS_NUMBER,
        "Caller": caller,
        "Called": SMS_NUMBER,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def test_twilio_incoming_call_is_bridged_to_retell(
    voice_a: VoiceSettings, tenant_a: Tenant, channels: dict[str, int], retell_emulator: RetellEmulator
) -> None:
    agent = voice_agent_create(name="Recepção", prompt="Atenda.", voice_id="11labs-Adrian", from_number=SMS_NUMBER)
    path = f"/webhooks/twilio/voice/{voice_a.webhook_route}/"
    params = twilio_call_params("+5511987005555")
    assert post_twilio(path, params, "wrong-token").status_code == 403
    response = post_twilio(path, params, TWILIO_TOKEN)
    assert response.status_code == 200 and response["Content-Type"] == "text/xml"
    twiml = response.content.decode()
    match = re.search(
        r"<Response><Dial><Sip>sip:(call_\w+)@sip\.retellai\.com;transport=tcp</Sip></Dial></Response>", twiml
    )
    assert match, twiml
    in_schema(tenant_a)
    call = Call.objects.select_related("contact").get(retell_call_id=match.group(1))
    assert (call.direction, call.agent_id, call.from_number, call.contact.phone) == (  # type: ignore[union-attr]
        CallDirection.INBOUND,
        agent.pk,
        "+5511987005555",
        "+5511987005555",
    )
    remote = retell_emulator.calls[match.group(1)]
    assert (remote["direction"], remote["agent_id"], remote["call_status"]) == (
        "inbound",
        agent.retell_agent_id,
        "registered",
    )
    again = post_twilio(path, params, TWILIO_TOKEN)  # Twilio retried the same call: same SIP target
    assert match.group(1) in again.content.decode()
    in_schema(tenant_a)
    assert Call.objects.filter(twilio_call_sid=params["CallSid"]).count() == 1
