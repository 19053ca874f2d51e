"""Incoming calls never end in silence: bridged to the number's published agent, else the tenant's
fallback (a pt-BR message, then a person or a voicemail) with the cause on the call and an alert."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pytest
from django.db import connection

from core import events
from emulators.retell import RetellEmulator
from tenants.models import Tenant
from tests.conftest import TWILIO_SID, TWILIO_TOKEN
from tests.messaging import post_twilio
from voice.models import AgentStatus, Call, CallStatus, FallbackCause, VoiceAgent, VoiceNumber, VoiceSettings
from voice.services import voice_agent_create, voice_fallback_set, voice_twilio_set

pytestmark = pytest.mark.django_db

SIP = re.compile(r"<Response><Dial><Sip>sip:(call_\w+)@sip\.retellai\.com;transport=tcp</Sip></Dial></Response>")


def number() -> str:
    return f"+55119310{uuid.uuid4().int % 100000:05d}"


def ring(route: str, to: str, caller: str = "+5511987001234", token: str = TWILIO_TOKEN, **extra: str) -> Any:
    params = {
        "CallSid": "CA" + uuid.uuid4().hex,
        "AccountSid": TWILIO_SID,
        "From": caller,
        "To": to,
        "Called": to,
        "Caller": caller,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        **extra,
    }
    response = post_twilio(f"/webhooks/twilio/voice/{route}/", params, token)
    response.params = params
    return response


@pytest.fixture
def alerts() -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []

    def raised(schema: str, payload: dict[str, Any]) -> None:
        seen.append(("raised", payload))

    def cleared(schema: str, payload: dict[str, Any]) -> None:
        seen.append(("cleared", payload))

    events.subscribe(events.ALERT_RAISED, raised)
    events.subscribe(events.ALERT_CLEARED, cleared)
    yield seen
    events._subscribers[events.ALERT_RAISED].remove(raised)
    events._subscribers[events.ALERT_CLEARED].remove(cleared)


def inbound_agent(e164: str, **extra: Any) -> VoiceAgent:
    return voice_agent_create(
        name=f"Recepção {e164[-4:]}", prompt="Atenda.", voice_id="11labs-Adrian", from_number=e164,
        direction="inbound", **extra,
    )  # fmt: skip


def test_a_published_agent_takes_the_call_over_sip(
    voice_a: VoiceSettings, tenant_a: Tenant, retell_script: RetellEmulator
) -> None:
    to = number()
    agent = inbound_agent(to)
    assert agent.status == AgentStatus.PUBLISHED and agent.published_version == 0
    response = ring(voice_a.webhook_route, to)
    assert response.status_code == 200 and response["Content-Type"] == "text/xml"
    match = SIP.search(response.content.decode())
    assert match, response.content
    connection.set_tenant(tenant_a)
    call = Call.objects.get(retell_call_id=match.group(1))
    assert (call.agent_id, call.status, call.fallback_cause) == (agent.pk, CallStatus.REGISTERED, "")
    remote = retell_script.calls[match.group(1)]
    assert (remote["agent_id"], remote["agent_version"], remote["to_number"]) == (agent.retell_agent_id, 0, to)


def test_the_numbers_own_assignment_wins(
    voice_a: VoiceSettings, tenant_a: Tenant, retell_script: RetellEmulator
) -> None:
    to = number()
    inbound_agent(to)
    other = inbound_agent(number())
    VoiceNumber.objects.create(e164=to, agent=other)
    match = SIP.search(ring(voice_a.webhook_route, to).content.decode())
    assert match and retell_script.calls[match.group(1)]["agent_id"] == other.retell_agent_id


def test_no_published_agent_plays_the_fallback_and_raises_the_alert(
    voice_a: VoiceSettings,
    tenant_a: Tenant,
    retell_script: RetellEmulator,
    alerts: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    to = number()
    calls_before = len(retell_script.calls)
    with django_capture_on_commit_callbacks(execute=True):
        response = ring(voice_a.webhook_route, to)
    twiml = response.content.decode()
    assert response.status_code == 200 and "<Reject" not in twiml and "<Sip>" not in twiml
    assert '<Say language="pt-BR" voice="Polly.Camila">Olá! Obrigado por ligar.' in twiml
    assert re.search(r'<Record action="[^"]+/webhooks/twilio/voice/[^"]+/recorded/" maxLength="120"', twiml), twiml
    connection.set_tenant(tenant_a)
    call = Call.objects.get(twilio_call_sid=response.params["CallSid"])
    assert (call.status, call.fallback_cause, call.fallback_action) == (
        CallStatus.NOT_CONNECTED,
        FallbackCause.NO_AGENT,
        "voicemail",
    )
    assert alerts == [
        (
            "raised",
            {
                "kind": "voice.inbound_fallback",
                "key": to,
                "detail": {"cause": "no_agent", "call_id": call.pk, "number": to},
            },
        )
    ]
    assert len(retell_script.calls) == calls_before  # Retell was never asked

    # Twilio retries the same webhook: the same answer, no second row, no second alert
    with django_capture_on_commit_callbacks(execute=True):
        again = post_twilio(f"/webhooks/twilio/voice/{voice_a.webhook_route}/", response.params, TWILIO_TOKEN)
    assert again.content == response.content and len(alerts) == 1

    # The caller leaves a voicemail; Twilio reports the call completed
    base = {"CallSid": call.twilio_call_sid, "AccountSid": TWILIO_SID}
    recorded = post_twilio(
        f"/webhooks/twilio/voice/{voice_a.webhook_route}/recorded/",
        {**base, "RecordingUrl": "https://api.twilio.com/rec/RE1", "RecordingSid": "RE1", "RecordingDuration": "7"},
        TWILIO_TOKEN,
    )
    assert recorded.status_code == 200 and "<Hangup/>" in recorded.content.decode()
    status = f"/webhooks/twilio/voice/{voice_a.webhook_route}/status/"
    assert (
        post_twilio(status, {**base, "CallStatus": "completed", "CallDuration": "31"}, TWILIO_TOKEN).status_code == 204
    )
    assert post_twilio(status, {**base, "CallStatus": "ringing"}, TWILIO_TOKEN).status_code == 204  # late: ignored
    connection.set_tenant(tenant_a)
    call.refresh_from_db()
    assert (call.recording_url, call.duration_ms, call.twilio_status) == (
        "https://api.twilio.com/rec/RE1",
        31000,
        "completed",
    )

    # An agent is published for the number: the next call reaches it and the alert is cleared
    inbound_agent(to)
    with django_capture_on_commit_callbacks(execute=True):
        assert SIP.search(ring(voice_a.webhook_route, to).content.decode())
    assert alerts[-1] == ("cleared", {"kind": "voice.inbound_fallback", "key": to})
    with django_capture_on_commit_callbacks(execute=True):
        ring(voice_a.webhook_route, to)
    assert len(alerts) == 2  # cleared once, not on every call


def test_an_unpublished_agent_forwards_to_a_person_in_the_voice_the_tenant_picked(
    voice_a: VoiceSettings, tenant_a: Tenant, retell_script: RetellEmulator
) -> None:
    to = number()
    agent = inbound_agent(to)
    VoiceAgent.objects.filter(pk=agent.pk).update(status=AgentStatus.SYNCED)
    voice_fallback_set(fallback_action="forward", fallback_number="+5511955554444", fallback_voice="Polly.Thiago")
    twiml = ring(voice_a.webhook_route, to).content.decode()
    assert '<Say language="pt-BR" voice="Polly.Thiago">' in twiml
    assert '<Dial timeout="30" answerOnBridge="true">+5511955554444</Dial>' in twiml and "<Record" not in twiml
    connection.set_tenant(tenant_a)
    call = Call.objects.filter(to_number=to).get()
    assert (call.fallback_cause, call.fallback_action) == (FallbackCause.NOT_PUBLISHED, "forward")


def test_a_retell_error_gets_the_fallback(
    voice_a: VoiceSettings, tenant_a: Tenant, retell_script: RetellEmulator, alerts: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    to = number()
    inbound_agent(to)
    httpx.post(f"{retell_script.base_url}/_emulator/errors", json={"status": 500, "path": "register-phone-call"})
    with django_capture_on_commit_callbacks(execute=True):
        twiml = ring(voice_a.webhook_route, to).content.decode()
    assert "<Say" in twiml and "<Record" in twiml and "<Sip>" not in twiml
    connection.set_tenant(tenant_a)
    call = Call.objects.filter(to_number=to).get()
    assert (call.fallback_cause, call.status, call.retell_call_id) == (
        FallbackCause.RETELL_ERROR,
        CallStatus.NOT_CONNECTED,
        None,
    )
    assert [a[1]["detail"]["cause"] for a in alerts] == ["retell_error"]


def test_a_slow_retell_gets_the_fallback_within_the_budget(
    voice_a: VoiceSettings, tenant_a: Tenant, retell_script: RetellEmulator, settings: Any
) -> None:
    settings.VOICE_INBOUND_BUDGET_S = 0.5
    to = number()
    inbound_agent(to)
    httpx.post(f"{retell_script.base_url}/_emulator/delay", json={"seconds": 2.0})
    started = time.monotonic()
    twiml = ring(voice_a.webhook_route, to).content.decode()
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, elapsed  # the caller waited for our budget, not for Retell
    assert "<Say" in twiml and "<Sip>" not in twiml
    connection.set_tenant(tenant_a)
    assert Call.objects.get(to_number=to).fallback_cause == FallbackCause.RETELL_TIMEOUT


def test_a_bad_signature_is_refused_and_no_sms_token_is_borrowed(
    voice_a: VoiceSettings, tenant_a: Tenant, channels: dict[str, int]
) -> None:
    to = number()
    assert ring(voice_a.webhook_route, to, token="not-the-token").status_code == 403
    assert ring("no-such-route", to).status_code == 403
    connection.set_tenant(tenant_a)
    # Without a voice token of its own, the SMS channel's token (same account) does not sign voice webhooks
    VoiceSettings.objects.update(twilio_auth_token="")
    assert ring(voice_a.webhook_route, to, token=TWILIO_TOKEN).status_code == 403
    connection.set_tenant(tenant_a)
    voice_twilio_set(account_sid="AC" + "b" * 32, auth_token=TWILIO_TOKEN)  # another account's webhooks
    assert ring(voice_a.webhook_route, to).status_code == 403
    connection.set_tenant(tenant_a)
    assert not Call.objects.filter(to_number=to).exists()
