"""Suggested FAQ pairs from resolved conversations: the model's structured answer (through our client and
the emulator), once per resolution, nothing without a model or a person's answer; the review page where a
manager edits and approves a pair into a knowledge base or dismisses it, and an agent cannot."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import Role
from ai.faq import faq_suggest
from ai.models import AISettings, FaqStatus, FaqSuggestion
from emulators.openai import OpenAIEmulator
from inbox.models import Channel, Conversation
from inbox.services import message_send
from knowledge import services as knowledge
from knowledge.models import QAPair
from tests.ai.conftest import conversation_of, customer_says, phone
from tests.conftest import tenant_client
from tests.support import make_member

pytestmark = pytest.mark.django_db


def _resolved_chat(channel: Channel, agent: Any) -> Conversation:
    number = phone()
    customer_says(channel, number, "oi")
    conversation = conversation_of(customer_says(channel, number, "vocês parcelam no cartão?"))
    message_send(conversation=conversation, body="Parcelamos em até 3x sem juros no cartão.", author=agent)
    return conversation


def test_a_resolved_conversation_gives_one_suggested_pair_through_the_model(
    openai_emulator: OpenAIEmulator, ai_key: AISettings, wa_channel: Channel, agent_a: Any
) -> None:
    conversation = _resolved_chat(wa_channel, agent_a)
    suggestion = faq_suggest(conversation_id=conversation.pk)
    assert suggestion is not None and suggestion.status == FaqStatus.PENDING
    assert (suggestion.question, suggestion.answer) == (
        "vocês parcelam no cartão?",
        "Parcelamos em até 3x sem juros no cartão.",
    )
    (request,) = openai_emulator.chat_requests()
    assert request["json"]["response_format"]["json_schema"]["name"] == "faq_pair"
    assert "Team: Parcelamos em até 3x" in request["json"]["messages"][1]["content"]
    assert faq_suggest(conversation_id=conversation.pk) is None  # the same resolution: nothing twice
    assert FaqSuggestion.objects.count() == 1 and len(openai_emulator.chat_requests()) == 1
    # The model finds nothing worth keeping after a later exchange: no suggestion.
    customer_says(wa_channel, conversation.contact.phone, "valeu")
    openai_emulator.reply({"useful": False, "question": "", "answer": ""})
    assert faq_suggest(conversation_id=conversation.pk) is None


def test_no_suggestion_without_a_model_or_without_a_persons_answer(
    in_tenant_a: Any, wa_channel: Channel, agent_a: Any, openai_emulator: OpenAIEmulator
) -> None:
    conversation = _resolved_chat(wa_channel, agent_a)
    assert faq_suggest(conversation_id=conversation.pk) is None  # no key: no model to ask
    from tests.conftest import OPENAI_KEY

    AISettings.objects.create(api_key=OPENAI_KEY)
    unanswered = conversation_of(customer_says(wa_channel, phone(), "tem loja em Campinas?"))
    assert faq_suggest(conversation_id=unanswered.pk) is None
    assert openai_emulator.chat_requests() == []


def test_a_manager_edits_and_approves_into_a_knowledge_base_and_an_agent_cannot(
    ai_key: AISettings, wa_channel: Channel, owner_a: Any, agent_a: Any, in_tenant_a: Any
) -> None:
    kb = knowledge.knowledge_base_create(name="Pagamentos")
    conversation = conversation_of(customer_says(wa_channel, phone(), "aceitam pix?"))
    first = FaqSuggestion.objects.create(
        conversation=conversation, through_message_id=1, question="Aceitam pix?", answer="Sim."
    )
    second = FaqSuggestion.objects.create(
        conversation=conversation, through_message_id=2, question="Qual o CNPJ?", answer="12.345.678/0001-90"
    )
    agent = tenant_client(in_tenant_a, agent_a, lang="en")
    assert agent.get("/ai/faq-suggestions/").status_code == 403
    refused = agent.post(
        f"/ai/faq-suggestions/{first.pk}/",
        {"action": "approve", "knowledge_base": kb.pk, "question": "x", "answer": "y"},
    )
    assert refused.status_code == 403 and not QAPair.objects.exists()
    assert agent.post(f"/ai/faq-suggestions/{first.pk}/", {"action": "dismiss"}).status_code == 403
    assert 'data-testid="faq-link"' not in agent.get("/ai/assistants/").content.decode()
    first.refresh_from_db()
    assert first.status == FaqStatus.PENDING

    owner = tenant_client(in_tenant_a, owner_a, lang="en")
    assert 'data-testid="faq-link"' in owner.get("/ai/assistants/").content.decode()
    page = owner.get("/ai/faq-suggestions/").content.decode()
    assert "Aceitam pix?" in page and "Qual o CNPJ?" in page and "Pagamentos" in page
    approved = owner.post(
        f"/ai/faq-suggestions/{first.pk}/",
        {"action": "approve", "knowledge_base": kb.pk, "question": "Vocês aceitam Pix?", "answer": "Sim, chave CNPJ."},
        follow=True,
    )
    assert "Added to Pagamentos" in approved.content.decode()
    pair = QAPair.objects.get(document__knowledge_base=kb)
    assert (pair.question, pair.answer) == ("Vocês aceitam Pix?", "Sim, chave CNPJ.")  # as the manager edited it
    first.refresh_from_db()
    assert first.status == FaqStatus.APPROVED and first.qa_pair_id == pair.pk and first.decided_by_id == owner_a.pk
    again = owner.post(
        f"/ai/faq-suggestions/{first.pk}/",
        {"action": "approve", "knowledge_base": kb.pk, "question": "q", "answer": "a"},
        follow=True,
    )
    assert "already reviewed" in again.content.decode() and QAPair.objects.count() == 1
    empty = owner.post(
        f"/ai/faq-suggestions/{second.pk}/",
        {"action": "approve", "knowledge_base": kb.pk, "question": "", "answer": "a"},
        follow=True,
    )
    assert "Write both the question and the answer." in empty.content.decode()
    owner.post(f"/ai/faq-suggestions/{second.pk}/", {"action": "dismiss"})
    second.refresh_from_db()
    assert second.status == FaqStatus.DISMISSED and QAPair.objects.count() == 1
    listing = owner.get("/ai/faq-suggestions/").content.decode()
    assert "No suggestion waiting for review." in listing and "Dismissed" in listing
    admin = make_member(in_tenant_a, "admin-faq@alpha.test", Role.ADMIN)
    assert tenant_client(in_tenant_a, admin, lang="en").get("/ai/faq-suggestions/").status_code == 200
    pt = tenant_client(in_tenant_a, owner_a, lang="pt-br").get("/ai/faq-suggestions/").content.decode()
    assert "Perguntas frequentes sugeridas" in pt
