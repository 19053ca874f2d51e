"""A person's view of a campaign: composed in the form with spintax, previewed per contact, launched with
the button, and followed live in Chromium while the real worker sends to the Twilio emulator."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Browser, expect

from accounts.models import Role
from campaigns.models import Campaign
from crm.models import Contact, Tag
from emulators.twilio import TwilioEmulator
from inbox.models import Channel
from tenants.models import Tenant
from tests.support import make_member
from tests.test_browser import SHOTS, _login, browser  # noqa: F401 (the module's Chromium fixture)

pytestmark = [
    pytest.mark.browser,
]


def test_compose_preview_launch_and_follow_a_campaign_live(
    app_server: str,
    celery_worker: Any,
    twilio_emulator: TwilioEmulator,
    tenants: tuple[Tenant, Tenant],
    browser: Browser,  # noqa: F811
    committed: Any,
    channels: dict[str, int],
) -> None:
    alpha, _ = tenants
    email = f"campaign-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha, email, Role.ADMIN)
    connection.set_tenant(alpha)
    tag = Tag.objects.create(name=f"browser-{uuid.uuid4().hex[:6]}")
    base_phone = uuid.uuid4().int % 10**5
    contacts = Contact.objects.bulk_create(
        Contact(phone=f"+5511983{(base_phone * 100 + i) % 10**6:06d}", name=f"Ana {i}") for i in range(30)
    )
    tag.contacts.add(*contacts)
    Channel.objects.filter(pk=channels["sms"]).update(rate_limit_per_s=6)  # about 5 s: time to watch it
    port = app_server.rsplit(":", 1)[1]
    base = f"http://alpha.localhost:{port}"
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        _login(page, base, email)
        page.goto(f"{base}/campaigns/new/")
        name = f"Vitrine {uuid.uuid4().hex[:4]}"
        page.fill("input[name=name]", name)
        page.select_option("select[name=channel]", str(channels["sms"]))
        page.select_option("select[name=tags]", [str(tag.pk)])
        page.fill("textarea[name=body]", "{Olá|Oi|E aí} {{first_name}}, chegou a coleção nova!")
        page.fill("input[name=dedupe_hours]", "0")
        page.click("main form button[type=submit]")
        page.wait_for_load_state()
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "campaign-saved.png"), full_page=True)
        expect(page.get_by_test_id("audience-count")).to_contain_text("30 ")
        preview = page.get_by_test_id("preview")
        expect(preview).to_contain_text("Ana")
        words = {line.split()[0] for line in preview.locator("td:nth-child(2)").all_inner_texts()}
        assert words <= {"Olá", "Oi", "E"} and words  # each contact its variation, no braces left
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "campaign-preview.png"), full_page=True)
        page.locator("form[action$='/launch/'] button").click()
        dialog = page.get_by_test_id("confirm-dialog")  # the page's own dialog, not the browser's
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("Enviar para 30 contatos?")
        page.screenshot(path=str(SHOTS / "campaign-confirm.png"))
        dialog.get_by_role("button", name="Cancelar").click()
        expect(dialog).to_be_hidden()
        assert Campaign.objects.get(name=name).status == "draft"  # Cancel sent nothing
        page.locator("form[action$='/launch/'] button").click()
        dialog.get_by_role("button", name="Confirmar").click()
        box = page.locator("#campaign-progress")
        expect(box).to_have_attribute("data-live-updates", re.compile(r"[1-9]"), timeout=20_000)
        expect(page.get_by_test_id("rate")).to_contain_text("/s", timeout=20_000)
        page.screenshot(path=str(SHOTS / "campaign-live.png"), full_page=True)
        expect(page.locator('[data-count="sent"]')).to_have_text("30", timeout=60_000)
        expect(box).to_have_attribute("data-status", "completed", timeout=20_000)
        page.screenshot(path=str(SHOTS / "campaign-done.png"), full_page=True)
    finally:
        Channel.objects.filter(pk=channels["sms"]).update(rate_limit_per_s=80)
        context.close()
    sent = [m for m in twilio_emulator.sent.values() if m["to"] in {c.phone for c in contacts}]
    assert len(sent) == 30
    assert errors == []
