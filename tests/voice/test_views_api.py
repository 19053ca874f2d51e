"""Pages (members and managers), the API key form, and the REST API."""

from __future__ import annotations

from typing import Any

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
    assert "Outbound call · 1m05s · Ended: the agent hung up" in contact_page


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
        "direction": "both",
        "llm_model": "gpt-4o",
        "voicemail_action": "hangup",
    }
    assert manager.post("/voice/agents/new/", form).status_code == 302
    connection.set_tenant(tenant_a)
    created = VoiceAgent.objects.get(name="Form agent")
    assert created.from_number == "+5511930000002" and created.retell_agent_id in retell_quiet.agents
    assert created.status == "published" and retell_quiet.llms[created.retell_llm_id]["model"] == "gpt-4o"
    edit = manager.get(f"/voice/agents/{created.pk}/").content.decode()
    assert 'data-testid="in-step"' in edit and 'data-testid="agent-sync"' in edit
    retell_quiet.agents[created.retell_agent_id]["agent_name"] = "Renamed in Retell"
    edit = manager.get(f"/voice/agents/{created.pk}/").content.decode()
    assert 'data-testid="drift"' in edit and "Renamed in Retell" in edit  # drift shown on the agent page
    assert manager.post(f"/voice/agents/{created.pk}/sync/").status_code == 302
    assert 'data-testid="in-step"' in manager.get(f"/voice/agents/{created.pk}/").content.decode()
    bad = manager.post("/voice/agents/new/", dict(form, from_number="abc"))
    assert bad.status_code == 400


def test_start_call_is_queued_and_placed_by_the_voice_queue(
    agent: VoiceAgent,
    tenant_a: Tenant,
    owner_a: User,
    retell_quiet: RetellEmulator,
    retell_script: RetellEmulator,
    django_capture_on_commit_callbacks: Any,
) -> None:
    import httpx

    from voice.outbound import call_place

    contact = Contact.objects.create(phone="+5511987003333")
    manager = tenant_client(tenant_a, owner_a, lang="en")
    calls_before = len(retell_quiet.calls)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = manager.post("/calls/start/", {"contact": contact.pk, "agent": agent.pk}, follow=True)
    assert "Calling" in response.content.decode() and len(retell_quiet.calls) == calls_before  # not in the request
    assert any("apply_async" in repr(c.__code__.co_names) for c in callbacks)  # the task, queued on commit
    from django.db import connection

    connection.set_tenant(tenant_a)
    call = Call.objects.get(contact=contact)
    assert call.status == CallStatus.QUEUED and call.dynamic_variables["contact_phone"] == contact.phone
    httpx.post(f"{retell_quiet.base_url}/_emulator/errors", json={"status": 429})
    assert call_place(call_id=call.pk) == "retry_later"  # a retryable refusal: queued again, a minute later
    call.refresh_from_db()
    assert call.status == CallStatus.QUEUED and call.due_at is not None
    Call.objects.filter(pk=call.pk).update(due_at=call.created_at)
    assert call_place(call_id=call.pk) == "placed"
    assert call_place(call_id=call.pk) == "not_due"  # a second run of the task does nothing
    call.refresh_from_db()
    assert call.status == CallStatus.REGISTERED and call.retell_call_id in retell_quiet.calls
    response = manager.post("/calls/start/", {"contact": contact.pk, "agent": ""}, follow=True)
    assert "Choose an active voice agent." in response.content.decode()


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
    assert (body["status"], body["retell_call_id"], body["direction"]) == ("queued", None, "out")
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
    assert patched.json()["status"] == "published" and patched.json()["direction"] == "both"
    synced = api.post(f"/api/v1/voice-agents/{agent_id}/sync/")
    assert synced.status_code == 200 and synced.json()["published_version"] == 2  # created, patched, synced
    assert api.get(f"/api/v1/voice-agents/{agent_id}/drift/").json() == []
    retell_quiet.llms[patched.json()["retell_llm_id"]]["model"] = "gpt-4.1"
    assert api.get(f"/api/v1/voice-agents/{agent_id}/drift/").json() == [
        {"field": "model", "ours": "gpt-4o-mini", "remote": "gpt-4.1"}
    ]
    assert member_sync_refused(tenant_a, agent_a, agent_id)
    assert "api_key" not in str(api.get("/api/v1/voice-agents/").json())

    _t, member_raw = api_token_create(user=agent_a, tenant=tenant_a, name="voice-member")
    member_api = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {member_raw}")
    assert member_api.get("/api/v1/voice-agents/").status_code == 200
    assert member_api.post("/api/v1/voice-agents/", {"name": "x"}, content_type="application/json").status_code == 403
    assert api.delete(f"/api/v1/voice-agents/{agent_id}/").status_code == 204

    schema = api.get("/api/v1/schema/?format=json").json()
    assert "/api/v1/calls/" in schema["paths"] and "/api/v1/voice-agents/{id}/" in schema["paths"]
    assert "post" in schema["paths"]["/api/v1/calls/"]


def member_sync_refused(tenant: Tenant, member: User, agent_id: int) -> bool:
    _t, raw = api_token_create(user=member, tenant=tenant, name="voice-member-sync")
    client = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}")
    return bool(client.post(f"/api/v1/voice-agents/{agent_id}/sync/").status_code == 403)


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


def test_a_kanban_card_calls_its_contact_and_shows_the_analysed_call(
    agent: VoiceAgent, tenant_a: Tenant, agent_a: User, retell_quiet: RetellEmulator
) -> None:
    from django.db import connection

    from kanban.services import board_create, card_create

    contact = Contact.objects.create(phone="+5511987005555", name="Edu")
    board = board_create(name="Vendas voz")
    card = card_create(board=board, stage=board.stages.first(), title="Edu", contact=contact)
    member = tenant_client(tenant_a, agent_a, lang="en")
    page = member.get(f"/cards/{card.pk}/").content.decode()
    assert 'data-testid="card-call-panel"' in page and 'data-testid="card-call"' in page
    response = member.post("/calls/start/", {"contact": contact.pk, "agent": agent.pk, "next": f"/cards/{card.pk}/"})
    assert response.status_code == 302 and response["Location"] == f"/cards/{card.pk}/"
    evil = member.post("/calls/start/", {"contact": contact.pk, "agent": agent.pk, "next": "https://evil.test/"})
    assert evil["Location"] == f"/contacts/{contact.pk}/"  # no open redirect
    connection.set_tenant(tenant_a)
    call = Call.objects.filter(contact=contact).first()
    assert call is not None and call.status == CallStatus.QUEUED
    Call.objects.filter(pk=call.pk).update(
        status=CallStatus.ENDED, summary="Edu quer uma proposta.", sentiment="Positive", successful=True
    )
    page = member.get(f"/cards/{card.pk}/").content.decode()
    assert "Edu quer uma proposta." in page and 'data-testid="card-call-sentiment"' in page
    board_page = member.get(f"/boards/{board.pk}/").content.decode()
    assert 'data-testid="card-call-badge"' in board_page and "☎ Positive" in board_page
