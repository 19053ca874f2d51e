"""Pages (members and managers), the API key form, and the REST API."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from accounts.services import api_token_create
from crm.models import Contact
from emulators.retell import RetellEmulator
from tenants.models import Tenant
from tests.conftest import RETELL_KEY, tenant_client
from voice.models import Call, CallDirection, CallStatus, VoiceAgent, VoiceSettings
from voice.selectors import voice_api_key

pytestmark = pytest.mark.django_db


def test_pages_for_members_and_managers(agent: VoiceAgent, tenant_a: Tenant, owner_a: User, agent_a: User) -> None:
    contact = Contact.objects.create(phone="+5511987002222", name="Duda")
    call = Call.objects.create(
        direction=CallDirection.OUTBOUND,
        contact=contact,
        agent=agent,
        status=CallStatus.ENDED,
        duration_ms=65000,
        disconnection_reason="agent_hangup",
        transcript_object=[{"role": "agent", "content": "Olá!"}, {"role": "user", "content": "Oi"}],
        summary="Resumo da ligação",
    )
    member = tenant_client(tenant_a, agent_a, lang="en")
    manager = tenant_client(tenant_a, owner_a, lang="en")
    for url in ("/calls/", f"/calls/{call.pk}/", "/voice/agents/", "/calls/?direction=out&status=ended"):
        assert member.get(url).status_code == 200, url
    assert "Calls" in member.get("/calls/").content.decode()
    assert 'data-testid="call-row"' not in member.get("/calls/?direction=in").content.decode()
    detail = member.get(f"/calls/{call.pk}/").content.decode()
    assert detail.count('data-testid="turn"') == 2 and "Resumo da ligação" in detail and "1m05s" in detail
    for url in ("/voice/agents/new/", f"/voice/agents/{agent.pk}/", "/voice/settings/"):
        assert member.get(url).status_code == 403, url
        assert manager.get(url).status_code == 200, url
    assert Client(HTTP_HOST="alpha.localhost").get("/calls/").status_code == 302  # to the login page
    contact_page = member.get(f"/contacts/{contact.pk}/").content.decode()
    assert 'data-testid="call-panel"' in contact_page and "Call with AI agent" in contact_page
    assert "Outbound call · 1m05s · Ended: agent_hangup" in contact_page


def test_agent_form_and_api_key_form(
    voice_a: VoiceSettings, tenant_a: Tenant, owner_a: User, retell_quiet: RetellEmulator
) -> None:
    manager = tenant_client(tenant_a, owner_a, lang="en")
    page = manager.get("/voice/settings/").content.decode()
    assert RETELL_KEY not in page and "An API key is set" in page and "/webhooks/twilio/voice/" in page
    assert manager.post("/voice/settings/", {"api_key": "key_new_secret_1"}).status_code == 302
    from django.db import connection

    connection.set_tenant(tenant_a)
    assert voice_api_key() == "key_new_secret_1"
    assert "key_new_secret_1" not in manager.get("/voice/settings/").content.decode()
    VoiceSettings.objects.update(api_key="")
    assert 'data-testid="no-api-key"' in manager.get("/voice/agents/new/").content.decode()
    assert 'data-testid="no-api-key"' in manager.get("/voice/agents/").content.decode()
    connection.set_tenant(tenant_a)
    VoiceSettings.objects.update(api_key=RETELL_KEY)
    form = {
        "name": "Form agent",
        "prompt": "Olá",
        "voice_id": "11labs-Adrian",
        "language": "pt-BR",
        "from_number": "11 93000-0002",
        "is_active": "on",
    }
    assert manager.post("/voice/agents/new/", form).status_code == 302
    connection.set_tenant(tenant_a)
    created = VoiceAgent.objects.get(name="Form agent")
    assert created.from_number == "+5511930000002" and created.retell_agent_id in retell_quiet.agents
    bad = manager.post("/voice/agents/new/", dict(form, from_number="abc"))
    assert bad.status_code == 400


def test_start_call_errors_are_shown_to_the_user(
    agent: VoiceAgent, tenant_a: Tenant, owner_a: User, retell_quiet: RetellEmulator
) -> None:
    import httpx

    contact = Contact.objects.create(phone="+5511987003333")
    manager = tenant_client(tenant_a, owner_a, lang="en")
    httpx.post(f"{retell_quiet.base_url}/_emulator/errors", json={"status": 429})
    response = manager.post("/calls/start/", {"contact": contact.pk, "agent": agent.pk}, follow=True)
    assert "Retell is unavailable right now" in response.content.decode()
    response = manager.post("/calls/start/", {"contact": contact.pk, "agent": ""}, follow=True)
    assert "Choose an active voice agent." in response.content.decode()
    from django.db import connection

    connection.set_tenant(tenant_a)
    assert list(Call.objects.filter(contact=contact).values_list("status", flat=True)) == [CallStatus.ERROR]


def test_calls_and_agents_api(
    agent: VoiceAgent, tenant_a: Tenant, owner_a: User, agent_a: User, retell_quiet: RetellEmulator
) -> None:
    contact = Contact.objects.create(phone="+5511987004444")
    _token, raw = api_token_create(user=owner_a, tenant=tenant_a, name="voice")
    api = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}")
    created = api.post(
        "/api/v1/calls/", {"contact_id": contact.pk, "agent_id": agent.pk}, content_type="application/json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (
        body["status"] == "registered" and body["retell_call_id"] in retell_quiet.calls and body["direction"] == "out"
    )
    listed = api.get(f"/api/v1/calls/?contact={contact.pk}").json()["results"]
    assert [c["id"] for c in listed] == [body["id"]]
    assert api.get(f"/api/v1/calls/{body['id']}/").json()["to_number"] == contact.phone
    assert api.get("/api/v1/calls/?contact=999999").json()["results"] == []
    bad = api.post("/api/v1/calls/", {"contact_id": contact.pk, "agent_id": 999999}, content_type="application/json")
    assert bad.status_code == 400

    new_agent = api.post(
        "/api/v1/voice-agents/",
        {"name": "API agent", "prompt": "Oi", "voice_id": "11labs-Adrian", "from_number": "+5511930000003"},
        content_type="application/json",
    )
    assert new_agent.status_code == 201, new_agent.content
    agent_id = new_agent.json()["id"]
    assert new_agent.json()["retell_agent_id"] in retell_quiet.agents
    patched = api.patch(f"/api/v1/voice-agents/{agent_id}/", {"prompt": "Novo"}, content_type="application/json")
    assert patched.status_code == 200
    assert retell_quiet.llms[patched.json()["retell_llm_id"]]["general_prompt"] == "Novo"
    assert "api_key" not in str(api.get("/api/v1/voice-agents/").json())

    _t, member_raw = api_token_create(user=agent_a, tenant=tenant_a, name="voice-member")
    member_api = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {member_raw}")
    assert member_api.get("/api/v1/voice-agents/").status_code == 200
    assert member_api.post("/api/v1/voice-agents/", {"name": "x"}, content_type="application/json").status_code == 403
    assert api.delete(f"/api/v1/voice-agents/{agent_id}/").status_code == 204

    schema = api.get("/api/v1/schema/?format=json").json()
    assert "/api/v1/calls/" in schema["paths"] and "/api/v1/voice-agents/{id}/" in schema["paths"]
    assert "post" in schema["paths"]["/api/v1/calls/"]


def test_a_contact_who_opted_out_of_calls_is_never_dialled(
    agent: VoiceAgent, tenant_a: Tenant, owner_a: User, retell_emulator: RetellEmulator
) -> None:
    from crm.models import ConsentStatus, Medium
    from crm.services import consent_record

    contact = Contact.objects.create(phone="+5511987004444")
    consent_record(contact=contact, medium=Medium.VOICE, status=ConsentStatus.OPTED_OUT, source="asked on the phone")
    calls_before = len(retell_emulator.calls)
    manager = tenant_client(tenant_a, owner_a, lang="en")
    response = manager.post("/calls/start/", {"contact": contact.pk, "agent": agent.pk}, follow=True)
    assert "This contact opted out of calls." in response.content.decode()
    assert not Call.objects.filter(contact=contact).exists()
    assert len(retell_emulator.calls) == calls_before  # Retell was never asked to dial
    consent_record(contact=contact, medium=Medium.VOICE, status=ConsentStatus.OPTED_IN, source="called us back")
    manager.post("/calls/start/", {"contact": contact.pk, "agent": agent.pk})
    assert Call.objects.filter(contact=contact).exists()
