"""The owner's usage page in real headless Chromium (Debian's) against the live server: the plan's limits,
this month's use with its bar and percent, and the 30-day chart drawn by Chart.js."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Browser, expect

from accounts.models import Role
from tenants.models import Metric, Plan, Tenant, UsageDay
from tenants.usage import tenant_today
from tests.support import make_member
from tests.test_browser import SHOTS, _close_playwright_context_connections, _login, browser  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture
def alpha_on_a_plan(tenants: tuple[Tenant, Tenant], committed: Any) -> Iterator[Tenant]:
    """Alpha on a small plan with some SMS use this month, committed for the live server, undone after."""
    alpha = tenants[0]
    connection.set_schema_to_public()
    plan = Plan.objects.create(
        code=f"b-{uuid.uuid4().hex[:6]}", name="Plano Teste", messages_sms=200, feature_voice=False
    )
    try:
        Tenant.objects.filter(pk=alpha.pk).update(plan=plan)
        UsageDay.objects.update_or_create(  # earlier tests metered alpha's SMS today, committed
            tenant=alpha, metric=Metric.MESSAGES_SMS, day=tenant_today(alpha), defaults={"amount": 50}
        )
        yield alpha
    finally:
        connection.set_schema_to_public()
        UsageDay.objects.filter(tenant=alpha).delete()
        Tenant.objects.filter(pk=alpha.pk).update(plan=None)
        plan.delete()


def test_the_owner_sees_use_against_the_limit_and_the_trend(
    app_server: str,
    alpha_on_a_plan: Tenant,
    browser: Browser,  # noqa: F811
) -> None:
    email = f"usage-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha_on_a_plan, email, Role.OWNER)
    connection.set_schema_to_public()
    port = app_server.rsplit(":", 1)[1]
    base = f"http://alpha.localhost:{port}"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    _login(page, base, email)
    page.wait_for_url(f"{base}/")
    expect(page.locator('nav a[href="/calls/"]')).to_have_count(0)  # voice is not in this plan
    page.click('a[href="/settings/usage/"]')
    page.wait_for_url(f"{base}/settings/usage/")
    expect(page.get_by_test_id("usage-plan")).to_contain_text("Plano Teste")
    sms = page.locator('tr[data-metric="messages.sms"]')
    expect(sms.get_by_test_id("used")).to_have_text("50")
    expect(sms.get_by_test_id("limit")).to_have_text("200")
    expect(sms.get_by_test_id("percent")).to_have_text("25%")
    expect(sms.locator("progress")).to_have_attribute("value", "25")
    expect(page.locator('tr[data-metric="ai.tokens"]').get_by_test_id("limit")).to_have_text("Ilimitado")
    expect(page.locator('[data-feature="voice"]')).to_contain_text("não incluído")
    expect(page.get_by_test_id("chart-usage")).to_have_attribute("data-drawn", "true")
    page.screenshot(path=str(SHOTS / "usage.png"), full_page=True)
    assert errors == []
    page.goto(f"{base}/calls/")
    expect(page.get_by_test_id("feature-off")).to_contain_text("Seu plano não inclui")
    context.close()
