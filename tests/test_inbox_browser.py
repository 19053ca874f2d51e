"""The three-pane inbox in a real headless Chromium: an agent works through conversations without a page
load, a second agent sees the replies and the typing live, and a phone shows one pane at a time."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from tenants.models import Tenant
from tests.support import make_member
from tests.test_browser import SHOTS, _close_playwright_context_connections, _login, browser  # noqa: F401

pytestmark = pytest.mark.browser


def _three_conversations(alpha: Tenant, channel_id: int, tag: str) -> list[int]:
    from crm.models import Contact
    from inbox.models import Conversation, Message

    connection.set_tenant(alpha)
    made = []
    now = timezone.now()
    for i in range(3):
        contact = Contact.objects.create(phone=f"+55119{uuid.uuid4().int % 10**8:08d}", name=f"{tag} cliente {i + 1}")
        conversation = Conversation.objects.create(
            contact=contact, channel_id=channel_id, last_inbound_at=now, last_message_at=now - timedelta(minutes=i)
        )
        Message.objects.create(
            conversation=conversation,
            channel_id=channel_id,
            direction="in",
            body=f"pergunta {i + 1} de {tag}",
            status="received",
            idempotency_key=f"{tag}-{i}",
        )
        Conversation.objects.filter(pk=conversation.pk).update(
            last_message_at=now - timedelta(minutes=i), unread_count=1
        )
        made.append(conversation.pk)
    connection.set_schema_to_public()
    return made


def _watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def test_an_agent_works_through_three_conversations_without_a_page_load(
    app_server: str,
    tenants: tuple[Tenant, Tenant],
    browser: Browser,  # noqa: F811
    committed: Any,
    celery_worker: None,
    meta_emulator: Any,
    channels: dict[str, int],
) -> None:
    alpha, _ = tenants
    # letters only: a search with four digits or more also matches phones, and the suite has thousands
    tag = "T" + uuid.uuid4().hex[:8].translate(str.maketrans("0123456789", "ghijklmnop"))
    first, second, third = _three_conversations(alpha, channels["whatsapp"], tag)
    agent = make_member(alpha, f"panes-{tag.lower()}@alpha.test")
    colleague = make_member(alpha, f"panes-b-{tag.lower()}@alpha.test")
    port = app_server.rsplit(":", 1)[1]
    base = f"http://alpha.localhost:{port}"

    # the colleague watches the third conversation
    watcher = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _login(watcher, base, colleague.email)
    watcher.goto(f"{base}/conversations/{third}/?q={tag}")
    expect(watcher.locator("#live-dot")).to_have_class("live-dot on", timeout=10_000)

    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    errors = _watch_errors(page)
    _login(page, base, agent.email)
    page.goto(f"{base}/conversations/?q={tag}")
    expect(page.locator("#live-dot")).to_have_class("live-dot on", timeout=10_000)
    rows = page.locator("#conversation-rows .conversation-row")
    expect(rows).to_have_count(3)
    # three panes side by side
    for pane in (".inbox-list", "#pane"):
        expect(page.locator(pane)).to_be_visible()
    page.evaluate("window.__sameWindow = 'still here'")

    for number, pk in enumerate((first, second, third), start=1):
        page.locator(f'#conversation-rows [data-conversation="{pk}"] a').click()
        expect(page).to_have_url(f"{base}/conversations/{pk}/?q={tag}")
        expect(page.locator("#pane")).to_have_attribute("data-pane-conversation", str(pk))
        expect(page.locator(".inbox-contact")).to_be_visible()  # the contact beside the conversation
        expect(page.locator("#timeline .msg.in").last).to_contain_text(f"pergunta {number} de {tag}")
        expect(page.locator(f'#conversation-rows [data-conversation="{pk}"]')).to_have_class("conversation-row current")
        page.keyboard.press("r")  # reply
        expect(page.locator("textarea[name=body]")).to_be_focused()
        page.keyboard.type(f"resposta {number} de {tag}", delay=15)
        if pk == third:  # the colleague sees who is replying, then the reply itself
            expect(watcher.locator("#typing")).to_contain_text("Member", timeout=10_000)
        page.keyboard.press("Control+Enter")
        expect(page.locator("#timeline .msg.out").last).to_contain_text(f"resposta {number} de {tag}")
        expect(page.locator("#timeline [data-testid=ticks]").last).to_have_class("ticks read", timeout=20_000)
        page.keyboard.press("Escape")  # out of the text box (it keeps the focus after sending)
    expect(watcher.locator("#timeline .msg.out").last).to_contain_text(f"resposta 3 de {tag}", timeout=20_000)
    # both lists reordered live: the latest answered on top, with its last message
    for viewer in (page, watcher):
        expect(viewer.locator("#conversation-rows .conversation-row").first).to_have_attribute(
            "data-conversation", str(third), timeout=20_000
        )
    expect(watcher.locator(f'#conversation-rows [data-conversation="{first}"] [data-testid=preview]')).to_contain_text(
        f"resposta 1 de {tag}"
    )

    # assign to me, resolve, the shortcut sheet: inline events, no page load
    page.keyboard.press("a")
    expect(page.locator("#timeline .sys-event").last).to_have_attribute("data-event", "assigned")
    page.keyboard.press("e")
    expect(page.locator("[data-testid=conversation-status]")).to_have_text("Resolvida")
    expect(page.locator("#timeline .sys-event").last).to_have_attribute("data-event", "resolved")
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#shortcuts")).to_be_hidden()
    # next and previous follow the list as it is shown now (third, second, first)
    page.keyboard.press("j")
    expect(page.locator("#pane")).to_have_attribute("data-pane-conversation", str(second))
    page.keyboard.press("j")
    expect(page.locator("#pane")).to_have_attribute("data-pane-conversation", str(first))
    page.keyboard.press("k")
    expect(page.locator("#pane")).to_have_attribute("data-pane-conversation", str(second))
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "inbox-three-panes.png"))
    # back and forward follow the conversations, still without a page load
    page.go_back()
    expect(page).to_have_url(f"{base}/conversations/{first}/?q={tag}")
    expect(page.locator("#pane")).to_have_attribute("data-pane-conversation", str(first))
    page.go_forward()
    expect(page.locator("#pane")).to_have_attribute("data-pane-conversation", str(second))
    assert page.evaluate("window.__sameWindow") == "still here"
    assert errors == []
    page.context.close()
    watcher.context.close()


def test_on_a_phone_the_inbox_shows_one_pane_at_a_time(
    app_server: str,
    tenants: tuple[Tenant, Tenant],
    browser: Browser,  # noqa: F811
    committed: Any,
    channels: dict[str, int],
) -> None:
    alpha, _ = tenants
    tag = f"P{uuid.uuid4().hex[:6]}"
    first, _second, _third = _three_conversations(alpha, channels["whatsapp"], tag)
    agent = make_member(alpha, f"phone-{tag.lower()}@alpha.test")
    port = app_server.rsplit(":", 1)[1]
    base = f"http://alpha.localhost:{port}"
    page = browser.new_context(viewport={"width": 390, "height": 800}, has_touch=True, is_mobile=True).new_page()
    errors = _watch_errors(page)
    _login(page, base, agent.email)
    page.goto(f"{base}/conversations/?q={tag}")
    expect(page.locator(".inbox-list")).to_be_visible()
    expect(page.locator("#pane")).to_be_hidden()
    page.locator(f'#conversation-rows [data-conversation="{first}"] a').click()
    expect(page.locator("#timeline .msg.in").last).to_contain_text(f"pergunta 1 de {tag}")
    expect(page.locator(".inbox-list")).to_be_hidden()
    expect(page.locator(".inbox-contact")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # nothing sideways
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "inbox-phone-conversation.png"))
    page.click(".pane-info")  # the contact and lead
    expect(page.locator(".inbox-contact")).to_be_visible()
    expect(page.locator(".inbox-chat")).to_be_hidden()
    page.click(".pane-info-close")
    expect(page.locator(".inbox-chat")).to_be_visible()
    page.click(".pane-back")
    expect(page.locator(".inbox-list")).to_be_visible()
    expect(page).to_have_url(f"{base}/conversations/?q={tag}")
    assert errors == []
    page.context.close()
