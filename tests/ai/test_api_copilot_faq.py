"""The copilot and the suggested FAQ pairs over the API, with a token: the same services as the composer
and the review page (the model through our client and the emulator), the conversation's visibility and
the role table enforced, one error shape."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import Role, User
from accounts.services import api_token_create
from ai.models import AISettings, Assistant, FaqStatus, FaqSuggestion
from ai.services import assistant_save
from emulators.openai import OpenAIEmulator
from inbox.models import Channel, Direction, InboxSettings
from inbox.services import conversation_assign
from knowledge import services as knowledge
from knowledge.models import QAPair
from tenants.models import Tenant
from tests.ai.conftest import conversation_of, customer_says, phone
from tests.support import make_member

pytestmark = pytest.mark.django_db

DELIVERY = "Entregamos em Campinas aos sábados, das 9h às 13h, com frete de R$ 15."


def _api(tenant: Tenant, user: User) -> Client:
    _token, raw = api_token_create(user=user, tenant=tenant, name="copilot")
    return Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}", HTTP_ACCEPT_LANGUAGE="en")


@pytest.fixture
def grounded(wa_channel: Channel) -> Assistant:
    kb = knowledge.knowledge_base_create(name="Loja Sol")
    document = knowledge.document_add_text(knowledge_base=kb, name="entregas.md", text=DELIVERY)
    assert knowledge.document_index(document_id=document.pk, version=document.version) == "ready"
    return assistant_save(channels=[wa_channel], name="Bia", knowledge_base_ids=[kb.pk], reply_delay_s=0)


def test_copilot_over_the_api_without_a_key_then_with_a_model(
    in_tenant_a: Any,
    tenant_a: Tenant,
    agent_a: User,
    grounded: Assistant,
    wa_channel: Channel,
    openai_emulator: OpenAIEmulator,
) -> None:
    conversation = conversation_of(customer_says(wa_channel, phone(), "vcs entregam no sabado em campinas?"))
    api = _api(tenant_a, agent_a)
    url = f"/api/v1/conversations/{conversation.pk}/copilot/"
    suggestion = api.post(url, {"task": "suggest"}, content_type="application/json")
    assert suggestion.status_code == 200, suggestion.content
    body = suggestion.json()
    assert body["mode"] == "retrieval" and DELIVERY in body["text"]
    assert [s["document_name"] for s in body["sources"]] == ["entregas.md"]
    refused = api.post(url, {"task": "summarize"}, content_type="application/json")
    assert refused.status_code == 422 and refused["Content-Type"] == "application/problem+json"
    assert "modelo de IA" in refused.json()["detail"]  # in the workspace's language (pt-BR)
    bad = api.post(url, {"task": "sing"}, content_type="application/json")
    assert bad.status_code == 400 and "task" in bad.json()["errors"]

    from tests.conftest import OPENAI_KEY

    AISettings.objects.create(api_key=OPENAI_KEY)
    openai_emulator.reset()
    improved = api.post(url, {"task": "improve", "draft": "podemos  entregar sabado"}, content_type="application/json")
    assert improved.status_code == 200 and improved.json() == {
        "text": "Podemos entregar sabado.",
        "mode": "model",
        "sources": [],
    }
    assert openai_emulator.chat_requests()[-1]["json"]["response_format"]["json_schema"]["name"] == "draft_improved"
    translated = api.post(
        url, {"task": "translate", "draft": "Entregamos.", "target": "en"}, content_type="application/json"
    )
    assert translated.json()["text"] == "[en] Entregamos."
    openai_emulator.fail(401)  # the key refused: a permanent error, no retries
    broken = api.post(url, {"task": "summarize"}, content_type="application/json")
    assert broken.status_code == 503 and OPENAI_KEY not in broken.content.decode()
    assert conversation.messages.filter(direction=Direction.OUTBOUND).count() == 0  # the copilot never sends


def test_copilot_api_answers_only_for_a_conversation_the_caller_may_open(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, grounded: Assistant, wa_channel: Channel
) -> None:
    other = make_member(in_tenant_a, "outra-api@alpha.test", Role.AGENT)
    conversation = conversation_of(customer_says(wa_channel, phone(), "vocês entregam?"))
    conversation_assign(conversation=conversation, assignee=other)
    InboxSettings.objects.update_or_create(pk=1, defaults={"agents_see_all": False})
    url = f"/api/v1/conversations/{conversation.pk}/copilot/"
    hidden = _api(tenant_a, agent_a).post(url, {"task": "suggest"}, content_type="application/json")
    assert hidden.status_code == 404 and "Entregamos" not in hidden.content.decode()
    assert _api(tenant_a, other).post(url, {"task": "suggest"}, content_type="application/json").status_code == 200


def test_faq_suggestions_over_the_api_approve_edited_or_dismiss_and_an_agent_cannot(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, agent_a: User, wa_channel: Channel
) -> None:
    kb = knowledge.knowledge_base_create(name="Pagamentos")
    conversation = conversation_of(customer_says(wa_channel, phone(), "aceitam pix?"))
    first = FaqSuggestion.objects.create(
        conversation=conversation, through_message_id=1, question="Pix?", answer="Sim."
    )
    second = FaqSuggestion.objects.create(
        conversation=conversation, through_message_id=2, question="CNPJ?", answer="12"
    )
    agent = _api(tenant_a, agent_a)
    assert agent.get("/api/v1/faq-suggestions/").status_code == 403
    assert agent.post(f"/api/v1/faq-suggestions/{first.pk}/dismiss/").status_code == 403

    owner = _api(tenant_a, owner_a)
    listed = owner.get("/api/v1/faq-suggestions/?status=pending").json()
    assert {row["id"] for row in listed["results"]} == {first.pk, second.pk}
    nowhere = owner.post(
        f"/api/v1/faq-suggestions/{first.pk}/approve/", {"knowledge_base": 999999}, content_type="application/json"
    )
    assert nowhere.status_code == 400 and "knowledge_base" in nowhere.json()["errors"]
    approved = owner.post(
        f"/api/v1/faq-suggestions/{first.pk}/approve/",
        {"knowledge_base": kb.pk, "question": "Vocês aceitam Pix?"},
        content_type="application/json",
    )
    assert approved.status_code == 200 and approved.json()["status"] == FaqStatus.APPROVED
    pair = QAPair.objects.get(document__knowledge_base=kb)
    assert (pair.question, pair.answer) == ("Vocês aceitam Pix?", "Sim.")  # edited question, the suggested answer
    again = owner.post(
        f"/api/v1/faq-suggestions/{first.pk}/approve/", {"knowledge_base": kb.pk}, content_type="application/json"
    )
    assert (
        again.status_code == 400
        and ("already reviewed" in again.content.decode() or "revisada" in again.content.decode())
        and QAPair.objects.count() == 1
    )
    dismissed = owner.post(f"/api/v1/faq-suggestions/{second.pk}/dismiss/")
    assert dismissed.status_code == 200 and dismissed.json()["status"] == FaqStatus.DISMISSED
    assert owner.get("/api/v1/faq-suggestions/?status=pending").json()["results"] == []
