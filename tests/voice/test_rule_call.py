"""An automation rule's "place an AI call" action: built in the editor or the API, run by the real rule
engine, queued on the same path as the contact page's button (the `voice` queue places it at the Retell
emulator), refused for a contact who opted out of calls, held by quiet hours, once per event."""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from accounts.models import Role
from accounts.services import api_token_create
from automations.models import Rule, RuleRun, RunOutcome
from automations.services import RUN_FLAG, rule_events_process, rule_save
from campaigns.models import QuietHours
from core.redis import redis_client
from crm.models import ConsentStatus, Contact, Medium, Tag
from crm.services import consent_record, contacts_tag
from emulators.retell import RetellEmulator
from tenants.models import Tenant
from tests.conftest import RETELL_KEY, tenant_client
from tests.support import make_member, wait_until
from voice.models import Call, CallStatus, VoiceAgent, VoiceSettings
from voice.outbound import call_place
from voice.services import voice_agent_create, voice_api_key_set


def _phone() -> str:
    return f"+55119873{uuid.uuid4().int % 100000:05d}"


@pytest.fixture
def settle(django_capture_on_commit_callbacks: Any) -> Callable[..., list[RuleRun]]:
    """Do what the domain does, then run the rule worker's body until no rule event is left."""

    def run(action: Callable[[], Any]) -> list[RuleRun]:
        with django_capture_on_commit_callbacks(execute=True):
            action()
        for _ in range(4):
            with django_capture_on_commit_callbacks(execute=True):
                if rule_events_process() == 0:
                    break
        return list(RuleRun.objects.order_by("id"))

    return run


@pytest.mark.django_db
def test_the_rule_queues_a_call_placed_at_retell_skips_the_opted_out_and_waits_out_quiet_hours(
    agent: VoiceAgent, voice_a: VoiceSettings, retell_quiet: RetellEmulator, settle: Callable[..., list[RuleRun]]
) -> None:
    QuietHours.objects.update_or_create(pk=1, defaults={"enabled": False})
    ligar = Tag.objects.get_or_create(name="ligar")[0]
    rule = rule_save(
        name="Ligar para o lead",
        trigger="tag_added",
        trigger_config={"tag_id": ligar.pk},
        actions=[{"type": "voice_call", "agent_id": str(agent.pk)}],
    )
    assert rule.actions == [{"type": "voice_call", "agent_id": agent.pk}]
    willing = Contact.objects.create(phone=_phone(), name="Bruna Lima", custom_fields={"plano": "Prata"})
    refused = Contact.objects.create(phone=_phone(), name="Rui Não")
    consent_record(contact=refused, medium=Medium.VOICE, status=ConsentStatus.OPTED_OUT, source="asked")

    runs = settle(lambda: contacts_tag(contacts=Contact.objects.filter(pk__in=[willing.pk, refused.pk]), tag=ligar))
    by_contact = {run.contact_id: run for run in runs if run.rule_id == rule.pk}
    assert by_contact[willing.pk].outcome == RunOutcome.DONE
    [done] = by_contact[willing.pk].actions_done
    call = Call.objects.get(contact=willing)
    assert done["ok"] and done["detail"] == f"call {call.pk} queued"
    skipped = by_contact[refused.pk].actions_done[0]
    assert skipped["skipped"] and skipped["detail"] in (
        "This contact opted out of calls.",
        "Este contato pediu para não receber ligações.",
    )
    assert not Call.objects.filter(contact=refused).exists()

    assert rule_events_process() == 0  # nothing left: the same event never queues a second call
    assert Call.objects.filter(contact=willing).count() == 1
    calls_before = len(retell_quiet.calls)
    assert call_place(call_id=call.pk) == "placed"  # what the `voice` queue's task runs
    call.refresh_from_db()
    remote = retell_quiet.calls[str(call.retell_call_id)]
    assert len(retell_quiet.calls) == calls_before + 1
    assert remote["to_number"] == willing.phone and remote["from_number"] == agent.from_number
    assert remote["retell_llm_dynamic_variables"]["custom_plano"] == "Prata"
    assert remote["retell_llm_dynamic_variables"]["trigger"] == "tag_added"

    QuietHours.objects.filter(pk=1).update(
        enabled=True, start=datetime.time(0, 0), end=datetime.time(23, 59), quiet_sundays=False
    )
    late = Contact.objects.create(phone=_phone(), name="Tarde")
    settle(lambda: contacts_tag(contacts=Contact.objects.filter(pk=late.pk), tag=ligar))
    held = Call.objects.get(contact=late)
    assert call_place(call_id=held.pk) == "quiet_hours"
    held.refresh_from_db()
    assert held.status == CallStatus.QUEUED and len(retell_quiet.calls) == calls_before + 1


@pytest.mark.django_db
def test_the_editor_offers_outbound_agents_and_the_api_refuses_an_inbound_only_one(
    agent: VoiceAgent, tenant_a: Tenant, retell_quiet: RetellEmulator
) -> None:
    inbound_only = voice_agent_create(
        name="Só recebe", prompt="p", voice_id="11labs-Adrian", from_number="+5511930000079", direction="inbound"
    )
    owner = make_member(tenant_a, f"rule-call-{uuid.uuid4().hex[:6]}@alpha.test", Role.ADMIN)
    page = tenant_client(tenant_a, owner, lang="pt-br").get("/automations/new/").content.decode()
    options = json.loads(page.split('id="rule-options" type="application/json">')[1].split("</script>")[0])
    assert {"id": "voice_call", "name": "Fazer uma ligação com IA"} in options["action_types"]
    assert {"id": agent.pk, "name": agent.name} in options["voice_agents"]
    assert inbound_only.pk not in {a["id"] for a in options["voice_agents"]}
    assert 'data-testid="action-voice-agent"' in page

    _token, raw = api_token_create(user=owner, tenant=tenant_a, name="rules")
    api = Client(HTTP_HOST=f"{tenant_a.slug}.localhost", HTTP_AUTHORIZATION=f"Token {raw}")
    body = {"name": "Ligar", "trigger": "lead_won", "actions": [{"type": "voice_call", "agent_id": agent.pk}]}
    created = api.post("/api/v1/rules/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["actions"] == [{"type": "voice_call", "agent_id": agent.pk}]
    wrong = {**body, "actions": [{"type": "voice_call", "agent_id": inbound_only.pk}]}
    refused = api.post("/api/v1/rules/", wrong, content_type="application/json")
    assert refused.status_code == 400 and "só atende ligações recebidas" in refused.json()["errors"]["actions"][0]


def test_a_rule_on_the_worker_places_the_call_at_the_retell_emulator(
    celery_worker: Any, tenants: Any, retell_emulator: RetellEmulator, committed: Any
) -> None:
    alpha: Tenant = tenants[0]
    connection.set_tenant(alpha)
    run = uuid.uuid4().hex[:6]
    QuietHours.objects.update_or_create(pk=1, defaults={"enabled": False})
    voice_api_key_set(api_key=RETELL_KEY)
    caller = voice_agent_create(
        name=f"Regra {run}", prompt="Ligue.", voice_id="11labs-Adrian", from_number="+5511930000081",
        direction="outbound",
    )  # fmt: skip
    tag = Tag.objects.get_or_create(name=f"ligar-{run}")[0]
    owner = make_member(alpha, f"rule-call-e2e-{run}@alpha.test", Role.OWNER)
    spec = {"actions": [{"type": "voice_call", "agent_id": str(caller.pk)}]}
    saved = tenant_client(alpha, owner).post(
        "/automations/new/",
        {"name": f"Ligar {run}", "trigger": "tag_added", "tag_id": tag.pk, "spec": json.dumps(spec), "enabled": "on"},
    )
    assert saved.status_code == 302
    connection.set_tenant(alpha)
    rule = Rule.objects.get(name=f"Ligar {run}")
    redis_client().delete(RUN_FLAG.format(alpha.schema_name))
    person = Contact.objects.create(phone=_phone(), name="Lia Liga")
    try:
        contacts_tag(contacts=Contact.objects.filter(pk=person.pk), tag=tag)  # committed: announced now

        def placed() -> bool:
            connection.set_tenant(alpha)
            return Call.objects.filter(contact=person).exclude(retell_call_id=None).exists()

        wait_until(placed, timeout=60, interval=0.3, what="the rule's call placed by the voice queue")
        connection.set_tenant(alpha)
        call = Call.objects.get(contact=person)
        assert RuleRun.objects.get(rule=rule).outcome == RunOutcome.DONE
        remote = retell_emulator.calls[str(call.retell_call_id)]
        assert remote["to_number"] == person.phone and remote["metadata"]["call_id"] == call.pk
        assert [c for c in retell_emulator.calls.values() if c["to_number"] == person.phone] == [remote]
    finally:
        connection.set_tenant(alpha)
        rule.delete()
