"""AI pages and API: settings (the key encrypted, never shown back, the base URL through the URL guard),
assistants CRUD, the playground (passages and tools shown, tools never applied), take over / give back
from the conversation page, and the retrieval-only notice."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from ai.models import AISettings, Assistant, AssistantBinding, BotMode, ConversationBot, Tool
from crm.models import Tag
from emulators.openai import OpenAIEmulator
from inbox.models import Channel
from tests.ai.conftest import conversation_of, customer_says, phone
from tests.conftest import OPENAI_KEY, tenant_client

pytestmark = pytest.mark.django_db


def test_the_api_key_is_stored_encrypted_and_never_shown_back(in_tenant_a: Any, owner_a: Any) -> None:
    client = tenant_client(in_tenant_a, owner_a, lang="en")
    page = client.get("/ai/settings/").content.decode()
    assert "retrieval-only mode" in page
    answer = client.post(
        "/ai/settings/",
        {
            "base_url": "",
            "api_key": "sk-very-secret-123",
            "chat_model": "gpt-4o-mini",
            "embedding_model": "text-embedding-3-small",
            "embedding_dimensions": 384,
            "transcription_model": "whisper-1",
            "price_input_per_million": "0.15",
            "price_output_per_million": "0.60",
        },
    )
    assert answer.status_code == 302
    assert AISettings.objects.get().api_key == "sk-very-secret-123"
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM ai_aisettings")
        (stored,) = cursor.fetchone()
    assert "sk-very-secret" not in stored and stored.startswith("v1:")
    page = client.get("/ai/settings/").content.decode()
    assert "sk-very-secret" not in page and "An API key is set (hidden)" in page
    # A blank key keeps the stored one; a base URL into our own network is refused.
    refused = client.post(
        "/ai/settings/",
        {
            "base_url": "http://169.254.169.254/v1",
            "api_key": "",
            "chat_model": "gpt-4o-mini",
            "embedding_model": "e",
            "embedding_dimensions": 384,
            "transcription_model": "whisper-1",
            "price_input_per_million": "0",
            "price_output_per_million": "0",
        },
    )
    assert refused.status_code == 400 and "cannot be used" in refused.content.decode()
    assert AISettings.objects.get().api_key == "sk-very-secret-123"


def test_assistants_are_created_and_bound_on_the_page_and_the_api(
    in_tenant_a: Any, owner_a: Any, channels: dict[str, int]
) -> None:
    client = tenant_client(in_tenant_a, owner_a, lang="en")
    form = client.get("/ai/assistants/new/")
    assert form.status_code == 200 and "retrieval-only mode" in form.content.decode()
    created = client.post(
        "/api/v1/assistants/",
        {"name": "Bia", "channels": [channels["whatsapp"]], "allowed_tools": ["handoff", "tag_add"]},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["language"] == "pt-BR" and body["channels"] == [channels["whatsapp"]]
    assert body["allowed_tools"] == ["handoff", "tag_add"] and body["knowledge_base_ids"] == []
    clash = client.post(
        "/api/v1/assistants/", {"name": "Outra", "channels": [channels["whatsapp"]]}, content_type="application/json"
    )
    assert clash.status_code == 400 and "already answered by Bia" in clash.content.decode()
    assistant = Assistant.objects.get(name="Bia")
    listing = client.get("/ai/assistants/").content.decode()
    assert "Bia" in listing and "WhatsApp Alpha" in listing
    edit = client.get(f"/ai/assistants/{assistant.pk}/")
    assert edit.status_code == 200
    assert client.post(f"/ai/assistants/{assistant.pk}/delete/").status_code == 302
    assert not AssistantBinding.objects.filter(assistant_id=assistant.pk).exists()


def test_the_playground_shows_the_answer_and_the_tools_called_without_applying_them(
    in_tenant_a: Any, owner_a: Any, openai_emulator: OpenAIEmulator
) -> None:
    AISettings.objects.create(api_key=OPENAI_KEY)
    Tag.objects.create(name="vip")
    assistant = Assistant.objects.create(name="Bia", allowed_tools=[Tool.TAG_ADD])
    client = tenant_client(in_tenant_a, owner_a, lang="en")
    openai_emulator.reply(tool_calls=[("tag_add", {"tag": "vip"})])
    openai_emulator.reply({"reply": "Você é VIP!", "answered": True, "sources": []})
    assert client.post(f"/ai/assistants/{assistant.pk}/playground/", {"text": "sou vip"}).status_code == 302
    page = client.get(f"/ai/assistants/{assistant.pk}/playground/").content.decode()
    assert "sou vip" in page and "Você é VIP!" in page
    assert "Tools called (1)" in page and "tag_add" in page and "dry_run" in page
    assert not Tag.objects.get(name="vip").contacts.exists()
    # The conversation so far goes with the next question.
    assert client.post(f"/ai/assistants/{assistant.pk}/playground/", {"text": "e agora?"}).status_code == 302
    last = openai_emulator.chat_requests()[-1]["json"]["messages"]
    assert [m["content"] for m in last if m["role"] == "user"] == ["sou vip", "e agora?"]
    assert {"role": "assistant", "content": "Você é VIP!"} in last


def test_the_playground_without_a_key_answers_from_the_knowledge_and_says_so(in_tenant_a: Any, owner_a: Any) -> None:
    assistant = Assistant.objects.create(name="Bia", fallback_message="Vou chamar a equipe.")
    client = tenant_client(in_tenant_a, owner_a, lang="en")
    client.post(f"/ai/assistants/{assistant.pk}/playground/", {"text": "oi"})
    page = client.get(f"/ai/assistants/{assistant.pk}/playground/").content.decode()
    assert "retrieval-only mode" in page and "Vou chamar a equipe." in page


def test_take_over_and_give_back_are_one_click_on_the_conversation_page(
    in_tenant_a: Any, agent_a: Any, channels: dict[str, int]
) -> None:
    channel = Channel.objects.get(pk=channels["whatsapp"])
    assistant = Assistant.objects.create(name="Bia")
    AssistantBinding.objects.create(assistant=assistant, channel=channel)
    conversation = conversation_of(customer_says(channel, phone(), "oi"))
    client = tenant_client(in_tenant_a, agent_a, lang="en")
    page = client.get(f"/conversations/{conversation.pk}/").content.decode()
    assert 'data-testid="take-over"' in page and "answering" in page
    assert client.post(f"/conversations/{conversation.pk}/bot/take-over/").status_code == 302
    assert ConversationBot.objects.get(conversation=conversation).mode == BotMode.HUMAN
    page = client.get(f"/conversations/{conversation.pk}/").content.decode()
    assert 'data-testid="give-back"' in page and "taken over by" in page
    assert client.post(f"/conversations/{conversation.pk}/bot/give-back/").status_code == 302
    assert ConversationBot.objects.get(conversation=conversation).mode == BotMode.BOT


def test_the_assistant_page_saves_sections_tools_channels_and_stages(
    in_tenant_a: Any, owner_a: Any, channels: dict[str, int]
) -> None:
    from ai.forms import AssistantForm
    from kanban.services import board_create

    stage = board_create(name="Funil").stages.order_by("rank")[1]
    blank = AssistantForm()
    data: dict[str, Any] = {}
    for name, field in blank.fields.items():
        value = blank.get_initial_for_field(field, name)
        if value not in (None, [], "") and not isinstance(value, bool):
            data[name] = value
        elif value is True:
            data[name] = "on"
    data.update(
        {
            "name": "Bia",
            "allowed_tools": ["handoff", "lead_card_move"],
            "channels": [channels["whatsapp"]],
            "stages": [stage.pk],
            "section_0_text": "Loja de roupas em Campinas.",
            "section_0_enabled": "on",
        }
    )
    data.pop("section_1_enabled", None)  # the "policies" section switched off
    client = tenant_client(in_tenant_a, owner_a, lang="en")
    answer = client.post("/ai/assistants/new/", data)
    assert answer.status_code == 302, answer.content.decode()[-2000:]
    assistant = Assistant.objects.get(name="Bia")
    assert assistant.allowed_tools == ["handoff", "lead_card_move"]
    assert assistant.sections[0]["text"] == "Loja de roupas em Campinas." and assistant.sections[0]["enabled"]
    assert assistant.sections[1]["enabled"] is False
    bound = set(AssistantBinding.objects.filter(assistant=assistant).values_list("channel_id", "stage_id"))
    assert bound == {(channels["whatsapp"], None), (channels["whatsapp"], stage.pk)}


def test_the_api_updates_and_deletes_assistants_and_agents_may_only_read(
    in_tenant_a: Any, owner_a: Any, agent_a: Any, channels: dict[str, int]
) -> None:
    owner = tenant_client(in_tenant_a, owner_a, lang="en")
    created = owner.post("/api/v1/assistants/", {"name": "Bia"}, content_type="application/json").json()
    changed = owner.patch(
        f"/api/v1/assistants/{created['id']}/",
        {"tone": "formal", "channels": [channels["sms"]]},
        content_type="application/json",
    )
    assert changed.status_code == 200 and changed.json()["tone"] == "formal"
    assert changed.json()["channels"] == [channels["sms"]]
    agent = tenant_client(in_tenant_a, agent_a, lang="en")
    assert agent.get(f"/api/v1/assistants/{created['id']}/").status_code == 200
    assert agent.delete(f"/api/v1/assistants/{created['id']}/").status_code == 403
    assert owner.delete(f"/api/v1/assistants/{created['id']}/").status_code == 204
    assert not Assistant.objects.filter(pk=created["id"]).exists()
