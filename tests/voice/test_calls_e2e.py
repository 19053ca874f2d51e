"""An outbound AI call end to end: the contact page's button, Retell (the emulator) dialling out, and its
signed webhooks reaching the real app server (uvicorn) until the call is ended, transcribed and summarised."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection

from accounts.models import Role
from crm.models import Contact
from emulators.retell import RetellEmulator
from tenants.models import Tenant
from tests.conftest import RETELL_KEY, tenant_client
from tests.support import make_member, wait_until
from voice.models import Call, CallStatus
from voice.services import voice_agent_create, voice_api_key_set


def test_outbound_call_from_the_contact_page(
    app_server: str, tenants: Any, retell_emulator: RetellEmulator, committed: Any, celery_worker: Any
) -> None:
    alpha: Tenant = tenants[0]
    connection.set_tenant(alpha)
    route = voice_api_key_set(api_key=RETELL_KEY).webhook_route
    agent = voice_agent_create(
        name=f"Vendas {uuid.uuid4().hex[:6]}",
        prompt="Agende demos.",
        voice_id="11labs-Adrian",
        from_number="+5511930000009",
    )
    contact = Contact.objects.create(phone=f"+55119871{uuid.uuid4().int % 100000:05d}", name="Carla")
    connection.set_schema_to_public()
    manager = make_member(alpha, f"mgr-{uuid.uuid4().hex[:8]}@alpha.test", Role.ADMIN)
    client = tenant_client(alpha, manager)

    page = client.get(f"/contacts/{contact.pk}/").content.decode()
    assert ('data-testid="call-panel"' in page and "Call with AI agent" in page) or "Ligar" in page
    response = client.post("/calls/start/", {"contact": contact.pk, "agent": agent.pk})
    assert response.status_code == 302

    connection.set_tenant(alpha)
    call = Call.objects.get(contact=contact)

    def placed() -> bool:  # by the worker, on the voice queue
        call.refresh_from_db()
        return bool(call.retell_call_id)

    wait_until(placed, timeout=20, interval=0.2)
    assert call.status in (CallStatus.REGISTERED, CallStatus.ONGOING, CallStatus.ENDED)
    remote = retell_emulator.calls[call.retell_call_id]
    assert remote["to_number"] == contact.phone and remote["metadata"]["call_id"] == call.pk

    def analyzed() -> bool:
        call.refresh_from_db()
        return call.analyzed_at is not None

    wait_until(analyzed, timeout=20, interval=0.2)
    assert not [f for f in retell_emulator.callbacks.failures if route in f]  # earlier tests' calls had no server
    assert (call.status, call.duration_ms, call.disconnection_reason) == (CallStatus.ENDED, 90000, "user_hangup")
    assert call.transcript.startswith("Agent: Olá!") and len(call.transcript_object) == 5
    assert call.summary and call.sentiment == "Positive" and call.successful is True
    assert call.started_at and call.ended_at and call.recording_url

    connection.set_schema_to_public()
    english = tenant_client(alpha, manager, lang="en")
    page = english.get(f"/contacts/{contact.pk}/").content.decode()
    assert "Outbound call · 1m30s · Ended: the contact hung up" in page
    assert f"/calls/{call.pk}/" in page  # the panel's last calls
    detail = english.get(f"/calls/{call.pk}/").content.decode()
    assert detail.count('data-testid="turn"') == 5 and call.summary in detail and "<audio" in detail
