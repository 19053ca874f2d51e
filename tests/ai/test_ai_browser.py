"""The assistant's pages in real headless Chromium against the live server: the playground shows each
answer with the tools called, and the conversation page takes over and gives back in one click."""

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
from inbox.models import Channel
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
    assistant = assistant_save(
        channels=[Channel.objects.get(pk=channels["whatsapp"])],
        name=f"Bia {uuid.uuid4().hex[:4]}",
        allowed_tools=[Tool.HANDOFF],
        reply_delay_s=0,
    )
    conversation = open_conversation(channels["whatsapp"], f"+55119{uuid.uuid4().int % 10**8:08d}")
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
        openai_emulator.reply({"reply": "Abrimos às 9h.", "answered": True, "sources": []})
        page.fill("[data-testid=pg-input]", "que horas abrem?")
        page.click("[data-testid=pg-send]")
        expect(page.locator("[data-testid=pg-answer]").nth(1)).to_contain_text("Abrimos às 9h.")

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
        assert errors == []
        context.close()
    finally:
        connection.set_tenant(alpha)
        assistant.delete()
        row.delete()
