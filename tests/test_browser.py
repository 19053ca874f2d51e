"""A person's view: real headless Chromium (Debian's) against the live server."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tenants.models import Tenant
from tests.conftest import WA_PNID
from tests.support import PASSWORD, make_member

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP *.localhost 127.0.0.1",
]
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(autouse=True)
def _close_playwright_context_connections() -> Iterator[None]:
    # ORM calls made while Playwright's loop runs get a connection of their own in that context,
    # which must be closed before the test database is dropped.
    yield
    connections.close_all()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (make test installs it)")
    # Playwright's sync API keeps an event loop on this thread; the ORM calls the tests and session
    # fixtures make meanwhile are plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
    try:
        with sync_playwright() as pw:
            instance = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            yield instance
            instance.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def _login(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_member_logs_in_and_sees_the_shell(
    app_server: str, tenants: tuple[Tenant, Tenant], browser: Browser, committed: Any
) -> None:
    alpha, _ = tenants
    email = f"browser-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha, email)
    port = app_server.rsplit(":", 1)[1]
    base = f"http://alpha.localhost:{port}"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # a Content-Security-Policy violation (an inline script or handler left behind) is a console error
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    _login(page, base, email)
    expect(page).to_have_url(f"{base}/")
    expect(page.get_by_test_id("user-email")).to_have_text(email)
    expect(page.locator("nav.sidebar")).to_contain_text("Equipe")  # pt-BR by default
    expect(page.locator("#live-dot")).to_have_class("live-dot on", timeout=10_000)  # the live socket is up
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "shell.png"), full_page=True)

    # switch to English, navigate, and see the team page
    page.select_option("#lang-select", "en")
    expect(page.locator("nav.sidebar")).to_contain_text("Team")
    page.click("nav.sidebar >> text=Team")
    expect(page.locator("h1")).to_have_text("Team")
    expect(page.locator("table")).to_contain_text(email)

    # every link in the navigation answers 200
    for href in page.eval_on_selector_all("nav.sidebar a", "els => els.map(e => e.getAttribute('href'))"):
        response = page.goto(f"{base}{href}")
        assert response is not None and response.status == 200, href

    # the service worker registers, and its offline page is precached
    page.goto(f"{base}/")
    page.wait_for_function(
        "navigator.serviceWorker && navigator.serviceWorker.controller !== undefined", timeout=10_000
    )
    registered = page.evaluate("navigator.serviceWorker.getRegistration('/').then(r => !!r)")
    assert registered
    assert errors == []
    context.close()


def test_small_screen_has_a_menu_toggle(
    app_server: str, tenants: tuple[Tenant, Tenant], browser: Browser, committed: Any
) -> None:
    alpha, _ = tenants
    email = f"mobile-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha, email)
    port = app_server.rsplit(":", 1)[1]
    context = browser.new_context(viewport={"width": 390, "height": 800})
    page = context.new_page()
    _login(page, f"http://alpha.localhost:{port}", email)
    expect(page.locator("nav.sidebar")).to_be_hidden()
    page.click(".menu-toggle")
    expect(page.locator("nav.sidebar")).to_be_visible()
    page.screenshot(path=str(SHOTS / "shell-mobile.png"))
    context.close()


# The contrast of a text colour against its background (WCAG 2), computed in the page from the styles in use.
CONTRAST_JS = """([text, back]) => {
  const rgb = (css) => css.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = (c) => { const [r, g, b] = c.map(lin); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const [a, b] = [lum(rgb(text)), lum(rgb(back))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_theme_follows_the_system_setting_with_readable_contrast(
    app_server: str, tenants: tuple[Tenant, Tenant], browser: Browser, committed: Any, scheme: str
) -> None:
    alpha, _ = tenants
    email = f"theme-{scheme}-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha, email)
    port = app_server.rsplit(":", 1)[1]
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=scheme)  # type: ignore[arg-type]
    page = context.new_page()
    _login(page, f"http://alpha.localhost:{port}", email)
    expect(page.get_by_test_id("user-email")).to_have_text(email)

    def style(selector: str, prop: str) -> str:
        return str(page.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}"))

    background = style("body", "backgroundColor")
    assert background == ("rgb(246, 247, 249)" if scheme == "light" else "rgb(15, 20, 25)")
    surface = style(".topbar", "backgroundColor")
    for selector, back in (("body", background), (".topbar", surface)):
        ratio = page.evaluate(CONTRAST_JS, [style(selector, "color"), back])
        assert ratio >= 7, (scheme, selector, ratio)  # body text: WCAG AAA
    for prop_of, back in ((".content a", background), (".content .muted", background)):
        if page.locator(prop_of).count():
            ratio = page.evaluate(CONTRAST_JS, [style(prop_of, "color"), back])
            assert ratio >= 4.5, (scheme, prop_of, ratio)  # links and secondary text: WCAG AA
    page.goto(f"http://alpha.localhost:{port}/contacts/")
    ratio = page.evaluate(CONTRAST_JS, [style("input", "color"), style("input", "backgroundColor")])
    assert ratio >= 7, (scheme, "input", ratio)
    page.screenshot(path=str(SHOTS / f"theme-{scheme}.png"), full_page=True)
    context.close()


def test_a_message_sent_from_the_shell_turns_read_without_a_reload(
    app_server: str,
    tenants: tuple[Tenant, Tenant],
    browser: Browser,
    committed: Any,
    celery_worker: None,
    meta_emulator: Any,
    channels: dict[str, int],
) -> None:
    from django.db import connection

    from tests.messaging import open_conversation

    alpha, _ = tenants
    email = f"sender-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha, email)
    connection.set_tenant(alpha)
    conversation = open_conversation(channels["whatsapp"], f"+55119{uuid.uuid4().int % 10**8:08d}")
    connection.set_schema_to_public()
    port = app_server.rsplit(":", 1)[1]
    base = f"http://alpha.localhost:{port}"
    page = browser.new_context().new_page()
    _login(page, base, email)
    page.goto(f"{base}/conversations/{conversation.pk}/")
    expect(page.locator("#live-dot")).to_have_class("live-dot on", timeout=10_000)
    page.fill("textarea[name=body]", "Seu pedido está pronto para retirada")
    page.click("[data-testid=send]")
    ticks = page.locator("[data-testid=ticks]").last
    expect(ticks).to_have_class("ticks read", timeout=20_000)  # sent -> delivered -> read, pushed live
    page.screenshot(path=str(SHOTS / "conversation-read.png"))
    # and a customer's answer appears without a reload
    meta_emulator.inject_inbound(phone_number_id=WA_PNID, from_phone=conversation.contact.phone, text="Obrigado!")
    expect(page.locator(".msg.in").last).to_contain_text("Obrigado!", timeout=20_000)


def test_agent_inbox_live_inbound_reply_and_read_ticks(
    app_server: str,
    tenants: tuple[Tenant, Tenant],
    browser: Browser,
    committed: Any,
    celery_worker: None,
    meta_emulator: Any,
    channels: dict[str, int],
) -> None:
    alpha, _ = tenants
    email = f"inbox-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha, email)
    port = app_server.rsplit(":", 1)[1]
    base = f"http://alpha.localhost:{port}"
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _login(page, base, email)
    page.goto(f"{base}/conversations/")
    expect(page.locator("#live-dot")).to_have_class("live-dot on", timeout=10_000)
    phone = f"55119{uuid.uuid4().int % 10**8:08d}"
    name = f"Cliente {phone[-4:]}"
    meta_emulator.inject_inbound(phone_number_id=WA_PNID, from_phone=phone, text="Vocês entregam hoje?", name=name)
    row = page.locator("#conversation-rows a", has_text=name)
    expect(row).to_be_visible(timeout=20_000)  # appeared without a reload
    page.screenshot(path=str(SHOTS / "inbox-list.png"))
    row.click()
    expect(page.locator(".msg.in").last).to_contain_text("Vocês entregam hoje?")
    page.fill("textarea[name=body]", "Sim! Até as 18h.")
    page.click("[data-testid=send]")
    expect(page.locator("[data-testid=ticks]").last).to_have_class("ticks read", timeout=20_000)
    page.screenshot(path=str(SHOTS / "inbox-conversation.png"))

    # Someone moves the customer's lead on the board: the open conversation shows it inline, live.
    from django.db import connection

    from crm.models import Contact
    from kanban.services import board_create, card_create, card_move

    stage_names: list[str] = []

    def move() -> None:  # in a thread of its own: Playwright's event loop runs on this one
        connection.set_tenant(alpha)
        try:
            board = board_create(name=f"Live {phone[-4:]}")
            first, second = list(board.stages.order_by("rank"))[:2]
            card = card_create(board=board, stage=first, title=name, contact=Contact.objects.get(phone=f"+{phone}"))
            card_move(card_id=card.pk, to_stage_id=second.pk)
            stage_names.append(second.name)
        finally:
            connection.close()

    mover = threading.Thread(target=move)
    mover.start()
    mover.join(timeout=30)
    assert stage_names, "the card did not move"
    moved = page.locator('#timeline [data-event="stage_moved"]')
    expect(moved).to_contain_text(stage_names[0], timeout=20_000)  # appended without a reload


def test_drag_a_card_to_another_stage_and_a_second_viewer_sees_it_live(
    app_server: str, tenants: tuple[Tenant, Tenant], browser: Browser, committed: Any
) -> None:
    from django.db import connection

    from kanban.models import Card
    from kanban.services import board_create, card_create

    alpha, _ = tenants
    email = f"board-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha, email)
    connection.set_tenant(alpha)
    board = board_create(name=f"Board {uuid.uuid4().hex[:4]}")
    stages = list(board.stages.order_by("rank"))
    card = card_create(board=board, stage=stages[0], title="Arraste-me")
    card_create(board=board, stage=stages[1], title="Já aqui")
    connection.set_schema_to_public()
    port = app_server.rsplit(":", 1)[1]
    url = f"http://alpha.localhost:{port}/boards/{board.pk}/"

    mover = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    console: list[str] = []
    mover.on("console", lambda msg: console.append(msg.text))
    mover.on("pageerror", lambda exc: console.append(str(exc)))
    watcher = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    for page in (mover, watcher):
        _login(page, f"http://alpha.localhost:{port}", email)
        page.goto(url)
        expect(page.locator("#live-dot")).to_have_class("live-dot on", timeout=10_000)

    source = mover.locator(f'.kanban-card[data-card="{card.pk}"]')
    target = mover.locator(f'.kanban-cards[data-stage="{stages[1].pk}"] .kanban-card').first
    box_from, box_to = source.bounding_box(), target.bounding_box()
    assert box_from and box_to
    start_x, start_y = box_from["x"] + box_from["width"] - 15, box_from["y"] + 45  # the card body, not its link
    end_x, end_y = box_to["x"] + box_to["width"] / 2, box_to["y"] + box_to["height"] - 5
    mover.mouse.move(start_x, start_y)
    mover.mouse.down()
    for step in range(1, 31):  # SortableJS follows the pointer in small steps
        mover.mouse.move(start_x + (end_x - start_x) * step / 30, start_y + (end_y - start_y) * step / 30)
        mover.wait_for_timeout(25)
    mover.wait_for_timeout(200)
    mover.mouse.up()

    def stage_of_card() -> int:
        connection.set_tenant(alpha)
        value = Card.objects.get(pk=card.pk).stage_id
        connection.set_schema_to_public()
        return value

    from tests.support import wait_until

    mover.screenshot(path=str(SHOTS / "kanban-after-drop.png"))
    assert not console, console
    wait_until(lambda: stage_of_card() == stages[1].pk, timeout=10)
    moved_there = watcher.locator(f'.kanban-cards[data-stage="{stages[1].pk}"] .kanban-card[data-card="{card.pk}"]')
    expect(moved_there).to_be_visible(timeout=10_000)  # the second viewer saw it live
    mover.reload()
    expect(
        mover.locator(f'.kanban-cards[data-stage="{stages[1].pk}"] .kanban-card[data-card="{card.pk}"]')
    ).to_be_visible()
    mover.screenshot(path=str(SHOTS / "kanban.png"))


def test_connect_whatsapp_by_qr_in_demo_mode_and_exchange_messages(
    app_server: str, tenants: tuple[Tenant, Tenant], browser: Browser, committed: Any, celery_worker: None
) -> None:
    import threading

    from django.db import connection

    from inbox.models import Channel, ChannelStatus
    from whatsapp.web import bus
    from whatsapp.web.client import FAKES, FakeWebClient, WebInbound
    from whatsapp.web.manager import SessionManager

    alpha, _ = tenants
    email = f"qr-{uuid.uuid4().hex[:6]}@alpha.test"
    from accounts.models import Role

    make_member(alpha, email, Role.OWNER)
    port = app_server.rsplit(":", 1)[1]
    base = f"http://alpha.localhost:{port}"
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _login(page, base, email)
    page.goto(f"{base}/channels/")
    page.fill("#qr-name", "Celular da loja")
    page.click("form[action$='/channels/qr/new/'] button")
    expect(page.locator("#qr-card")).to_be_visible()
    connection.set_tenant(alpha)
    channel = Channel.objects.get(pk=int(page.locator("#qr-card").get_attribute("data-channel") or 0))
    connection.set_schema_to_public()

    manager = SessionManager(
        process_id="browser-wa-web",
        client_factory=lambda key, session, events: FakeWebClient(key, session, events, qr_every_s=1.0),
    )
    manager.wanted = lambda: [(alpha.schema_name, channel.pk)]  # type: ignore[method-assign]
    stop = threading.Event()
    runner = threading.Thread(target=manager.run, args=(stop, 0.1), daemon=True)
    runner.start()
    try:
        expect(page.locator("#live-dot")).to_have_class("live-dot on", timeout=10_000)
        expect(page.locator("[data-testid=qr-image] svg")).to_be_visible(timeout=15_000)  # the QR renders, live
        page.screenshot(path=str(SHOTS / "qr.png"))
        page.click("[data-testid=demo-scan]")
        expect(page.locator("[data-testid=qr-connected]")).to_contain_text("+5511955550000", timeout=15_000)

        key = bus.session_key(alpha.schema_name, channel.pk)
        customer = f"5511944{uuid.uuid4().int % 10**6:06d}"
        name = f"Joana {customer[-4:]}"
        FAKES[key].receive(
            WebInbound(
                message_id="BR" + uuid.uuid4().hex[:10],
                chat=f"{customer}@s.whatsapp.net",
                sender_phone=f"+{customer}",
                push_name=name,
                type="text",
                text="Oi, é pelo QR!",
            )
        )
        from intake.models import WebhookEvent

        def ingested() -> bool:
            connection.set_schema_to_public()
            return WebhookEvent.objects.filter(route_key=key).exclude(processed_at=None).exists()

        from tests.support import wait_until

        wait_until(ingested, timeout=20)
        page.goto(f"{base}/conversations/")
        row = page.locator("#conversation-rows a", has_text=name)
        expect(row).to_be_visible(timeout=20_000)
        row.click()
        page.fill("textarea[name=body]", "Recebido pelo QR também!")
        page.click("[data-testid=send]")
        expect(page.locator("[data-testid=ticks]").last).to_have_class("ticks sent", timeout=20_000)
        assert any(m["text"] == "Recebido pelo QR também!" for m in FAKES[key].sent)
    finally:
        stop.set()
        runner.join(timeout=10)
        connection.set_tenant(alpha)
        Channel.objects.filter(pk=channel.pk).update(status=ChannelStatus.NEEDS_RESCAN)
        connection.set_schema_to_public()


def test_manager_builds_a_cadence_with_the_step_editor_and_drafts_a_campaign(
    app_server: str, tenants: tuple[Tenant, Tenant], browser: Browser, committed: Any, channels: dict[str, int]
) -> None:
    from accounts.models import Role

    alpha, _ = tenants
    email = f"manager-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha, email, Role.ADMIN)
    port = app_server.rsplit(":", 1)[1]
    base = f"http://alpha.localhost:{port}"
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, base, email)
    page.goto(f"{base}/cadences/new/")
    name = f"Onboarding {uuid.uuid4().hex[:4]}"
    page.fill("input[name=name]", name)
    page.select_option("select[name=channel]", str(channels["sms"]))
    page.locator("textarea[name=step_body]").first.fill("Oi {{first_name}}, bem-vindo!")
    page.click("[data-testid=add-step]")  # Alpine adds a second step row (1 day by default)
    expect(page.get_by_test_id("cadence-step")).to_have_count(2)
    page.locator("textarea[name=step_body]").nth(1).fill("Posso ajudar em algo?")
    # The second step on WhatsApp, two business days later at 10:00, only if there is no reply yet.
    second = page.get_by_test_id("cadence-step").nth(1)
    second.get_by_test_id("step-channel").select_option(str(channels["whatsapp"]))
    second.get_by_test_id("step-timing").select_option("business_day")
    second.get_by_test_id("step-bdays").fill("2")
    second.get_by_test_id("step-at").fill("10:00")
    second.locator("summary").click()
    second.locator("select[name=step_if_no_reply]").select_option("1")
    # A third step, moved up above the second, then removed: two steps are saved, in order.
    page.click("[data-testid=add-step]")
    page.locator("textarea[name=step_body]").nth(2).fill("Rascunho")
    page.get_by_test_id("cadence-step").nth(2).get_by_test_id("step-up").click()
    expect(page.locator("textarea[name=step_body]").nth(1)).to_have_value("Rascunho")
    page.get_by_test_id("cadence-step").nth(1).get_by_role("button", name="Remove").click()
    expect(page.get_by_test_id("cadence-step")).to_have_count(2)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "cadence-editor.png"), full_page=True)
    page.click("main form button[type=submit]")
    expect(page.locator("h1")).to_contain_text(name)
    expect(page.get_by_test_id("step-row")).to_have_count(2)
    expect(page.get_by_test_id("step-row").nth(1)).to_contain_text("10:00")  # 2 business days later at 10:00
    expect(page.get_by_test_id("step-row").nth(1)).to_contain_text("WhatsApp")
    page.screenshot(path=str(SHOTS / "cadence.png"), full_page=True)
    page.click("[data-testid=cadence-pause]")
    expect(page.get_by_test_id("cadence-paused")).to_be_visible()
    page.click("[data-testid=cadence-resume]")
    expect(page.get_by_test_id("cadence-pause")).to_be_visible()

    page.goto(f"{base}/campaigns/new/")
    page.fill("input[name=name]", f"Promo {uuid.uuid4().hex[:4]}")
    page.select_option("select[name=channel]", str(channels["sms"]))
    page.fill("textarea[name=body]", "Oi {{first_name}}, 10% off hoje!")
    page.click("main form button[type=submit]")
    expect(page.get_by_test_id("campaign-status")).to_be_visible()
    expect(page.get_by_test_id("audience-count")).to_be_visible()
    page.screenshot(path=str(SHOTS / "campaign-draft.png"), full_page=True)
    assert errors == []
    context.close()


def test_connect_whatsapp_through_the_emulated_embedded_signup_popup(
    app_server: str, tenants: tuple[Tenant, Tenant], browser: Browser, committed: Any, meta_emulator: Any
) -> None:
    """Connect WhatsApp -> Meta's window (the emulator's) -> pick the number -> the channel is listed. A
    cancelled window says so; a forged session-info message from another origin is ignored."""
    from django.db import connection

    from accounts.models import Role
    from emulators.meta_signup import SignupNumber
    from inbox.models import Channel
    from inbox.services import channel_delete

    alpha, _ = tenants
    email = f"es-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha, email, Role.OWNER)
    tail = f"{uuid.uuid4().int % 10**6:06d}"
    number = SignupNumber(f"100000000{tail}", f"200000000{tail}", f"+55 11 96{tail[:3]}-{tail[3:]}0", f"Padaria {tail}")
    meta_emulator.signup.catalog = [number]
    port = app_server.rsplit(":", 1)[1]
    base = f"http://alpha.localhost:{port}"
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        context.add_cookies([{"name": "django_language", "value": "en", "url": base}])
        _login(page, base, email)
        page.goto(f"{base}/channels/")
        start = page.locator("#wa-signup-start")
        expect(start).to_be_enabled()  # the SDK loaded and FB.init ran
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "embedded-signup-channels.png"), full_page=True)

        with context.expect_page() as opened:  # closing Meta's window without finishing
            start.click()
        popup = opened.value
        popup.get_by_test_id("es-cancel").click()
        expect(page.locator("#wa-signup-status")).to_contain_text("You closed Meta", timeout=10_000)
        for _tick in range(100):  # the window closes itself: until then, FB.login's next window.open reuses it
            if popup.is_closed():
                break
            page.wait_for_timeout(100)
        assert popup.is_closed()

        with context.expect_page() as opened:
            start.click()
        popup = opened.value
        expect(popup.locator("h1")).to_have_text("Connect your WhatsApp")
        popup.screenshot(path=str(SHOTS / "embedded-signup-popup.png"))
        # a page of another origin (here: ours) posting a session-info message is not Meta's window
        page.evaluate(
            "window.postMessage(JSON.stringify({type: 'WA_EMBEDDED_SIGNUP', event: 'CANCEL',"
            " data: {current_step: 'forged'}}), '*')"
        )
        page.wait_for_timeout(300)
        expect(page.locator("#wa-signup-status")).to_have_text("")
        popup.check(f"input[value='{number.phone_number_id}']")
        with page.expect_navigation(timeout=20_000):
            popup.get_by_test_id("es-finish").click()
        expect(page).to_have_url(f"{base}/channels/")
        expect(page.locator("#toasts")).to_contain_text(f"Channel {number.verified_name} connected.")
        expect(page.locator("table")).to_contain_text(number.verified_name)
        page.screenshot(path=str(SHOTS / "embedded-signup-connected.png"), full_page=True)
        assert number.phone_number_id in meta_emulator.signup.registered
        assert errors == []
    finally:
        context.close()
        meta_emulator.signup.catalog = []
        connection.set_tenant(alpha)
        for channel in Channel.objects.filter(phone_number_id=number.phone_number_id):
            channel_delete(channel=channel)
        connection.set_schema_to_public()
        meta_emulator.numbers.pop(number.phone_number_id, None)


def test_the_bell_counts_alerts_live_and_the_list_resolves_them(
    app_server: str, tenants: tuple[Tenant, Tenant], browser: Browser, committed: Any
) -> None:
    from django.db import connection

    from accounts.models import Role
    from alerts.models import Alert
    from core import events

    alpha, _ = tenants
    email = f"alerts-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha, email, Role.OWNER)
    tag = uuid.uuid4().hex[:6]
    port = app_server.rsplit(":", 1)[1]
    base = f"http://alpha.localhost:{port}"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    _login(page, base, email)
    page.goto(f"{base}/alerts/")
    expect(page.locator("#live-dot")).to_have_class("live-dot on", timeout=10_000)
    connection.set_tenant(alpha)
    before = Alert.objects.filter(resolved_at=None, dismissed_at=None).count()
    connection.set_schema_to_public()

    # A cause announced anywhere (here: a QR number logged out) reaches the open page at once. Announced
    # from a thread of its own: Playwright's event loop runs on this one.
    def announce() -> None:
        payload = {"kind": "channel.needs_rescan", "key": f"b-{tag}", "detail": {"name": f"Loja {tag}", "detail": "x"}}
        events.announce(events.ALERT_RAISED, alpha.schema_name, payload)
        connections.close_all()

    import threading

    announcer = threading.Thread(target=announce)
    announcer.start()
    announcer.join()
    expect(page.locator(".toast")).to_contain_text(f"Loja {tag}", timeout=10_000)
    expect(page.get_by_test_id("alert-count")).to_have_text(str(before + 1))

    page.reload()
    row = page.get_by_test_id("alert-row").filter(has_text=f"Loja {tag}")
    expect(row).to_contain_text("QR code")  # what happened and the fix, in pt-BR
    page.screenshot(path=str(SHOTS / "alerts.png"), full_page=True)
    row.get_by_test_id("alert-resolve").click()
    expect(page.get_by_test_id("alert-row").filter(has_text=f"Loja {tag}")).to_have_count(0)
    expect(page.get_by_test_id("alert-count")).to_have_text(str(before))
    page.select_option("select[name=state]", "resolved")  # the filter submits itself
    expect(page.get_by_test_id("alert-row").filter(has_text=f"Loja {tag}")).to_contain_text("Marcado como resolvido")
    assert errors == []
    context.close()
