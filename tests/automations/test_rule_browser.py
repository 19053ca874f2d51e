"""The rule editor as an admin uses it, in Chromium: a trigger with its tag, a condition and two actions
built with the editor's buttons, saved, then a test run on a contact that shows what would happen and
changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Browser, expect

from accounts.models import Role
from automations.models import Rule, RuleRun
from automations.services import rules_changed
from crm.models import Contact, Tag
from inbox.models import Conversation
from tests.messaging import open_conversation
from tests.support import make_member
from tests.test_browser import SHOTS, _close_playwright_context_connections, _login, browser  # noqa: F401

pytestmark = pytest.mark.browser


def test_an_admin_builds_a_rule_in_the_editor_and_test_runs_it(
    app_server: str,
    tenants: Any,
    browser: Browser,  # noqa: F811 (the fixture imported above)
    committed: Any,
    channels: dict[str, int],
) -> None:
    alpha = tenants[0]
    run = uuid.uuid4().hex[:6]
    email = f"rule-editor-{run}@alpha.test"
    make_member(alpha, email, Role.ADMIN)
    connection.set_tenant(alpha)
    quente = Tag.objects.create(name=f"quente-{run}")
    cliente = Tag.objects.create(name=f"cliente-{run}")
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    conversation = open_conversation(channels["whatsapp"], phone)
    Contact.objects.filter(phone=phone).update(name=f"Lia {run}")
    connection.set_schema_to_public()
    port = app_server.rsplit(":", 1)[1]
    base = f"http://alpha.localhost:{port}"
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, base, email)
    page.select_option("#lang-select", "en")
    expect(page.locator("nav.sidebar")).to_contain_text("Team")  # the language is saved before we go on
    page.goto(f"{base}/automations/new/")
    page.fill("#id_name", f"Lead quente {run}")
    page.select_option("select[name=trigger]", "tag_added")
    expect(page.locator("select[name=tag_id]")).to_be_visible()  # the trigger's own field appears
    page.select_option("select[name=tag_id]", str(quente.pk))

    page.click("[data-testid=add-condition]")
    condition = page.locator("[data-testid=rule-condition]").first
    condition.locator("select[aria-label='Has or has not']").select_option("false")
    condition.locator("select[aria-label='Tag']").select_option(str(cliente.pk))

    page.click("[data-testid=add-action]")
    page.click("[data-testid=add-action]")
    actions = page.locator("[data-testid=rule-action]")
    expect(actions).to_have_count(2)
    actions.nth(0).locator("select[aria-label='Action']").select_option("assign_round_robin")
    actions.nth(1).locator("select[aria-label='Tag']").select_option(str(cliente.pk))  # "add a tag" by default
    page.screenshot(path=str(SHOTS / "rule-editor.png"), full_page=True)
    page.click("[data-testid=rule-save]")
    expect(page.locator("h1")).to_have_text(f"Lead quente {run}")

    connection.set_tenant(alpha)
    try:
        rule = Rule.objects.get(name=f"Lead quente {run}")
        assert rule.trigger == "tag_added" and rule.trigger_config["tag_id"] == quente.pk
        assert [a["type"] for a in rule.actions] == ["assign_round_robin", "tag_add"]
        assert str(rule.actions[1]["tag_id"]) == str(cliente.pk)
        (only,) = rule.conditions
        assert only["kind"] == "tag" and only["has"] is False and str(only["tag_id"]) == str(cliente.pk)

        # The test run: what the rule would do for this contact, and nothing done.
        page.select_option("[data-testid=dry-run-form] select[name=contact]", str(conversation.contact_id))
        page.click("[data-testid=dry-run-form] button[type=submit]")
        dry = page.locator("[data-testid=dry-run]")
        expect(dry).to_contain_text("The rule would run.")
        expect(dry.locator("[data-testid=dry-action]")).to_have_count(2)
        expect(dry.locator("[data-testid=dry-condition]")).to_contain_text("✔")
        page.screenshot(path=str(SHOTS / "rule-dry-run.png"), full_page=True)
        connection.set_tenant(alpha)
        assert not RuleRun.objects.filter(rule=rule).exists()
        assert Conversation.objects.get(pk=conversation.pk).assignee_id is None
        assert not Contact.objects.get(phone=phone).tags.filter(pk=cliente.pk).exists()
        assert errors == []
    finally:
        connection.set_tenant(alpha)
        Rule.objects.filter(name=f"Lead quente {run}").delete()  # committed: it must not run in later tests
        rules_changed()
        connection.set_schema_to_public()
        context.close()
