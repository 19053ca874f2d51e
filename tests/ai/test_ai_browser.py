"""The assistant's pages in real headless Chromium against the live server: the playground shows each
answer with the passages used and the tools called, the conversation page takes over and gives back in
one click, and the copilot's suggestion fills the composer (never sending it)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Browser, expect

from accounts.models import Role
from ai.models import AISettings, BotMode, ConversationBot, Tool
from ai.services import assistant_save
from emulators.openai import OpenAIEmulator
from inbox.models import Channel, Direction, Message
from knowledge import services as knowledge
from tenants.models import Tenant
from tests.conftest import OPENAI_KEY
from tests.messaging import open_conversation
from tests.support import make_member
from tests.test_browser import (  # noqa: F401 (the Chromium fixture and the connection cleanup it needs)
    _close_playwright_context_connections,
    _login,
    browser,
)

pytestmark = pytest.mark.browser

DELIVERY = "Entregamos em Campinas aos sábados, das 9h às 13h."


def test_playground_and_take_over_in_the_browser(
    app_server: str,
    tenants: tuple[Tenant, Tenant],
    browser: Browser,  # noqa: F811
    openai_emulator: OpenAIEmulator,
    channels: dict[str, int],
    committed: Any,
) -> None:
    alpha, _ = tenants
    connection.set_tenant(alpha)
    email = f"browser-ai-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha, email, Role.OWNER)
    row = AISettings.objects.create(api_key=OPENAI_KEY)
    kb = knowledge.knowledge_base_create(name=f"Loja {uuid.uuid4().hex[:4]}")
    document = knowledge.document_add_text(knowledge_base=kb, name="entregas.md", text=DELIVERY)
    document.refresh_from_db()
    knowledge.document_index(document_id=document.pk, version=document.version)  # as the worker does
    assistant = assistant_save(
        channels=[Channel.objects.get(pk=channels["whatsapp"])],
        name=f"Bia {uuid.uuid4().hex[:4]}",
        allowed_tools=[Tool.HANDOFF],
        reply_delay_s=0,
        knowledge_base_ids=[kb.pk],
    )
    conversation = open_conversation(channels["whatsapp"], f"+55119{uuid.uuid4().int % 10**8:08d}")
    Message.objects.create(
        conversation=conversation,
        channel_id=channels["whatsapp"],
        direction=Direction.INBOUND,
        body="vocês entregam no sábado?",
        idempotency_key=f"in:browser:{uuid.uuid4().hex}",
    )
    try:
        port = app_server.rsplit(":", 1)[1]
        base = f"http://alpha.localhost:{port}"
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        _login(page, base, email)
        page.goto(f"{base}/ai/assistants/{assistant.pk}/playground/")
        openai_emulator.reply(tool_calls=[("handoff", {"reason": "pediu um humano"})])
        page.fill("[data-testid=pg-input]", "quero falar com uma pessoa")
        page.click("[data-testid=pg-send]")
        expect(page.locator("[data-testid=pg-answer]")).to_contain_text(assistant.handoff_message)
        expect(page.locator("[data-testid=pg-tools]")).to_contain_text("handoff")
        openai_emulator.reply({"reply": "Entregamos sábado até 13h.", "answered": True, "sources": [1]})
        page.fill("[data-testid=pg-input]", "vcs entregam sabado?")
        page.click("[data-testid=pg-send]")
        second = page.locator("[data-testid=pg-answer]").nth(1)
        expect(second).to_contain_text("Entregamos sábado até 13h.")
        expect(second.locator("[data-testid=pg-passages]")).to_contain_text("entregas.md")
        second.locator("[data-testid=pg-passages] summary").click()
        expect(second.locator("[data-testid=pg-passages]")).to_contain_text("das 9h às 13h")
        expect(second.locator("[data-testid=pg-tools]")).to_have_count(0)  # this answer called no tool

        page.goto(f"{base}/conversations/{conversation.pk}/")
        page.click("[data-testid=take-over]")
        expect(page.locator("[data-testid=give-back]")).to_be_visible()
        connection.set_tenant(alpha)
        assert ConversationBot.objects.get(conversation=conversation).mode == BotMode.HUMAN
        page.click("[data-testid=give-back]")
        expect(page.locator("[data-testid=take-over]")).to_be_visible()
        connection.set_tenant(alpha)
        assert ConversationBot.objects.get(conversation=conversation).mode == BotMode.BOT
        page.screenshot(path="test-artifacts/ai-take-over.png")

        # The copilot: a suggestion grounded in the knowledge fills the draft, with its source; nothing is sent.
        page.click("[data-testid=copilot-suggest]")
        expect(page.locator("#id_body")).to_have_value(DELIVERY)
        expect(page.locator("[data-testid=copilot-sources]")).to_contain_text("entregas.md")
        page.fill("#id_body", "podemos  entregar amanha. obrigado")
        page.click("[data-testid=copilot-shorten]")
        expect(page.locator("#id_body")).to_have_value("Podemos entregar amanha.")
        connection.set_tenant(alpha)
        assert not conversation.messages.filter(direction=Direction.OUTBOUND).exists()
        page.screenshot(path="test-artifacts/ai-copilot.png")
        assert errors == []
        context.close()
    finally:
        connection.set_tenant(alpha)
        assistant.delete()
        conversation.contact.delete()
        kb.delete()
        row.delete()
