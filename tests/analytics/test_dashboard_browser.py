"""The dashboard in real headless Chromium: KPIs in pt-BR number format, every chart drawn on its
canvas, today's strip ticking over the live socket; a screenshot is kept in test-artifacts/."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import Browser, expect

from accounts.models import Role
from analytics.models import CallHour, ConversationHour, MessageHour, ResponseDay
from analytics.services import today_push
from tenants.models import Tenant
from tests.support import make_member
from tests.test_browser import SHOTS, _close_playwright_context_connections, _login, browser  # noqa: F401

pytestmark = pytest.mark.browser

DRAWN = """id => {
  const canvas = document.getElementById(id);
  if (!canvas || !window.Chart || !window.Chart.getChart(canvas) || canvas.width === 0) return false;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return true;
  return false;
}"""


def _push_from_a_worker_thread(tenant: Tenant) -> None:
    """What the refresh task does after a rebuild (Playwright's loop runs on this thread)."""

    def push() -> None:
        connection.set_tenant(tenant)
        try:
            today_push(tenant.schema_name)
        finally:
            connection.close()

    worker = threading.Thread(target=push)
    worker.start()
    worker.join(timeout=20)


def _seed_rollups(tag: int) -> None:
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    for day in range(14):
        for hour in (2, 5, 9):
            at = now - timedelta(days=day, hours=hour)
            MessageHour.objects.create(
                hour=at, channel_id=tag, inbound=400 + day * 13, outbound=380, sent=370, delivered=350, read=300,
                failed=10,
            )  # fmt: skip
            ConversationHour.objects.create(hour=at, channel_id=tag, opened=40 + day, resolved=30 + day)
            CallHour.objects.create(hour=at, direction="out", status="ended", outcome="user_hangup", calls=5,
                                    answered=4, duration_ms=4 * 95_000)  # fmt: skip
        ResponseDay.objects.create(day=(now - timedelta(days=day)).date(), channel_id=tag, agent_id=1, is_first=True,
                                   bucket=60 + day * 10, responses=2, seconds_sum=2 * (60 + day * 10))  # fmt: skip


def test_the_dashboard_draws_its_charts_and_ticks_live(
    app_server: str,
    tenants: tuple[Tenant, Tenant],
    browser: Browser,  # noqa: F811 (the fixture imported from tests.test_browser)
    committed: Any,
) -> None:
    alpha, _ = tenants
    email = f"dash-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha, email, Role.OWNER)
    tag = 900_000 + uuid.uuid4().int % 1000
    connection.set_tenant(alpha)
    _seed_rollups(tag)
    try:
        port = app_server.rsplit(":", 1)[1]
        base = f"http://alpha.localhost:{port}"
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        _login(page, base, email)
        expect(page).to_have_url(f"{base}/")
        today = timezone.now().astimezone(ZoneInfo(alpha.timezone)).date()
        # a week against the week before (both seeded)
        page.goto(f"{base}/?start={today - timedelta(days=6)}&end={today}&interval=day")
        expect(page.get_by_test_id("dashboard")).to_be_visible()
        page.wait_for_function("document.getElementById('dashboard').dataset.loaded === '1'", timeout=15_000)
        for chart in ("chart-messages", "chart-conversations", "chart-funnel"):
            assert page.evaluate(DRAWN, chart), f"{chart} has nothing drawn"
        # pt-BR number formatting (thousands with a dot) on a KPI at least 5,000 this period
        sent = page.locator('[data-kpi="messages_sent"] .value').inner_text()
        assert "." in sent and sent.replace(".", "").isdigit() and int(sent.replace(".", "")) >= 2000, sent
        rate = page.locator('[data-kpi="read_rate"] .value').inner_text()
        assert "%" in rate and "," in rate, rate  # e.g. 81,1%
        expect(page.locator('[data-kpi="messages_received"] .change')).not_to_be_empty()
        expect(page.locator("#table-calls tbody")).to_contain_text("user_hangup")
        expect(page.locator("#live-dot")).to_have_class("live-dot on", timeout=10_000)
        # today's strip ticks when the rollups change (the refresh task pushes the new counters)
        before = page.locator('[data-today="messages_received"]').inner_text()
        MessageHour.objects.create(hour=timezone.now().replace(minute=0, second=0, microsecond=0), channel_id=tag,
                                   inbound=5000)  # fmt: skip
        _push_from_a_worker_thread(alpha)
        expect(page.locator('[data-today="messages_received"]')).not_to_have_text(before, timeout=10_000)
        ticked = int(page.locator('[data-today="messages_received"]').inner_text().replace(".", ""))
        assert ticked >= 5000
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
        # a CSV export link carries the page's filters
        href = page.locator('[data-export-link="series"]').get_attribute("href") or ""
        assert href.startswith("/analytics/export/series.csv")
        assert errors == []
        context.close()
    finally:
        connection.set_tenant(alpha)
        for model in (MessageHour, ConversationHour, ResponseDay):
            model.objects.filter(channel_id=tag).delete()
        CallHour.objects.filter(outcome="user_hangup", direction="out", calls=5, duration_ms=4 * 95_000).delete()
        connection.set_schema_to_public()
