"""The agents' copilot in the composer, through the page's own endpoints and our real client against the
OpenAI-compatible emulator: a suggestion grounded in the knowledge with its sources, a summary, an
improved or shortened draft, a translation; retrieval-only with no key (and the other tasks say they need
a model); usage recorded; nothing ever sent; the role table and the conversation's visibility enforced."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Sum

from ai.models import AISettings, AIUsageDay, Assistant
from ai.services import assistant_save
from emulators.openai import OpenAIEmulator
from inbox.models import Channel, Conversation, Direction, InboxSettings
from inbox.services import conversation_assign, message_send
from knowledge import services as knowledge
from knowledge.models import KnowledgeBase
from tests.ai.conftest import conversation_of, customer_says, phone
from tests.conftest import tenant_client
from tests.support import make_member

pytestmark = pytest.mark.django_db

DELIVERY = "Entregamos em Campinas aos sábados, das 9h às 13h, com frete de R$ 15."
EXCHANGE = "Trocas em até 7 dias com a etiqueta, direto na loja ou pelo WhatsApp."


def _indexed(kb: KnowledgeBase, name: str, text: str) -> None:
    document = knowledge.document_add_text(knowledge_base=kb, name=name, text=text)
    document.refresh_from_db()
    assert knowledge.document_index(document_id=document.pk, version=document.version) == "ready"


@pytest.fixture
def grounded(wa_channel: Channel) -> Assistant:
    """An assistant on the WhatsApp channel with a small knowledge base (indexed as the worker does)."""
    kb = knowledge.knowledge_base_create(name="Loja Sol")
    _indexed(kb, "entregas.md", DELIVERY)
    _indexed(kb, "trocas.md", EXCHANGE)
    return assistant_save(
        channels=[wa_channel],
        name="Bia",
        knowledge_base_ids=[kb.pk],
        retrieval_template="Oi! {passage} Posso ajudar em algo mais?",
        reply_delay_s=0,
    )


def _ask(client: Any, conversation: Conversation, task: str, **data: str) -> Any:
    return client.post(f"/conversations/{conversation.pk}/copilot/{task}/", data, HTTP_HX_REQUEST="true")


def _outbound(conversation: Conversation) -> int:
    return conversation.messages.filter(direction=Direction.OUTBOUND).count()


def test_without_a_key_the_suggestion_is_the_best_passage_in_the_persona_template_and_the_rest_need_a_model(
    in_tenant_a: Any, agent_a: Any, grounded: Assistant, wa_channel: Channel
) -> None:
    conversation = conversation_of(customer_says(wa_channel, phone(), "vcs entregam no sabado em campinas?"))
    client = tenant_client(in_tenant_a, agent_a, lang="en")
    page = client.get(f"/conversations/{conversation.pk}/").content.decode()
    assert 'data-testid="copilot-suggest"' in page and 'data-testid="copilot-retrieval-only"' in page
    assert "Retrieval-only mode (no API key)" in page

    answer = _ask(client, conversation, "suggest")
    assert answer.status_code == 200
    html = answer.content.decode()
    assert f"Oi! {DELIVERY} Posso ajudar em algo mais?" in html  # the template around the best passage
    assert "data-fill" in html and "retrieval-only mode" in html
    assert 'data-testid="copilot-sources"' in html and "entregas.md" in html and "trocas.md" not in html
    for task, data in (("summarize", {}), ("improve", {"body": "oi"}), ("translate", {"body": "oi", "target": "en"})):
        refused = _ask(client, conversation, task, **data)
        assert refused.status_code == 400 and "This needs an AI model" in refused.content.decode(), task
    assert _outbound(conversation) == 0  # the copilot never sends
    assert not AIUsageDay.objects.exists()


def test_with_a_model_every_task_goes_through_the_client_and_records_usage(
    openai_emulator: OpenAIEmulator,
    ai_key: AISettings,
    grounded: Assistant,
    in_tenant_a: Any,
    agent_a: Any,
    wa_channel: Channel,
) -> None:
    number = phone()
    customer_says(wa_channel, number, "oi, boa tarde")
    conversation = conversation_of(customer_says(wa_channel, number, "vocês entregam no sábado?"))
    client = tenant_client(in_tenant_a, agent_a, lang="en")
    page = client.get(f"/conversations/{conversation.pk}/").content.decode()
    assert 'data-testid="copilot-retrieval-only"' not in page
    openai_emulator.reset()  # the embeddings of the index are not this test's requests

    suggestion = _ask(client, conversation, "suggest")
    assert suggestion.status_code == 200
    html = suggestion.content.decode()
    assert DELIVERY in html and "entregas.md" in html and "retrieval-only" not in html  # the model's reply
    (request,) = openai_emulator.chat_requests()
    sent = request["json"]
    assert sent["response_format"]["json_schema"]["name"] == "copilot_suggestion"
    assert "[1] (source: entregas.md)" in sent["messages"][0]["content"]
    assert sent["messages"][1]["content"] == "Customer: oi, boa tarde\nCustomer: vocês entregam no sábado?"

    # A scripted answer wins over the default rule: the copilot shows what the model wrote.
    openai_emulator.reply({"reply": "Entregamos sim! Frete R$ 15.", "sources": [1]})
    assert "Entregamos sim! Frete R$ 15." in _ask(client, conversation, "suggest").content.decode()

    message_send(conversation=conversation, body="Entregamos sim, das 9h às 13h.", author=agent_a)
    summary = _ask(client, conversation, "summarize").content.decode()
    assert "The customer asked: vocês entregam no sábado?" in summary
    assert "Last answer: Entregamos sim, das 9h às 13h." in summary and "data-fill" not in summary

    improved = _ask(client, conversation, "improve", body="podemos  entregar sabado. obrigado pela paciencia")
    assert "Podemos entregar sabado. obrigado pela paciencia." in improved.content.decode()
    shortened = _ask(client, conversation, "shorten", body="Podemos entregar no sábado. Obrigado pela paciência!")
    assert "Podemos entregar no sábado." in shortened.content.decode()
    assert "paciência" not in shortened.content.decode().split("data-text=")[1].split('"')[1]
    translated = _ask(client, conversation, "translate", body="Entregamos no sábado.", target="en")
    assert "[en] Entregamos no sábado." in translated.content.decode()
    into = openai_emulator.chat_requests()[-1]["json"]["messages"][0]["content"]
    assert "into en (English)" in into
    # An empty draft translates the customer's last message (here into Portuguese, for an English customer).
    customer_says(wa_channel, number, "do you deliver on Sunday?")
    assert (
        "[pt-BR] do you deliver on Sunday?" in _ask(client, conversation, "translate", target="pt-BR").content.decode()
    )

    chat = AIUsageDay.objects.filter(kind="chat").aggregate(n=Sum("requests"), tokens=Sum("prompt_tokens"))
    assert chat["n"] == 7 and chat["tokens"] > 0  # every model call of the copilot is counted
    assert _outbound(conversation) == 1  # the agent's own message only: the copilot sent nothing


def test_a_model_error_and_empty_drafts_say_what_to_do(
    openai_emulator: OpenAIEmulator,
    ai_key: AISettings,
    grounded: Assistant,
    in_tenant_a: Any,
    agent_a: Any,
    wa_channel: Channel,
) -> None:
    from tests.conftest import OPENAI_KEY

    conversation = conversation_of(customer_says(wa_channel, phone(), "oi"))
    client = tenant_client(in_tenant_a, agent_a, lang="en")
    empty = _ask(client, conversation, "improve", body="   ")
    assert empty.status_code == 400 and "Write a draft in the message box first." in empty.content.decode()
    openai_emulator.fail(401)
    broken = _ask(client, conversation, "summarize")
    assert broken.status_code == 503 and "The AI server did not answer" in broken.content.decode()
    assert OPENAI_KEY not in broken.content.decode()
    pt = tenant_client(in_tenant_a, agent_a, lang="pt-br")
    assert "Escreva um rascunho" in _ask(pt, conversation, "shorten", body="").content.decode()


def test_the_copilot_respects_what_the_member_may_see(
    in_tenant_a: Any, agent_a: Any, grounded: Assistant, wa_channel: Channel
) -> None:
    from accounts.models import Role

    other = make_member(in_tenant_a, "outra@alpha.test", Role.AGENT)
    conversation = conversation_of(customer_says(wa_channel, phone(), "vocês entregam?"))
    conversation_assign(conversation=conversation, assignee=other)
    InboxSettings.objects.update_or_create(pk=1, defaults={"agents_see_all": False})
    client = tenant_client(in_tenant_a, agent_a, lang="en")
    assert _ask(client, conversation, "suggest").status_code == 404  # someone else's conversation
    assert _ask(tenant_client(in_tenant_a, other, lang="en"), conversation, "suggest").status_code == 200
    assert _ask(client, conversation, "nonsense").status_code == 404
    assert client.get(f"/conversations/{conversation.pk}/copilot/suggest/").status_code == 405
    assert tenant_client(in_tenant_a).post(f"/conversations/{conversation.pk}/copilot/suggest/").status_code in (
        302,
        403,
    )
